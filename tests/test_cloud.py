"""Weaviate Cloud: the connection, the collection with the hosted model, and switching modes.

Weaviate Cloud cannot be reached from the test machines, so `weaviate.connect_to_weaviate_cloud`
is the one thing replaced here: it records its arguments and hands back a client of the real local
test Weaviate, which then creates and describes the collections for real. What stays unchecked:
Weaviate Cloud itself, its hosted model, and search results embedded by that model.
"""

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import weaviate
from django.core.management import CommandError, call_command
from django.test import override_settings
from weaviate.classes.init import Auth

from docdb.documents.models import Document, Status
from docdb.weaviate_store import (
    SchemaMismatch,
    client_close,
    client_get,
    collection_describe,
    collection_ensure,
)
from docdb.weaviate_store.schema import vector_config
from tests.conftest import WeaviateInfo
from tests.helpers import user_make

pytestmark = pytest.mark.sqlite_pass

CLUSTER_URL = "https://docdb-test.c0.europe-west3.gcp.weaviate.cloud"
CLUSTER_KEY = "wcd-test-api-key"
COLLECTION = "DocDBCloudTest"
SELF_HOSTED_EMBEDDER = "http://127.0.0.1:9"
REBUILD = "python manage.py weaviate_schema --recreate && python manage.py reindex"


@pytest.fixture
def cloud_calls(
    weaviate_server: WeaviateInfo, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[dict[str, Any]]]:
    """What DocDB passed to `connect_to_weaviate_cloud`; the client it got is the local one."""
    calls: list[dict[str, Any]] = []

    def connect_to_weaviate_cloud(**kwargs: Any) -> weaviate.WeaviateClient:
        calls.append(kwargs)
        return weaviate.connect_to_custom(
            http_host="127.0.0.1",
            http_port=weaviate_server.http_port,
            http_secure=False,
            grpc_host="127.0.0.1",
            grpc_port=weaviate_server.grpc_port,
            grpc_secure=False,
            auth_credentials=Auth.api_key(weaviate_server.api_key),
        )

    monkeypatch.setattr(weaviate, "connect_to_weaviate_cloud", connect_to_weaviate_cloud)
    client_close()
    yield calls
    client_close()


def _cloud() -> override_settings:
    return override_settings(
        WEAVIATE_CLOUD=True,
        WEAVIATE_URL=CLUSTER_URL,
        WEAVIATE_API_KEY=CLUSTER_KEY,
        WEAVIATE_COLLECTION=COLLECTION,
    )


def _self_hosted(weaviate_server: WeaviateInfo) -> override_settings:
    return override_settings(
        WEAVIATE_CLOUD=False,
        WEAVIATE_URL=weaviate_server.url,
        WEAVIATE_GRPC_PORT=weaviate_server.grpc_port,
        WEAVIATE_API_KEY=weaviate_server.api_key,
        WEAVIATE_COLLECTION=COLLECTION,
        EMBEDDER_URL=SELF_HOSTED_EMBEDDER,
    )


@pytest.fixture
def fresh_collection(weaviate_server: WeaviateInfo) -> Iterator[None]:
    """No test collection before the test, none after it."""

    def drop() -> None:
        with _self_hosted(weaviate_server):
            client_get().collections.delete(COLLECTION)
            client_close()

    drop()
    yield
    drop()


def test_cloud_connects_with_the_cloud_helper_and_the_api_key(
    cloud_calls: list[dict[str, Any]],
) -> None:
    with _cloud():
        client_get()
    (call,) = cloud_calls
    assert call["cluster_url"] == CLUSTER_URL
    assert call["auth_credentials"].api_key == CLUSTER_KEY
    timeout = call["additional_config"].timeout
    assert (timeout.query, timeout.insert) == (600, 600)
    # The client adds X-Weaviate-Cluster-Url itself for *.weaviate.cloud: nothing else to send.
    assert "headers" not in call


def test_the_cloud_collection_uses_the_hosted_model_without_base_url(
    cloud_calls: list[dict[str, Any]], fresh_collection: None
) -> None:
    with _cloud():
        config = vector_config()._to_dict()
        assert config["vectorizer"] == {
            "multi2multivec-weaviate": {
                "imageFields": ["image"],
                "model": "ModernVBERT/colmodernvbert",
            }
        }
        assert config["vectorIndexType"] == "hnsw"
        assert config["vectorIndexConfig"]["multivector"]["enabled"] is True
        created = collection_ensure()
        assert created["created"] is True
        vector = created["vectors"]["page"]
        assert vector["vectorizer"] == "multi2multivec-weaviate"
        # No base URL stored: Weaviate sends inputs to its hosted Weaviate Embeddings.
        assert vector["settings"]["baseURL"] == ""
        assert vector["settings"]["model"] == "ModernVBERT/colmodernvbert"
        assert vector["settings"]["imageFields"] == ["image"]
        assert collection_ensure()["created"] is False


def test_the_self_hosted_collection_names_our_embedder() -> None:
    with override_settings(WEAVIATE_CLOUD=False, EMBEDDER_URL=SELF_HOSTED_EMBEDDER):
        assert vector_config()._to_dict()["vectorizer"]["multi2multivec-weaviate"] == {
            "imageFields": ["image"],
            "baseURL": f"{SELF_HOSTED_EMBEDDER}/",
            "model": "ModernVBERT/colmodernvbert",
        }


def _mismatch(weaviate_server: WeaviateInfo, *, made: str, used: str, **changes: Any) -> str:
    """Create the collection in mode `made`, then ensure it in mode `used`: the error text."""
    modes = {"cloud": _cloud, "self-hosted": lambda: _self_hosted(weaviate_server)}
    with modes[made]():
        collection_ensure()
    client_close()
    with modes[used](), override_settings(**changes), pytest.raises(SchemaMismatch) as caught:
        collection_ensure()
    client_close()
    return str(caught.value)


def test_switching_from_self_hosted_to_cloud_is_refused_and_explained(
    weaviate_server: WeaviateInfo, cloud_calls: list[dict[str, Any]], fresh_collection: None
) -> None:
    message = _mismatch(weaviate_server, made="self-hosted", used="cloud")
    assert (
        f"it was made for the self-hosted embedder at {SELF_HOSTED_EMBEDDER} with model "
        "'ModernVBERT/colmodernvbert', but the settings now ask for Weaviate Cloud's hosted "
        "model 'ModernVBERT/colmodernvbert'"
    ) in message
    assert REBUILD in message


def test_switching_from_cloud_to_self_hosted_is_refused_and_explained(
    weaviate_server: WeaviateInfo, cloud_calls: list[dict[str, Any]], fresh_collection: None
) -> None:
    message = _mismatch(weaviate_server, made="cloud", used="self-hosted")
    assert (
        "it was made for Weaviate Cloud's hosted model 'ModernVBERT/colmodernvbert', but the "
        f"settings now ask for the self-hosted embedder at {SELF_HOSTED_EMBEDDER}"
    ) in message
    assert REBUILD in message


def test_a_change_of_model_is_refused_and_explained(
    weaviate_server: WeaviateInfo, cloud_calls: list[dict[str, Any]], fresh_collection: None
) -> None:
    message = _mismatch(
        weaviate_server, made="cloud", used="cloud", WEAVIATE_MODEL="ModernVBERT/other-model"
    )
    assert "hosted model 'ModernVBERT/colmodernvbert', but the settings now ask for" in message
    assert "hosted model 'ModernVBERT/other-model'" in message
    assert REBUILD in message


def test_the_schema_command_stops_on_a_switch_and_asks_for_a_reindex_after_recreating(
    db: None,
    weaviate_server: WeaviateInfo,
    cloud_calls: list[dict[str, Any]],
    fresh_collection: None,
) -> None:
    Document.objects.create(
        owner=user_make(), title="Earlier", original_name="a.pdf", sha256="0", status=Status.READY
    )
    with _self_hosted(weaviate_server):
        call_command("weaviate_schema", stdout=io.StringIO(), stderr=io.StringIO())
    with _cloud():
        with pytest.raises(CommandError, match="does not match the settings"):
            call_command("weaviate_schema", stdout=io.StringIO())
        out, err = io.StringIO(), io.StringIO()
        call_command("weaviate_schema", "--recreate", stdout=out, stderr=err)
        assert json.loads(out.getvalue())["created"] is True
        assert "1 document(s) were indexed before" in err.getvalue()
        assert "python manage.py reindex" in err.getvalue()
        assert collection_describe()["vectors"]["page"]["settings"]["baseURL"] == ""
