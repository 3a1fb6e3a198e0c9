from django import template
from django.conf import settings

from docdb.documents.models import Page
from docdb.search.maps import CLOUD_REASON
from docdb.search.placeholders import placeholder_data_url
from docdb.search.services import score_share

register = template.Library()


@register.filter
def placeholder(page: Page) -> str:
    """The page's tiny blurred thumbnail as a data URL ("" when there is none yet)."""
    return placeholder_data_url(page.thumbnail_name, str(page.indexed_at))


@register.simple_tag
def maps_off_reason() -> str:
    """Why the page view offers no similarity maps ("" when it does)."""
    return CLOUD_REASON if settings.WEAVIATE_CLOUD else ""


@register.filter
def share_of(score: float, best: float | None) -> int:
    """A result's score as a whole percentage of the best result's."""
    return round(score_share(score, best) * 100)
