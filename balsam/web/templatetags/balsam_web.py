"""Template filters of the dashboard."""

from django import template

register = template.Library()


@register.filter
def when(value):
    """An ISO time (as the dashboard's JSON carries it) as ``YYYY-MM-DD HH:MM:SS``; "—" for none."""
    return str(value)[:19].replace("T", " ") if value else "—"


@register.filter
def count(value):
    """A whole number with thousands separators: 1,000,000."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return value
