from django import forms
from django.db.models import OrderBy
from django.db.models.functions import Lower

from docdb.documents.models import Status

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
    """The documents list's sort and status filter, from the query string."""

    sort = forms.ChoiceField(choices=[(key, key) for key in SORTS], required=False)
    status = forms.ChoiceField(choices=[("", "All"), *Status.choices], required=False)

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


class RenameForm(forms.Form):
    title = forms.CharField(max_length=300, strip=True)
