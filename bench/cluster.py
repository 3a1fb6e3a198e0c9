"""Weaviate as a cluster on one machine: what a page costs each node, and search latency against
the replication factor, the shard count and the read consistency (docs/scaling.md).

Three nodes of the pinned binary form one RAFT cluster on local ports
(docdb.localstack.weaviate_cluster_start, as tests/test_cluster.py runs them). For each layout
the collection is created as DocDB creates it (MUVERA beside pooled vectors,
docdb.weaviate_store.schema), the same synthetic pages shaped like ColModernVBERT's
(bench/synthetic.py) are imported, each node's objects (nodes API), memory (RSS) and disk are
read, and DocDB's two-stage search (`two_stage_search`, owner filter) is timed at consistency
ONE and QUORUM. The nodes share this machine's cores: the figures compare layouts with each
other; a cluster of machines adds network round trips and removes the sharing.

    python -m bench.cluster --pages 2000 --queries 50 --out bench/results/cluster.json
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import django
import numpy as np
import weaviate
from weaviate.classes.config import Configure, DataType, Property
from weaviate.classes.config import ConsistencyLevel as Level
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.classes.query import Filter

from bench.common import API_KEY, percentile, process_rss_bytes, results_save
from bench.search import OWNER, _import
from bench.synthetic import Corpus
from docdb.localstack import WeaviateCluster, WeaviateServer, weaviate_cluster_start
from docdb.weaviate_store.pages import two_stage_search
from docdb.weaviate_store.schema import self_provided_config, self_provided_pooled_config

NODES = 3
# (replication factor, shards): one copy on one node; one copy spread over three; every node a
# copy; every node a copy of each of three shards.
LAYOUTS = [(1, 1), (1, 3), (3, 1), (3, 3)]
POOLED = 32
# Vectors per page: an A4 page at the model's default size (docs/benchmarks.md).
TOKENS = 882
CANDIDATES = 40


def _disk(node: WeaviateServer) -> int:
    folder = Path(node.env["PERSISTENCE_DATA_PATH"])
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _client(node: WeaviateServer) -> weaviate.WeaviateClient:
    return weaviate.connect_to_local(
        port=node.ports.http,
        grpc_port=node.ports.grpc,
        auth_credentials=Auth.api_key(API_KEY),
        additional_config=AdditionalConfig(timeout=Timeout(init=30, query=600, insert=600)),
    )


def _settled(cluster: WeaviateCluster, name: str, expected: int, timeout: float = 300) -> None:
    """Wait until the nodes report every copy (the nodes API counts objects asynchronously)."""
    deadline = time.monotonic() + timeout
    while (
        sum(cluster.objects_per_node(name, api_key=API_KEY).values()) < expected
        and time.monotonic() < deadline
    ):
        time.sleep(2)


def layout_measure(
    cluster: WeaviateCluster,
    corpus: Corpus,
    queries: np.ndarray,
    *,
    factor: int,
    shards: int,
    pages: int,
) -> dict[str, Any]:
    name = f"BenchCluster_{factor}x{shards}"
    first = cluster.nodes[0]
    client = _client(first)
    try:
        rss_before = [process_rss_bytes(node.process.pid) for node in cluster.nodes]
        disk_before = [_disk(node) for node in cluster.nodes]
        client.collections.create(
            name,
            properties=[
                Property(name="owner_id", data_type=DataType.INT),
                Property(name="page_number", data_type=DataType.INT),
            ],
            vector_config=[
                self_provided_config(muvera=True, ef=-1),
                self_provided_pooled_config(ef=-1),
            ],
            replication_config=Configure.replication(factor=factor) if factor > 1 else None,
            sharding_config=Configure.sharding(desired_count=shards),
        )
        collection = client.collections.use(name)
        started = time.perf_counter()
        # Written as DocDB writes with replicas (DOCDB_WEAVIATE_WRITE_CONSISTENCY, QUORUM).
        _import(collection.with_consistency_level(Level.QUORUM), corpus, 0, pages, pooled=POOLED)
        import_seconds = time.perf_counter() - started
        _settled(cluster, name, pages * factor)
        time.sleep(2)  # flushed, so memory and disk are what the pages cost
        objects = cluster.objects_per_node(name, api_key=API_KEY)
        row: dict[str, Any] = {
            "replication_factor": factor,
            "shards": shards,
            "pages": pages,
            "import_pages_per_s": pages / import_seconds,
            "objects_per_node": objects,
            "memory_bytes_per_page_per_node": [
                (process_rss_bytes(node.process.pid) - before) / pages
                for node, before in zip(cluster.nodes, rss_before, strict=True)
            ],
            "disk_bytes_per_page_per_node": [
                (_disk(node) - before) / pages
                for node, before in zip(cluster.nodes, disk_before, strict=True)
            ],
            "search": {},
        }
        filters = Filter.by_property("owner_id").equal(OWNER)
        for level in (Level.ONE, Level.QUORUM):
            reading = collection.with_consistency_level(level)
            vectors = [query.tolist() for query in queries]
            two_stage_search(
                reading, vectors[0], filters=filters, candidates=CANDIDATES, return_properties=[]
            )
            latencies = []
            for vector in vectors:
                began = time.perf_counter()
                two_stage_search(
                    reading, vector, filters=filters, candidates=CANDIDATES, return_properties=[]
                )
                latencies.append(time.perf_counter() - began)
            row["search"][level.value] = {
                "p50_ms": percentile(latencies, 0.5) * 1000,
                "p95_ms": percentile(latencies, 0.95) * 1000,
            }
        client.collections.delete(name)
        return row
    finally:
        client.close()


def run(*, pages: int, queries: int) -> dict[str, Any]:
    corpus = Corpus(tokens_per_page=TOKENS)
    query_vectors = np.stack([corpus.query(number, pages=pages) for number in range(queries)])
    folder = Path(tempfile.mkdtemp(prefix="docdb-bench-cluster-"))
    cluster = weaviate_cluster_start(
        size=NODES,
        data_dir=folder / "data",
        api_key=API_KEY,
        log_dir=folder,
        env={"LOG_LEVEL": "error", "GOMEMLIMIT": "4GiB"},
    )
    try:
        rows = []
        for factor, shards in LAYOUTS:
            row = layout_measure(
                cluster, corpus, query_vectors, factor=factor, shards=shards, pages=pages
            )
            print(json.dumps(row))
            rows.append(row)
    finally:
        cluster.stop()
    return {
        "nodes": NODES,
        "pages": pages,
        "tokens_per_page": TOKENS,
        "pooled_vectors": POOLED,
        "candidates": CANDIDATES,
        "queries": queries,
        "layouts": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster")
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    # The collection's index settings are read from DocDB's settings, as the app creates it.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "docdb.settings")
    django.setup()
    result = run(pages=args.pages, queries=args.queries)
    if args.out:
        # With the machine it was measured on (its load included: the nodes share its cores).
        results_save(args.out.parent, args.out.stem, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
