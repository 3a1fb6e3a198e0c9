"""Search at scale: latency and recall@10 of Weaviate's multi-vector indexes against exact MaxSim.

Synthetic page multi-vectors shaped like ColModernVBERT's (bench/synthetic.py) go into a
dedicated Weaviate, in the collection configuration DocDB ships (docdb.weaviate_store.schema),
once as plain multi-vector HNSW and once MUVERA-encoded. Queries run as DocDB runs them (with
the owner filter) and without a filter; recall@10 is measured against brute-force MaxSim in
numpy over the same vectors. Query embedding is not included (see the ingestion benchmark).
"""

import time
from typing import Any

import numpy as np
import weaviate
from weaviate.classes.config import DataType, Property, Reconfigure
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.classes.query import Filter

from bench.common import API_KEY, Weaviate, percentile, table, weaviate_running
from bench.synthetic import Corpus, maxsim_exact
from docdb.weaviate_store.schema import VECTOR_NAME, self_provided_config

K = 10
OWNER = 1
# flat_search_cutoff values: a filtered search scans when it allows fewer objects than this.
FLAT_ALWAYS = 1_000_000_000
FLAT_NEVER = 0


def run(
    *,
    sizes: list[int],
    tokens: int,
    plain_max_pages: int,
    queries: int,
    efs: list[int],
    fetches: list[int],
) -> dict[str, Any]:
    corpus = Corpus(tokens_per_page=tokens)
    query_vectors = np.stack([corpus.query(number, pages=min(sizes)) for number in range(queries)])
    exact = _exact(corpus, query_vectors, pages=max(sizes))
    result: dict[str, Any] = {
        "tokens_per_page": tokens,
        "queries": queries,
        "query_tokens": int(query_vectors.shape[1]),
        "exact_ms_per_query_per_1000_pages": exact["ms_per_query_per_1000_pages"],
        "indexes": [],
    }
    plain_sizes = [size for size in sizes if size <= plain_max_pages]
    for muvera, index_sizes in ((False, plain_sizes), (True, sizes)):
        if not index_sizes:
            continue
        with weaviate_running() as server:
            result["indexes"] += _index_runs(
                server,
                corpus,
                query_vectors,
                exact["scores"],
                muvera=muvera,
                sizes=index_sizes,
                efs=efs,
                fetches=fetches if muvera else [K],
            )
    return result


def _exact(corpus: Corpus, queries: np.ndarray, *, pages: int) -> dict[str, Any]:
    """Exact MaxSim scores of every query against every page, and what computing them costs."""
    started = time.perf_counter()
    scores = np.concatenate(list(maxsim_exact(corpus, queries, pages=pages)), axis=1)
    seconds = time.perf_counter() - started
    # The same arithmetic on pages already in memory, without generating them.
    block = corpus.pages(0, min(pages, 256))
    flat = queries.reshape(-1, queries.shape[2]).T
    began = time.perf_counter()
    (block @ flat).max(axis=1)
    compute = time.perf_counter() - began
    per_query_per_1000 = compute / len(queries) / len(block) * 1000 * 1000
    print(f"exact MaxSim over {pages} pages for {len(queries)} queries: {seconds:.1f} s")
    return {"scores": scores, "ms_per_query_per_1000_pages": per_query_per_1000}


def _client(server: Weaviate) -> weaviate.WeaviateClient:
    return weaviate.connect_to_local(
        port=server.http_port,
        grpc_port=server.grpc_port,
        auth_credentials=Auth.api_key(API_KEY),
        additional_config=AdditionalConfig(timeout=Timeout(init=30, query=600, insert=600)),
    )


def _index_runs(
    server: Weaviate,
    corpus: Corpus,
    queries: np.ndarray,
    exact_scores: np.ndarray,
    *,
    muvera: bool,
    sizes: list[int],
    efs: list[int],
    fetches: list[int],
) -> list[dict[str, Any]]:
    name = "MUVERA" if muvera else "multi-vector HNSW"
    client = _client(server)
    try:
        client.collections.create(
            "BenchPage",
            properties=[
                Property(name="owner_id", data_type=DataType.INT),
                Property(name="page_number", data_type=DataType.INT),
            ],
            vector_config=[self_provided_config(muvera=muvera, ef=-1)],
        )
        collection = client.collections.use("BenchPage")
        rss_empty, disk_empty = server.rss_bytes(), server.disk_bytes()
        runs = []
        imported = 0
        for size in sizes:
            started = time.perf_counter()
            _import(collection, corpus, imported, size)
            import_seconds = time.perf_counter() - started
            pages_per_s = (size - imported) / import_seconds
            print(f"{name}: imported pages {imported}..{size - 1} at {pages_per_s:.1f} pages/s")
            imported = size
            time.sleep(2)  # let Weaviate flush, so disk and memory are what a page costs
            truth = np.argsort(-exact_scores[:, :size], axis=1)[:, :K]
            footprint = {
                "import_pages_per_s": pages_per_s,
                "memory_bytes_per_page": (server.rss_bytes() - rss_empty) / size,
                "disk_bytes_per_page": (server.disk_bytes() - disk_empty) / size,
            }
            for filtered, flat, ef, fetch in _settings(efs, fetches, muvera=muvera):
                collection.config.update(
                    vector_config=Reconfigure.Vectors.update(
                        name=VECTOR_NAME,
                        vector_index_config=Reconfigure.VectorIndex.hnsw(
                            ef=ef, flat_search_cutoff=FLAT_ALWAYS if flat else FLAT_NEVER
                        ),
                    )
                )
                measured = _queries(collection, queries, truth, fetch, filtered)
                runs.append(
                    {
                        "index": name,
                        "pages": size,
                        "owner_filter": filtered,
                        "path": "flat" if filtered and flat else "HNSW",
                        "ef": ef,
                        "fetch": fetch,
                        "candidates": _candidates(muvera, filtered and flat, ef, fetch),
                        **footprint,
                        **measured,
                    }
                )
                print(_run_line(runs[-1]))
        return runs
    finally:
        client.close()


def _settings(
    efs: list[int], fetches: list[int], *, muvera: bool
) -> list[tuple[bool, bool, int, int]]:
    """(owner filter, flat search, ef, pages asked for) to measure.

    With a filter that allows fewer objects than `flat_search_cutoff` (40 000 by default),
    Weaviate skips HNSW and scans the allowed objects; DocDB always filters by owner.
    """
    unfiltered = [(False, False, ef, K) for ef in efs]
    filtered_hnsw = [(True, False, ef, K) for ef in efs]
    filtered_flat = [(True, True, -1, fetch) for fetch in (fetches if muvera else [K])]
    return unfiltered + filtered_hnsw + filtered_flat


def _candidates(muvera: bool, flat: bool, ef: int, fetch: int) -> int | None:
    """Pages MUVERA re-ranks with exact MaxSim (Weaviate 1.39, hnsw/search.go): twice the
    limit on the flat path, else every result of the HNSW search, which holds ef of them."""
    if not muvera:
        return None
    if flat:
        return 2 * fetch
    return max(ef if ef > 0 else min(max(2 * fetch * 8, 100), 500), 2 * fetch)


def _import(collection: Any, corpus: Corpus, start: int, stop: int) -> None:
    # Several pages per request, a few requests in flight: ~0.5 MB per page on the wire.
    with collection.batch.fixed_size(batch_size=8, concurrent_requests=2) as batch:
        for number in range(start, stop):
            batch.add_object(
                properties={"owner_id": OWNER, "page_number": number},
                vector={VECTOR_NAME: corpus.page(number).tolist()},
            )
    failed = collection.batch.failed_objects
    if failed:
        raise RuntimeError(f"{len(failed)} pages failed to import: {failed[0].message}")


def _queries(
    collection: Any, queries: np.ndarray, truth: np.ndarray, fetch: int, filtered: bool
) -> dict[str, Any]:
    """Latency and recall@K of near_vector asking for `fetch` pages, keeping the best K."""
    filters = Filter.by_property("owner_id").equal(OWNER) if filtered else None
    vectors = [query.tolist() for query in queries]
    collection.query.near_vector(near_vector=vectors[0], target_vector=VECTOR_NAME, limit=fetch)
    latencies = []
    recalls = []
    for vector, relevant in zip(vectors, truth, strict=True):
        started = time.perf_counter()
        response = collection.query.near_vector(
            near_vector=vector,
            target_vector=VECTOR_NAME,
            limit=fetch,
            filters=filters,
            return_properties=["page_number"],
        )
        latencies.append(time.perf_counter() - started)
        found = [obj.properties["page_number"] for obj in response.objects[:K]]
        recalls.append(len(set(found) & set(relevant.tolist())) / K)
    return {
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "recall_at_10": float(np.mean(recalls)),
    }


def _run_line(run: dict[str, Any]) -> str:
    where = "owner filter" if run["owner_filter"] else "no filter"
    return (
        f"  {run['index']} {run['pages']} pages, {where}, {run['path']} ef {run['ef']}, "
        f"{run['candidates']} re-ranked: p50 {run['p50_ms']:.1f} ms, p95 {run['p95_ms']:.1f} ms, "
        f"recall@10 {run['recall_at_10']:.3f}"
    )


def _candidates_cell(run: dict[str, Any]) -> Any:
    if run["candidates"] is not None:
        return run["candidates"]
    return "all" if run["path"] == "flat" else "-"  # plain multi-vector: its own candidates


def report(result: dict[str, Any]) -> str:
    rows = [
        [
            run["index"],
            run["pages"],
            "owner" if run["owner_filter"] else "none",
            run["path"],
            "-" if run["path"] == "flat" else ("dynamic" if run["ef"] < 0 else run["ef"]),
            _candidates_cell(run),
            run["p50_ms"],
            run["p95_ms"],
            run["recall_at_10"],
        ]
        for run in result["indexes"]
    ]
    search = table(
        ["index", "pages", "filter", "search", "ef", "re-ranked", "p50 ms", "p95 ms", "recall@10"],
        rows,
    )
    seen = {}
    for run in result["indexes"]:
        seen[(run["index"], run["pages"])] = run
    footprint = table(
        ["index", "pages", "import pages/s", "memory KiB/page", "disk KiB/page"],
        [
            [
                index,
                pages,
                run["import_pages_per_s"],
                run["memory_bytes_per_page"] / 1024,
                run["disk_bytes_per_page"] / 1024,
            ]
            for (index, pages), run in seen.items()
        ],
    )
    return search + "\n\n" + footprint
