"""DocDB on a Weaviate cluster: three nodes of the pinned weaviate-server as one RAFT cluster on
local ports (the same binary as every other test), HAProxy (Debian's) in front of them as the
one address DocDB knows, a collection with three replicas, and a worker and searches pointed at
the balancer. A node is SIGKILLed during ingestion and during searches: no search fails, no page
is lost or duplicated, and the node catches up when it comes back. Then the node that DocDB's
connections go to is killed: they move to the others."""

import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractUser
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from docdb.documents.models import Document, Page, Status
from docdb.documents.services import document_upload
from docdb.localstack import Balancer, WeaviateCluster, haproxy_start, weaviate_cluster_start
from docdb.search.services import SearchCriteria, search_run
from docdb.weaviate_store import (
    SearchMode,
    client_close,
    collection_describe,
    collection_recreate,
    pages_count,
)
from tests.conftest import API_KEY, Service, Stack, beat_start, worker_start
from tests.helpers import document_wait, user_make
from tests.pdf_factory import pdf_make

# Opt-in (DOCDB_CLUSTER_TESTS=1): they add about 5 minutes to a run that is kept under its time
# budget. They passed alone and in a full run; the one hang seen (a write waiting 10 minutes) was
# the RAFT leader's loss, now killed on purpose and bounded by WRITE_DEADLINE_S.
pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.cluster,
    pytest.mark.skipif(
        os.environ.get("DOCDB_CLUSTER_TESTS") != "1",
        reason="cluster tests are opt-in (DOCDB_CLUSTER_TESTS=1) until they are reliable",
    ),
]

COLLECTION = "DocDBPage"
# Weaviate 1.39 answers the first write, and the first read of the collection's configuration,
# after its RAFT leader died only when the request's deadline runs out (measured: 601 s with the
# default 600-s deadline; the next requests take 10 ms). The tiny model's imports and searches
# take well under a second, so 20 s is room enough; the request that waits fails, and the
# pipeline retries the write and the error boundary the search, as for a user (docs/scaling.md).
WRITE_DEADLINE_S = 20
DOCUMENTS = 4
PAGES = 2


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WeaviateCluster]:
    folder = tmp_path_factory.mktemp("cluster")
    started = time.monotonic()
    cluster = weaviate_cluster_start(
        size=3, data_dir=folder / "data", api_key=API_KEY, log_dir=folder, timeout=90
    )
    print(f"3-node cluster ready in {time.monotonic() - started:.1f} s")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def balancer(
    cluster: WeaviateCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Balancer]:
    balancer = haproxy_start(cluster, folder=tmp_path_factory.mktemp("haproxy"))
    yield balancer
    balancer.stop()


@dataclass
class OnCluster:
    """The stack's worker and beat replaced by ones pointed at the cluster, as is this process."""

    cluster: WeaviateCluster
    balancer: Balancer
    worker: Service
    owner: AbstractUser
    directory: Path
    failures: list[str] = field(default_factory=list)

    def node_kill(self, index: int) -> None:
        node = self.cluster.nodes[index]
        os.killpg(node.process.pid, signal.SIGKILL)
        node.process.wait()

    def upload(self, name: str) -> Document:
        path = pdf_make(
            self.directory / f"{name}.pdf",
            pages=[[f"{name} page {n}", f"marker{name}p{n}"] for n in range(1, PAGES + 1)],
        )
        upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/pdf")
        return document_upload(owner=self.owner, upload=upload)  # type: ignore[arg-type]


@pytest.fixture
def on_cluster(
    live: Stack, cluster: WeaviateCluster, balancer: Balancer, tmp_path: Path
) -> Iterator[OnCluster]:
    override = override_settings(
        WEAVIATE_URL=balancer.url,
        WEAVIATE_GRPC_PORT=balancer.grpc_port,
        WEAVIATE_REPLICATION_FACTOR=3,
        WEAVIATE_TIMEOUT_SECONDS=WRITE_DEADLINE_S,
    )
    override.enable()
    client_close()
    live.beat.stop()
    live.worker.stop()
    env = {
        **live.worker_env,
        "DOCDB_WEAVIATE_URL": balancer.url,
        "DOCDB_WEAVIATE_GRPC_PORT": str(balancer.grpc_port),
        "DOCDB_WEAVIATE_REPLICATION_FACTOR": "3",
        "DOCDB_WEAVIATE_TIMEOUT_SECONDS": str(WRITE_DEADLINE_S),
    }
    worker = worker_start(env, live.stack_dir, name="cluster-worker")
    beat = beat_start(env, live.stack_dir)
    try:
        for index in range(3):
            if cluster.nodes[index].process.poll() is not None:
                cluster.node_restart(index)
        collection_recreate()
        yield OnCluster(cluster, balancer, worker, user_make(), tmp_path)
    finally:
        beat.stop()
        worker.stop()
        client_close()
        override.disable()
        live.worker.start()
        live.beat.start()


def _searching(on: OnCluster, stop: threading.Event, done: list[int]) -> None:
    """Search as the page does, without pause, until `stop`; every failure is recorded."""
    queries = [
        SearchCriteria(query="marker", mode=SearchMode.KEYWORD),
        SearchCriteria(query="page of a document", mode=SearchMode.VECTOR),
        SearchCriteria(query="page", mode=SearchMode.HYBRID),
    ]
    while not stop.is_set():
        criteria = queries[done[0] % len(queries)]
        try:
            search_run(user=on.owner, criteria=criteria)  # type: ignore[arg-type]
        except Exception as exc:  # every failure counts, whatever its kind
            on.failures.append(f"{criteria.mode}: {type(exc).__name__}: {exc}")
        done[0] += 1


def _search_while(on: OnCluster) -> tuple[threading.Event, threading.Thread, list[int]]:
    stop, done = threading.Event(), [0]
    thread = threading.Thread(target=_searching, args=(on, stop, done), daemon=True)
    thread.start()
    return stop, thread, done


def _all_ready(documents: list[Document]) -> list[Document]:
    finished = [document_wait(document.id, timeout=400) for document in documents]
    for document in finished:
        assert document.status == Status.READY, (document.title, document.error)
    return finished


def _caught_up(cluster: WeaviateCluster, expected: int, timeout: float = 240) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        counts = cluster.objects_per_node(COLLECTION, api_key=API_KEY)
        if len(counts) == 3 and all(count == expected for count in counts.values()):
            return counts
        if time.monotonic() > deadline:
            raise AssertionError(f"nodes hold {counts}, not {expected} objects each")
        time.sleep(2)


def _nothing_lost(on: OnCluster, documents: list[Document]) -> None:
    total = len(documents) * PAGES
    assert Page.objects.filter(document__in=documents).count() == total
    assert pages_count(owner_id=on.owner.pk) == total
    for document in documents:
        assert pages_count(owner_id=on.owner.pk, document_id=document.id) == PAGES


def test_a_node_killed_during_ingestion_and_searches_fails_nothing_and_catches_up(
    on_cluster: OnCluster,
) -> None:
    on = on_cluster
    description = collection_describe()
    assert (description["replication_factor"], description.get("note")) == (3, None)
    stop, thread, done = _search_while(on)
    documents = [on.upload(f"d{number}") for number in range(DOCUMENTS)]
    # Killed once ingestion is under way: some pages are in, most are not.
    deadline = time.monotonic() + 300
    while not Page.objects.filter(document__in=documents).exists():
        assert time.monotonic() < deadline, "no page was ingested"
        time.sleep(0.2)
    # The RAFT leader: the worst node to lose (see WRITE_DEADLINE_S).
    killed = on.cluster.raft_leader(api_key=API_KEY)
    on.node_kill(killed)
    searched_before = done[0]
    documents = _all_ready(documents)
    time.sleep(2)  # a few more searches with the node away
    stop.set()
    thread.join(timeout=60)
    assert on.failures == []
    assert done[0] > searched_before, "no search ran while the node was down"
    _nothing_lost(on, documents)

    on.cluster.node_restart(killed)
    counts = _caught_up(on.cluster, DOCUMENTS * PAGES)
    print(f"objects per node after node{killed + 1} came back: {counts}; {done[0]} searches")


def test_docdb_moves_to_the_next_node_when_the_one_it_talks_to_is_killed(
    on_cluster: OnCluster,
) -> None:
    on = on_cluster
    first = [on.upload(f"e{number}") for number in range(2)]
    _all_ready(first)
    stop, thread, done = _search_while(on)
    time.sleep(1)
    connections = on.balancer.connections()
    busiest = max(connections, key=lambda name: connections[name])
    assert connections[busiest] > 0, connections
    on.node_kill(int(busiest.removeprefix("node")) - 1)
    later = [on.upload(f"f{number}") for number in range(2)]
    documents = _all_ready(first + later)
    searched = done[0]
    time.sleep(2)
    stop.set()
    thread.join(timeout=60)
    assert on.failures == []
    assert done[0] > searched
    _nothing_lost(on, documents)
    on.cluster.node_restart(int(busiest.removeprefix("node")) - 1)
    _caught_up(on.cluster, len(documents) * PAGES)
