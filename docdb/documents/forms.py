import uuid
from typing import Any

from django import forms
from django.db.models import OrderBy
from django.db.models.functions import Lower
from django.http import QueryDict

from docdb.documents.bulk import BulkAction
from docdb.documents.models import MAX_TAG_LENGTH, Status

# People expect "alpha" before "Beta": titles sort without regard to case.
SORTS: dict[str, str | OrderBy] = {
    "title": Lower("title").asc(),
    "-title": Lower("title").desc(),
    "pages": "pages_total",
    "-pages": "-pages_total",
    "size": "size_bytes",
    "-size": "-size_bytes",
    "uploaded": "created_at",
    "-uploaded": "-created_at",
    "status": "status",
    "-status": "-status",
}
DEFAULT_SORT = "-uploaded"
SORT_LABELS = [
    ("-uploaded", "Newest first"),
    ("uploaded", "Oldest first"),
    ("title", "Title, A to Z"),
    ("-title", "Title, Z to A"),
    ("-pages", "Most pages"),
    ("-size", "Largest"),
    ("status", "Status"),
]


class DocumentListForm(forms.Form):
    """The documents list's sort, status and tag filters and title search, from the query
    string."""

    sort = forms.ChoiceField(choices=[(key, key) for key in SORTS], required=False)
    status = forms.ChoiceField(choices=[("", "All"), *Status.choices], required=False)
    q = forms.CharField(required=False, max_length=300)
    tag = forms.CharField(required=False, max_length=MAX_TAG_LENGTH)

    def sort_key(self) -> str:
        """The chosen sort; an unknown one falls back to newest first rather than failing."""
        if not self.is_valid():
            return DEFAULT_SORT
        return self.cleaned_data["sort"] or DEFAULT_SORT

    def order_by(self) -> list[str | OrderBy]:
        # Ties (same title, same size) keep a stable order across pages.
        return [SORTS[self.sort_key()], "-created_at", "id"]

    def status_filter(self) -> str:
        return self.cleaned_data["status"] if self.is_valid() else ""

    def title_search(self) -> str:
        return " ".join(self.cleaned_data["q"].split()) if self.is_valid() else ""

    def tag_filter(self) -> str:
        return " ".join(self.cleaned_data["tag"].split()) if self.is_valid() else ""


class RenameForm(forms.Form):
    title = forms.CharField(max_length=300, strip=True)


class TagForm(forms.Form):
    """A tag to add to or remove from a document."""

    name = forms.CharField(max_length=MAX_TAG_LENGTH, strip=True)


class BulkForm(forms.Form):
    """The documents list's selection and what to do with it."""

    action = forms.ChoiceField(choices=BulkAction.choices)
    tag = forms.CharField(required=False, max_length=MAX_TAG_LENGTH, strip=True)
    # Where "move to library" moves them.
    library = forms.IntegerField(required=False, min_value=1)

    def document_ids(self) -> list[uuid.UUID]:
        """The ticked documents' ids; malformed ones are dropped as others' documents are."""
        assert isinstance(self.data, QueryDict)
        ids = []
        for raw in self.data.getlist("document"):
            try:
                ids.append(uuid.UUID(raw))
            except ValueError:
                continue
        return ids

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("action") in (BulkAction.TAG, BulkAction.UNTAG) and not cleaned.get("tag"):
            self.add_error("tag", "Type the tag to add or remove.")
        if cleaned.get("action") == BulkAction.MOVE and not cleaned.get("library"):
            self.add_error("library", "Choose the library to move them to.")
        return cleaned
