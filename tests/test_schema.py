"""The Weaviate collection: created by the management command, checked against the settings."""

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from docdb.weaviate_store import client_close, collection_recreate
from tests.conftest import Stack

pytestmark = pytest.mark.sqlite_pass


def _schema_command(*args: str) -> dict[str, object]:
    out = io.StringIO()
    call_command("weaviate_schema", *args, stdout=out)
    return dict(json.loads(out.getvalue()))


def test_collection_has_the_page_properties_and_our_embedder(live: Stack) -> None:
    description = _schema_command("--check")
    assert description["exists"] is True
    assert description["properties"] == {
        "document_id": "uuid",
        "owner_id": "int",
        "library_id": "int",
        "title": "text",
        "file_name": "text",
        "page_number": "int",
        "text": "text",
        "image": "blob",
    }
    vector = description["vectors"]["page"]  # type: ignore[index]
    assert vector["vectorizer"] == "multi2multivec-weaviate"
    assert vector["settings"]["imageFields"] == ["image"]
    assert vector["settings"]["model"] == "ModernVBERT/colmodernvbert"
    assert vector["settings"]["baseURL"].rstrip("/") == live.embedder.url
    assert _schema_command()["created"] is False


def test_a_collection_made_for_another_embedder_is_refused(live: Stack) -> None:
    with override_settings(EMBEDDER_URL="http://127.0.0.1:9"):
        with pytest.raises(CommandError, match="does not match the settings"):
            _schema_command()
        recreated = _schema_command("--recreate")
        assert recreated["created"] is True
        assert recreated["vectors"]["page"]["settings"]["baseURL"].startswith(  # type: ignore[index]
            "http://127.0.0.1:9"
        )
    client_close()
    collection_recreate()
