from django import template

from docdb.documents.models import Page
from docdb.search.placeholders import placeholder_data_url

register = template.Library()


@register.filter
def placeholder(page: Page) -> str:
    """The page's tiny blurred thumbnail as a data URL ("" when there is none yet)."""
    return placeholder_data_url(page.thumbnail_path)
