from django import template

register = template.Library()


@register.filter
def duration_left(seconds: int) -> str:
    """An estimate as a person says it: rounded, never falsely precise."""
    if seconds < 60:
        return "less than a minute left"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {minutes} min left"
    return f"about {round(minutes / 60)} h left"
