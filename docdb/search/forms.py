from typing import Any

from django import forms
from django.contrib.auth.models import User

from docdb.documents.libraries import documents_visible, libraries_visible, library_choices
from docdb.documents.models import Document
from docdb.documents.tags import tags_of
from docdb.search.models import QueryImage
from docdb.search.services import MAX_OFFSET, PAGE_SIZE, SearchCriteria
from docdb.weaviate_store import SearchMode

MODES = [
    (SearchMode.VECTOR, "Semantic"),
    (SearchMode.HYBRID, "Hybrid"),
    (SearchMode.KEYWORD, "Keyword"),
]
MAX_QUERY_LENGTH = 500


class SearchForm(forms.Form):
    # The labels name each field in error messages as the page names it.
    q = forms.CharField(required=False, label="Query")
    mode = forms.ChoiceField(choices=MODES, required=False, label="Mode")
    alpha = forms.FloatField(
        required=False, min_value=0, max_value=1, label="Keyword/semantic balance"
    )
    document = forms.ModelMultipleChoiceField(
        queryset=Document.objects.none(), required=False, label="Documents"
    )
    tag = forms.MultipleChoiceField(choices=(), required=False, label="Tags")
    library = forms.TypedChoiceField(
        choices=(), coerce=int, required=False, empty_value=None, label="Library"
    )
    date_from = forms.DateField(required=False, label="Uploaded from")
    date_to = forms.DateField(required=False, label="Uploaded to")
    page = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_OFFSET // PAGE_SIZE, label="Results page"
    )
    image = forms.UUIDField(required=False, label="Search image")

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        # Only documents of the person's libraries are valid choices: any other id is refused.
        field = self.fields["document"]
        assert isinstance(field, forms.ModelMultipleChoiceField)
        field.queryset = documents_visible(user=user).order_by("title")
        # Likewise only the tags of their libraries, by name: any other tag name is refused.
        tag_field = self.fields["tag"]
        assert isinstance(tag_field, forms.MultipleChoiceField)
        tag_field.choices = [(tag.name, tag.name) for tag in tags_of(user=user)]
        library_field = self.fields["library"]
        assert isinstance(library_field, forms.TypedChoiceField)
        library_field.choices = [
            ("", "All"),
            *(
                (choice.id, choice.label)
                for choice in library_choices(libraries_visible(user=user), viewer=user)
            ),
        ]

    def clean_q(self) -> str:
        return " ".join(self.cleaned_data["q"].split())[:MAX_QUERY_LENGTH]

    def clean_image(self) -> QueryImage | None:
        image_id = self.cleaned_data["image"]
        if image_id is None:
            return None
        # Someone else's image reads as one that has expired: nothing tells them it exists.
        image = QueryImage.objects.filter(id=image_id, owner=self.user).first()
        if image is None:
            raise forms.ValidationError(
                "This search image is no longer kept (images are kept a week). "
                "Search with the image again."
            )
        return image

    def searched(self) -> bool:
        """Whether the form asks for a search (words or an image), once it is valid."""
        return bool(self.cleaned_data["q"] or self.cleaned_data["image"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned

    def criteria(self) -> SearchCriteria:
        data = self.cleaned_data
        alpha = data.get("alpha")
        return SearchCriteria(
            query=data["q"],
            mode=SearchMode(data.get("mode") or SearchMode.VECTOR),
            alpha=0.5 if alpha is None else alpha,
            document_ids=tuple(document.id for document in data.get("document") or ()),
            tags=tuple(data.get("tag") or ()),
            library_id=data.get("library"),
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            page=data.get("page") or 1,
            # Words typed over an image search are a new search by words.
            image=None if data["q"] else data.get("image"),
        )


class ImageSearchForm(forms.Form):
    """A search by image: the file, sent from the search page or pasted into it."""

    image = forms.FileField(label="Image", allow_empty_file=True)
