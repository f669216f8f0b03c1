"""The dbserver: the single writer of a SQLite Balsam DB, and its watchdog."""

import argparse


def parse_process_args(description, argv=None):
    """The arguments the watchdog and the server processes share (the watchdog
    passes its own on to each server it starts)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--path", required=True, help="Balsam DB directory")
    parser.add_argument("--host", required=True, help="host name or IP to listen on")
    parser.add_argument("--no-group-commit", action="store_true", help="commit each request alone")
    return parser.parse_args(argv)
