"""Search at scale: latency and recall@10 of Weaviate's multi-vector indexes against exact MaxSim.

Synthetic page multi-vectors shaped like ColModernVBERT's (bench/synthetic.py) go into a
dedicated Weaviate, in the collection configuration DocDB ships (docdb.weaviate_store.schema),
once as plain multi-vector HNSW and once MUVERA-encoded beside pooled vectors (DocDB's
two-stage search: candidates by MaxSim over pooled vectors, re-ranked exactly). Queries run as
DocDB runs them (with the owner filter; two-stage through DocDB's own `two_stage_search`) and
without a filter; recall@10 is measured against brute-force MaxSim in numpy over the same
vectors. Query embedding is not included (see the ingestion benchmark).
"""

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import weaviate
from weaviate.classes.config import DataType, Property, Reconfigure
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.classes.query import Filter

from bench.common import API_KEY, Weaviate, percentile, weaviate_running
from bench.results import MUVERA, PLAIN, two_stage_name
from bench.synthetic import PAGE_CONCEPTS_OWN, Corpus, maxsim_exact
from docdb.pooling import multivector_pool
from docdb.weaviate_store.pages import two_stage_search, two_stage_window
from docdb.weaviate_store.schema import (
    POOLED_VECTOR_NAME,
    VECTOR_NAME,
    self_provided_config,
    self_provided_pooled_config,
)

K = 10
OWNER = 1
# flat_search_cutoff values: a filtered search scans when it allows fewer objects than this.
FLAT_ALWAYS = 1_000_000_000
FLAT_NEVER = 0
# The re-ranking query scans its candidates: any cutoff above their number will do.
FLAT_RERANK = 2000
# Concepts of a page's own, from the corpus default (4) to pages whose tokens spread wide.
SENSITIVITY_OWN_CONCEPTS = [PAGE_CONCEPTS_OWN, 24, 60]


def run(
    *,
    sizes: list[int],
    tokens: int | Mapping[int, float],
    plain_max_pages: int,
    queries: int,
    efs: list[int],
    fetches: list[int],
    pooled: int,
    pooled_efs: list[int],
    reranks: list[int],
) -> dict[str, Any]:
    corpus = Corpus(tokens_per_page=tokens)
    query_vectors = np.stack([corpus.query(number, pages=min(sizes)) for number in range(queries)])
    exact = _exact(corpus, query_vectors, pages=max(sizes))
    result: dict[str, Any] = {
        "tokens_per_page": corpus.mean_tokens,
        # Vectors per page -> share of the pages, when pages come in several sizes.
        "tokens_mix": None if isinstance(tokens, int) else {str(k): v for k, v in tokens.items()},
        "queries": queries,
        "query_tokens": int(query_vectors.shape[1]),
        "exact_ms_per_query_per_1000_pages": exact["ms_per_query_per_1000_pages"],
        "pooled_vectors": pooled,
        "pool_ms_per_page": _pool_cost(corpus, pooled),
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
                # Beside MUVERA, as DocDB's collections hold them.
                pooled=pooled if muvera else 0,
                pooled_efs=pooled_efs,
                reranks=reranks,
            )
    if pooled:
        result["pooling_sensitivity"] = pooling_sensitivity(
            pages=min(sizes),
            tokens=tokens,
            queries=min(queries, 40),
            own_concepts=SENSITIVITY_OWN_CONCEPTS,
            pool_sizes=sorted({max(1, pooled // 2), pooled}),
            candidates=reranks,
        )
    return result


def pooling_sensitivity(
    *,
    pages: int,
    tokens: int | Mapping[int, float],
    queries: int,
    own_concepts: list[int],
    pool_sizes: list[int],
    candidates: list[int],
) -> list[dict[str, Any]]:
    """How well the first stage holds the exact top 10 as pages spread wider, in numpy.

    Pages with more concepts of their own have tokens that pool less well, and their exact
    top 10 past the best page are near-ties (the score gap between ranks 10 and 50 shows it).
    Pooled MaxSim is computed exactly here, as Weaviate's flat path does.
    """
    rows = []
    for own in own_concepts:
        corpus = Corpus(tokens_per_page=tokens, own_concepts=own)
        query_vectors = np.stack([corpus.query(number, pages=pages) for number in range(queries)])
        scores = np.concatenate(list(maxsim_exact(corpus, query_vectors, pages=pages)), axis=1)
        truth = np.argsort(-scores, axis=1)[:, :K]
        ranked = -np.sort(-scores, axis=1)
        page_vectors = [corpus.page(number) for number in range(pages)]
        flat_queries = query_vectors.reshape(-1, query_vectors.shape[2]).T
        for size in pool_sizes:
            pooled = np.stack([multivector_pool(page, size) for page in page_vectors])
            similarity = (pooled.reshape(-1, pooled.shape[2]) @ flat_queries).reshape(
                pages, size, queries, -1
            )
            order = np.argsort(-similarity.max(axis=1).sum(axis=2).T, axis=1)
            row: dict[str, Any] = {
                "own_concepts": own,
                "pooled": size,
                "score_1": float(ranked[:, 0].mean()),
                "score_10": float(ranked[:, K - 1].mean()),
                "score_50": float(ranked[:, min(49, pages - 1)].mean()),
            }
            for count in candidates:
                found = [
                    len(set(best) & set(ranking[:count])) / K
                    for best, ranking in zip(truth, order, strict=True)
                ]
                row[f"recall_in_{count}"] = float(np.mean(found))
            rows.append(row)
            print(f"  pooling, {own} own concepts, pooled {size}: {row}")
    return rows


def _pool_cost(corpus: Corpus, pooled: int) -> float:
    """Milliseconds to pool one page (the embedder or the worker pays it at import)."""
    pages = [corpus.page(number) for number in range(20)]
    started = time.perf_counter()
    for page in pages:
        multivector_pool(page, pooled)
    return (time.perf_counter() - started) / len(pages) * 1000


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
    pooled: int,
    pooled_efs: list[int],
    reranks: list[int],
) -> list[dict[str, Any]]:
    name = MUVERA if muvera else PLAIN
    if pooled:
        name += f" + pooled {pooled}"
    vector_config = [self_provided_config(muvera=muvera, ef=-1)]
    if pooled:
        vector_config.append(self_provided_pooled_config(ef=-1))
    client = _client(server)
    try:
        client.collections.create(
            "BenchPage",
            properties=[
                Property(name="owner_id", data_type=DataType.INT),
                Property(name="page_number", data_type=DataType.INT),
            ],
            vector_config=vector_config,
        )
        collection = client.collections.use("BenchPage")
        rss_empty, disk_empty = server.rss_bytes(), server.disk_bytes()
        runs = []
        imported = 0
        for size in sizes:
            started = time.perf_counter()
            _import(collection, corpus, imported, size, pooled=pooled)
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
                _index_set(collection, VECTOR_NAME, ef=ef, flat=flat)
                measured = _queries(collection, queries, truth, fetch, filtered)
                runs.append(
                    {
                        "index": MUVERA if muvera else PLAIN,
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
            if pooled:
                runs += _two_stage_runs(
                    collection,
                    queries,
                    truth,
                    name=two_stage_name(pooled),
                    pages=size,
                    pooled_efs=pooled_efs,
                    reranks=reranks,
                    footprint=footprint,
                )
        return runs
    finally:
        client.close()


def _index_set(collection: Any, vector: str, *, ef: int, flat: bool | int) -> None:
    cutoff = flat if not isinstance(flat, bool) else (FLAT_ALWAYS if flat else FLAT_NEVER)
    collection.config.update(
        vector_config=Reconfigure.Vectors.update(
            name=vector,
            vector_index_config=Reconfigure.VectorIndex.hnsw(ef=ef, flat_search_cutoff=cutoff),
        )
    )


def _two_stage_runs(
    collection: Any,
    queries: np.ndarray,
    truth: np.ndarray,
    *,
    name: str,
    pages: int,
    pooled_efs: list[int],
    reranks: list[int],
    footprint: dict[str, Any],
) -> list[dict[str, Any]]:
    """DocDB's semantic search: candidates from the pooled index (scanned, or through HNSW at
    each ef), all re-ranked with exact MaxSim by a scan of the MUVERA index."""
    _index_set(collection, VECTOR_NAME, ef=-1, flat=FLAT_RERANK)
    runs = []
    for flat, ef in [(True, -1)] + [(False, ef) for ef in pooled_efs]:
        _index_set(collection, POOLED_VECTOR_NAME, ef=ef, flat=flat)
        for rerank in reranks:
            measured = _two_stage_queries(collection, queries, truth, rerank)
            runs.append(
                {
                    "index": name,
                    "pages": pages,
                    "owner_filter": True,
                    "path": "flat" if flat else "HNSW",
                    "ef": ef,
                    "fetch": rerank,
                    "candidates": rerank,
                    **footprint,
                    **measured,
                }
            )
            print(_run_line(runs[-1]))
            if flat:
                runs[-1]["windows"] = _window_queries(collection, queries, rerank)
    return runs


# "More results": the search page's windows of 24 results (one more asked for, to know if
# there are more).
WINDOW = 24
WINDOWS = 4


def _window_queries(collection: Any, queries: np.ndarray, rerank: int) -> list[dict[str, Any]]:
    """Latency of the search page's first windows of results: in tiers of `rerank` candidates
    (DocDB's ranking, every window a slice of one ranking) against re-ranking max(`rerank`,
    the results up to the window's end) candidates at once (before tiers)."""
    filters = Filter.by_property("owner_id").equal(OWNER)
    vectors = [query.tolist() for query in queries]
    rows = []
    for window in range(WINDOWS):
        offset, limit = window * WINDOW, WINDOW + 1
        tiers, at_once = [], []
        for vector in vectors:
            started = time.perf_counter()
            two_stage_window(
                collection, vector, filters=filters, tier=rerank, limit=limit, offset=offset
            )
            tiers.append(time.perf_counter() - started)
            started = time.perf_counter()
            candidates = max(rerank, offset + limit)
            two_stage_search(
                collection, vector, filters=filters, candidates=candidates, return_properties=[]
            )
            at_once.append(time.perf_counter() - started)
        row = {
            "window": window + 1,
            "tiers_p50_ms": percentile(tiers, 0.5) * 1000,
            "tiers_p95_ms": percentile(tiers, 0.95) * 1000,
            "at_once_p50_ms": percentile(at_once, 0.5) * 1000,
            "at_once_p95_ms": percentile(at_once, 0.95) * 1000,
        }
        rows.append(row)
        print(
            f"    window {row['window']} (results {offset + 1}-{offset + WINDOW}), {rerank} a "
            f"tier: p50 {row['tiers_p50_ms']:.1f} ms, p95 {row['tiers_p95_ms']:.1f} ms; "
            f"re-ranked at once: p50 {row['at_once_p50_ms']:.1f} ms, "
            f"p95 {row['at_once_p95_ms']:.1f} ms"
        )
    return rows


def _two_stage_queries(
    collection: Any, queries: np.ndarray, truth: np.ndarray, rerank: int
) -> dict[str, Any]:
    filters = Filter.by_property("owner_id").equal(OWNER)
    vectors = [query.tolist() for query in queries]
    two_stage_search(collection, vectors[0], filters=filters, candidates=rerank,
                     return_properties=["page_number"])  # fmt: skip
    latencies = []
    recalls = []
    for vector, relevant in zip(vectors, truth, strict=True):
        started = time.perf_counter()
        objects = two_stage_search(
            collection,
            vector,
            filters=filters,
            candidates=rerank,
            return_properties=["page_number"],
        )
        latencies.append(time.perf_counter() - started)
        found = [obj.properties["page_number"] for obj in objects[:K]]
        recalls.append(len(set(found) & set(relevant.tolist())) / K)
    return {
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "recall_at_10": float(np.mean(recalls)),
    }


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


def _import(collection: Any, corpus: Corpus, start: int, stop: int, *, pooled: int) -> None:
    # Several pages per request, a few requests in flight: ~0.5 MB per page on the wire.
    with collection.batch.fixed_size(batch_size=8, concurrent_requests=2) as batch:
        for number in range(start, stop):
            page = corpus.page(number)
            vectors = {VECTOR_NAME: page.tolist()}
            if pooled:
                vectors[POOLED_VECTOR_NAME] = multivector_pool(page, pooled).tolist()
            batch.add_object(properties={"owner_id": OWNER, "page_number": number}, vector=vectors)
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
