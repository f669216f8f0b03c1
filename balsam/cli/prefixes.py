"""Unique prefixes of long options, written out in full before click parses.

Balsam 0.2 parsed its command line with argparse, which accepts any unique
prefix of a long option, and its docs and tutorials use them (`--desc`,
`--exec`, `--consume`, `--wall-min`, `--max-ranks`, `--hist`). click accepts
only full names, so every command is parsed through ``PrefixGroup``, which
expands a unique prefix and refuses an ambiguous one with the candidates.
"""

import click


def _long_options(command):
    """{--name: takes a value} for the command's long options, and the set of
    its short options that take a value."""
    longs, shorts = {"--help": False}, set()
    for param in command.params:
        if not isinstance(param, click.Option):
            continue
        takes_value = not param.is_flag and not param.count
        for name in param.opts + param.secondary_opts:
            if name.startswith("--"):
                longs[name] = takes_value
            elif takes_value:
                shorts.add(name)
    return longs, shorts


def _has_free_arguments(command):
    return any(isinstance(p, click.Argument) and p.nargs == -1 for p in command.params)


def expand_prefixes(command, args):
    """``args`` with each unique prefix of one of ``command``'s long options
    written out in full. Values of options are never touched. For a group,
    only its own options (up to the subcommand's name) are expanded; a
    command taking free arguments (a command line) stops at the first one."""
    longs, shorts = _long_options(command)
    stop_at_positional = isinstance(command, click.Group) or _has_free_arguments(command)
    out, rest = [], list(args)
    while rest:
        token = rest.pop(0)
        if token == "--":
            out.append(token)
            break
        if token.startswith("--") and len(token) > 2:
            name, eq, value = token.partition("=")
            if name not in longs:
                matches = sorted(n for n in longs if n.startswith(name))
                if len(matches) > 1:
                    raise click.UsageError(f"option {name} is ambiguous: it could be {', '.join(matches)}")
                if matches:
                    name = matches[0]
            out.append(name + eq + value)
            if longs.get(name) and not eq and rest:
                out.append(rest.pop(0))  # the option's value, whatever it looks like
        elif token in shorts:
            out.append(token)
            if rest:
                out.append(rest.pop(0))
        else:
            out.append(token)
            if not token.startswith("-") and stop_at_positional:
                break
    return out + rest


class PrefixGroup(click.Group):
    """A group whose subcommands (and nested groups) accept unique prefixes of
    their long options."""

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, expand_prefixes(self, args))

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and not isinstance(command, click.Group):
            rest = expand_prefixes(command, rest)
        return name, command, rest
