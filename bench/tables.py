"""The tables of each benchmark section, from its typed results: printed when the section runs
and shown in docs/benchmarks.md. Light on purpose: rendering the report imports no benchmark."""

from typing import Any

from bench.common import table
from bench.results import (
    MUVERA,
    IngestResult,
    SearchResult,
    SearchRun,
    VectorizeResult,
    WebResult,
)


def ingest_table(result: IngestResult) -> str:
    names = list(result.models)
    stages = list(next(iter(result.models.values())).s_per_page)
    rows = []
    for stage in stages:
        row: list[Any] = [stage]
        for name in names:
            model = result.models[name]
            seconds = model.s_per_page[stage]
            row += [seconds * 1000, 1 / seconds if seconds else float("nan"), model.share[stage]]
        rows.append(row)
    total: list[Any] = ["**total**"]
    for name in names:
        model = result.models[name]
        total += [model.total_s_per_page * 1000, model.pages_per_s, 1.0]
    rows.append(total)
    headers = ["stage"]
    for name in names:
        headers += [f"{name} ms/page", f"{name} pages/s", f"{name} share"]
    formatted = [
        [
            f"{value:.1%}" if index % 3 == 0 and index > 0 and isinstance(value, float) else value
            for index, value in enumerate(row)
        ]
        for row in rows
    ]
    return table(headers, formatted)


def vectorize_table(result: VectorizeResult) -> str:
    return table(
        ["mode", "whole pipeline pages/s", "embed + import pages/s", "pages per call"],
        [
            [run.mode, run.pipeline_pages_per_s, run.embed_import_pages_per_s, run.pages_per_call]
            for run in result.runs
        ],
    )


def web_table(result: WebResult) -> str:
    rows = [
        [
            f"{mode}-side",
            run.endpoint,
            run.mode,
            run.p50_ms,
            run.p95_ms,
            run.bytes / 1024,
            "-" if run.thumbnail_bytes is None else run.thumbnail_bytes / 1024,
        ]
        for mode, measured in result.modes.items()
        for run in measured.endpoints
    ]
    return table(
        ["vectors", "endpoint", "search", "p50 ms", "p95 ms", "response KiB", "thumbnails KiB"],
        rows,
    )


def search_table(result: SearchResult) -> str:
    rows = [
        [
            run.index,
            run.pages,
            "owner" if run.owner_filter else "none",
            run.path,
            "-" if run.path == "flat" else ("dynamic" if run.ef < 0 else run.ef),
            _candidates_cell(run),
            run.p50_ms,
            run.p95_ms,
            run.recall_at_10,
        ]
        for run in result.indexes
    ]
    search = table(
        ["index", "pages", "filter", "search", "ef", "re-ranked", "p50 ms", "p95 ms", "recall@10"],
        rows,
    )
    seen = {}
    for run in result.indexes:
        # Two-stage rows share the MUVERA collection (and its pooled vectors) and footprint.
        index = run.index
        if index == MUVERA and result.pooled_vectors:
            index = f"{MUVERA} + pooled {result.pooled_vectors}"
        if not index.startswith("two-stage"):
            seen[(index, run.pages)] = run
    footprint = table(
        ["index", "pages", "import pages/s", "memory KiB/page", "disk KiB/page"],
        [
            [
                index,
                pages,
                run.import_pages_per_s,
                run.memory_bytes_per_page / 1024,
                run.disk_bytes_per_page / 1024,
            ]
            for (index, pages), run in seen.items()
        ],
    )
    return search + "\n\n" + footprint


def sensitivity_table(result: SearchResult) -> str:
    rows = result.pooling_sensitivity
    if not rows:
        return ""
    counts = list(rows[0].recalls())
    return table(
        ["own concepts", "pooled", "exact score #1", "#10", "#50"]
        + [f"top 10 in best {count}" for count in counts],
        [
            [row.own_concepts, row.pooled, row.score_1, row.score_10, row.score_50]
            + [row.recalls()[count] for count in counts]
            for row in rows
        ],
    )


def _candidates_cell(run: SearchRun) -> Any:
    if run.candidates is not None:
        return run.candidates
    return "all" if run.path == "flat" else "-"  # plain multi-vector: its own candidates
