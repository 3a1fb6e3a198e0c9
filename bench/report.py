"""docs/benchmarks.md and its plots, from the saved results (bench/results/*.json).

The results are read typed (bench/results.py); this module works out the numbers the page shows
(which run is DocDB's setting, which target is met) and draws the plots; every sentence is in
bench/templates/, which renders the page from the results and those numbers.
"""

import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench import geometry, tables
from bench.common import PUBLISHED_RESULTS_DIR, cell_format
from bench.results import (
    MUVERA,
    PLAIN,
    GpuResult,
    IngestResult,
    OcrResult,
    PrecisionResult,
    ResampleResult,
    ResultT,
    SchedulingResult,
    SearchResult,
    SearchRun,
    ServiceRun,
    VectorizeResult,
    WebResult,
    mode_name,
    result_load,
    two_stage_name,
)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
NON_MODEL_TARGET = 0.10
P95_TARGET_MS = 100.0
RECALL_TARGET = 0.95
SEARCH_TARGET_PAGES = 10_000
GPU_TARGET = 0.80


@dataclass(frozen=True)
class Results:
    """Every saved result the page is built from; a section that has not run is None."""

    ingest: IngestResult | None = None
    vectorize: VectorizeResult | None = None
    web: WebResult | None = None
    search: SearchResult | None = None
    gpu_history: list[tuple[str, GpuResult]] = field(default_factory=list)
    scheduling: SchedulingResult | None = None
    # bench/precision.py's runs, the main one (precision.json) first.
    precision: list[PrecisionResult] = field(default_factory=list)
    resample: ResampleResult | None = None
    ocr: OcrResult | None = None

    @property
    def gpu(self) -> GpuResult | None:
        """The newest GPU run: files are named gpu-KIND-N-WHAT.json, N counting up."""
        return self.gpu_history[-1][1] if self.gpu_history else None


def results_read(sections_dir: Path, *, gpu_dir: Path = PUBLISHED_RESULTS_DIR) -> Results:
    """The sections' results saved in `sections_dir`; in `gpu_dir`, those that their own scripts
    write (the GPU runs, bench/scheduling.py, bench/precision.py, bench/resample.py,
    bench/ocr.py)."""

    def section(name: str, kind: type[ResultT]) -> ResultT | None:
        path = sections_dir / f"{name}.json"
        return result_load(path, kind) if path.exists() else None

    def published(name: str, kind: type[ResultT]) -> ResultT | None:
        path = gpu_dir / f"{name}.json"
        return result_load(path, kind) if path.exists() else None

    return Results(
        ingest=section("ingest", IngestResult),
        vectorize=section("vectorize", VectorizeResult),
        web=section("web", WebResult),
        search=section("search", SearchResult),
        gpu_history=[
            (path.stem, result_load(path, GpuResult)) for path in sorted(gpu_dir.glob("gpu-*.json"))
        ],
        scheduling=published("scheduling", SchedulingResult),
        precision=_precision_runs(gpu_dir),
        resample=published("resample", ResampleResult),
        ocr=published("ocr", OcrResult),
    )


def _precision_runs(folder: Path) -> list[PrecisionResult]:
    """bench/precision.py's runs: the main one (precision.json) first, then the newest first."""
    runs = {path.stem: result_load(path, PrecisionResult) for path in folder.glob("precision*")}
    main = [runs.pop("precision")] if "precision" in runs else []
    return main + sorted(runs.values(), key=lambda run: run.machine.measured_at, reverse=True)


def write(docs: Path, results: Results) -> Path:
    """docs/benchmarks.md and the plots of the sections that have results."""
    docs.mkdir(parents=True, exist_ok=True)
    if results.ingest:
        _plot_ingest(results.ingest, docs / "bench-ingest.png")
    if results.search:
        _plot_search(results.search, docs / "bench-search.png")
    if results.gpu:
        _plot_gpu(results.gpu, docs / "bench-gpu.png")
    if results.scheduling:
        _plot_scheduling(results.scheduling, docs / "bench-scheduling.png")
    path = docs / "benchmarks.md"
    path.write_text(page_render(results))
    return path


def page_render(results: Results) -> str:
    """The Markdown of docs/benchmarks.md."""
    template = _environment().get_template("benchmarks.md.j2")
    return template.render(
        results=results,
        gpu=results.gpu,
        machines=[
            (name, result.machine)
            for name, result in (
                ("ingest", results.ingest),
                ("vectorize", results.vectorize),
                ("web", results.web),
                ("search", results.search),
            )
            if result
        ],
        targets=_targets(results),
        decisions=_decisions(results),
        not_met=_not_met(results),
        ingest=_ingest_numbers(results.ingest) if results.ingest else None,
        vectorize=_vectorize_numbers(results.vectorize, results.gpu) if results.vectorize else None,
        search=_search_numbers(results.search) if results.search else None,
        web=_web_numbers(results.web) if results.web else None,
        gpu_numbers=_gpu_numbers(results.gpu) if results.gpu else None,
        scheduling=_scheduling_numbers(results.scheduling) if results.scheduling else None,
        precision=results.precision,
        resample=results.resample,
        ocr=results.ocr,
    )


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 (Markdown, not HTML)
    )
    environment.filters.update(
        fmt=format,
        cell=cell_format,
        ms=lambda seconds: seconds * 1000,
        kib=lambda size: size / 1024,
        paragraphs=_paragraphs,
        sections=_sections,
    )
    return environment


def _paragraphs(text: str) -> str:
    """Markdown blocks apart by one blank line, each paragraph on one line; tables, code,
    headings and images as written. The templates wrap their sentences; the page does not."""
    blocks = [block.strip() for block in re.split(r"\n\s*\n", text)]
    return "\n\n".join(
        block if block.startswith(("|", "```", "#", "!")) else _unwrapped(block)
        for block in blocks
        if block
    )


def _unwrapped(block: str) -> str:
    return " ".join(line.strip() for line in block.splitlines() if line.strip())


def _sections(text: str) -> str:
    """The page's sections apart by one blank line (those left out leave none), ending in a
    newline."""
    return re.sub(r"\n{3,}", "\n\n", text.strip()) + "\n"


def _docdb_settings() -> Any:
    """DocDB's search settings as this environment sets them (the defaults unless overridden)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "docdb.settings")
    from django.conf import settings

    return settings


def _run_where(
    result: SearchResult,
    index: str,
    pages: int,
    *,
    path: str,
    fetch: int | None = None,
    ef: int | None = None,
) -> SearchRun | None:
    for run in result.indexes:
        if (
            run.index == index
            and run.pages == pages
            and run.owner_filter
            and run.path == path
            and (fetch is None or run.fetch == fetch)
            and (ef is None or run.ef == ef)
        ):
            return run
    return None


def _shipped_search(result: SearchResult, pages: int) -> SearchRun | None:
    """The run that measured DocDB's settings at `pages` pages for one owner."""
    settings = _docdb_settings()
    two_stage = two_stage_name(result.pooled_vectors)
    if pages < settings.WEAVIATE_FLAT_SEARCH_CUTOFF:
        return _run_where(result, two_stage, pages, path="flat",
                          fetch=settings.WEAVIATE_RERANK_CANDIDATES)  # fmt: skip
    return _run_where(
        result,
        two_stage,
        pages,
        path="HNSW",
        ef=settings.WEAVIATE_POOLED_EF,
        fetch=settings.WEAVIATE_RERANK_CANDIDATES,
    )


def _largest(runs: Iterable[SearchRun]) -> int:
    return max(run.pages for run in runs)


def _targets(results: Results) -> dict[str, Any]:
    numbers: dict[str, Any] = {"ingest": None, "search": None, "gpu": None}
    if results.ingest and "full-size" in results.ingest.models:
        share = results.ingest.models["full-size"].non_model_share
        numbers["ingest"] = {"share": share, "met": share <= NON_MODEL_TARGET}
    if results.search:
        pages = _largest(results.search.indexes)
        shipped = _shipped_search(results.search, pages)
        within = [
            run
            for run in results.search.indexes
            if run.pages == pages and run.owner_filter and run.p95_ms <= P95_TARGET_MS
        ]
        numbers["search"] = {
            "pages": pages,
            "shipped": shipped,
            "best": max(within, key=lambda run: run.recall_at_10, default=None),
            "met": pages >= SEARCH_TARGET_PAGES
            and shipped is not None
            and shipped.p95_ms <= P95_TARGET_MS
            and shipped.recall_at_10 >= RECALL_TARGET,
        }
    gpu = results.gpu
    if gpu:
        shares = gpu.service_share_of_model_only
        shipped_share = shares.get("as shipped", 0.0)
        best_name = max(shares, key=lambda name: shares[name])
        numbers["gpu"] = {
            "shipped": shipped_share,
            "shipped_pages_per_s": shipped_share * gpu.model_only.pages_per_s,
            "best_name": best_name,
            "best": shares[best_name],
            "met": shipped_share >= GPU_TARGET,
        }
    return numbers


def _decisions(results: Results) -> dict[str, Any]:
    """The runs whose numbers decided DocDB's defaults."""
    vector_runs = {run.mode: run for run in (results.vectorize.runs if results.vectorize else [])}
    server = vector_runs.get(mode_name("server", True))
    client = vector_runs.get(mode_name("client", True))
    full = results.ingest.models.get("full-size") if results.ingest else None
    numbers: dict[str, Any] = {"vectors": None, "search": None}
    if server and client:
        numbers["vectors"] = {
            "server": server,
            "client": client,
            "pipeline_ratio": client.pipeline_pages_per_s / server.pipeline_pages_per_s,
            "embed_ratio": client.embed_import_pages_per_s / server.embed_import_pages_per_s,
            "wide": next((run for name, run in vector_runs.items() if "batch" in name), None),
            "forward_share": full.share["model forward"] if full else None,
        }
    result = results.search
    if result:
        footprint = {(run.index, run.pages): run for run in result.indexes}
        largest = _largest(result.indexes)
        numbers["search"] = {
            "largest": largest,
            "plain": footprint.get((PLAIN, 1000)),
            "muvera": footprint.get((MUVERA, 1000)),
            "muvera_large": footprint.get((MUVERA, largest)) if largest > 1000 else None,
            "flat_plain": _run_where(result, PLAIN, 1000, path="flat"),
            "chosen_1000": _run_where(result, MUVERA, 1000, path="flat", fetch=100),
            "two_stage": _two_stage_numbers(result, largest),
            "large": _run_where(result, MUVERA, largest, path="HNSW", ef=256),
            "large_flat": _run_where(result, MUVERA, largest, path="flat", fetch=100),
        }
    return numbers


def _two_stage_numbers(result: SearchResult, largest: int) -> dict[str, Any] | None:
    if not result.pooled_vectors:
        return None
    small = _shipped_search(result, min(run.pages for run in result.indexes))
    large = _shipped_search(result, largest)
    if not (small and large):
        return None
    return {
        "settings": _docdb_settings(),
        "small": small,
        "large": large,
        "one_stage": _run_where(result, MUVERA, largest, path="HNSW", ef=256),
        "footprint": next(
            (
                run
                for run in result.indexes
                if run.index == MUVERA and run.pages == largest and not run.owner_filter
            ),
            None,
        ),
    }


def _not_met(results: Results) -> dict[str, Any] | None:
    gpu = results.gpu
    if not gpu or gpu.service_share_of_model_only.get("as shipped", 0.0) >= GPU_TARGET:
        return None
    rows = []
    for name, result in results.gpu_history:
        for variant, runs in result.service.items():
            best = max((run.pages_per_s or 0.0 for run in runs), default=0.0)
            rows.append(
                {
                    "run": name,
                    "variant": variant,
                    "workers": result.workers(variant) or 1,
                    "pages_per_s": best,
                    "model_only": result.model_only.pages_per_s,
                    "share": best / result.model_only.pages_per_s,
                    "forward_s": runs[0].forward_s(),
                }
            )
    one_worker = gpu.service.get("1 worker")
    return {
        "shipped": gpu.service_share_of_model_only.get("as shipped", 0.0),
        "rows": rows,
        "forward_alone_s": gpu.model_only.seconds / (gpu.model_only.pages / gpu.batch),
        "forward_inside_s": one_worker[0].forward_s() if one_worker else None,
    }


def _ingest_numbers(result: IngestResult) -> dict[str, Any]:
    return {"full": result.models.get("full-size"), "table": tables.ingest_table(result)}


def _vectorize_numbers(result: VectorizeResult, gpu: GpuResult | None) -> dict[str, Any]:
    runs: dict[tuple[str, int], ServiceRun] = {}
    if gpu:
        runs = {
            (name, run.inputs_per_request): run
            for name, service_runs in gpu.service.items()
            for run in service_runs
            if run.pages_per_s is not None
        }
    return {
        "table": tables.vectorize_table(result),
        "shipped_two": runs.get(("as shipped", 2)),
        "shipped_batch": runs.get(("as shipped", 32)),
    }


def _search_numbers(result: SearchResult) -> dict[str, Any]:
    plain_sizes = {run.pages for run in result.indexes if run.index != MUVERA}
    return {
        "sizes": sorted({run.pages for run in result.indexes}),
        # Vectors per page and share of the pages, smallest pages first; None: one size.
        "mix": sorted(result.tokens_mix.items()) if result.tokens_mix else None,
        "plain_largest": max(plain_sizes, default=0),
        "plain_gb_10000": geometry.vector_bytes(result.tokens_per_page) * 10_000 / 1e9,
        "table": tables.search_table(result),
        "sensitivity": tables.sensitivity_table(result),
        "sizing": _sizing_numbers(result),
    }


@dataclass(frozen=True)
class LibrarySizing:
    """What a library of SIZING_PAGES pages of A4 and US Letter costs in Weaviate."""

    name: str
    letter_share: float
    vectors: float  # a page, on average
    vectors_gib: float
    disk_gib: float
    memory_gib: float
    plain_memory_gib: float | None  # with a plain multi-vector index instead


SIZING_PAGES = 100_000


def _sizing_numbers(result: SearchResult) -> dict[str, Any] | None:
    """What a library costs in Weaviate by its paper sizes, from the footprint measured here.

    A page's full multi-vector lies on disk as float32 whatever the index; beside MUVERA it is
    read only to re-rank, so memory holds the fixed-size MUVERA encoding and pooled vectors and
    does not grow with the page's vectors, while the plain multi-vector index holds a graph node
    for every vector. So disk takes the measured footprint less the measured pages' vectors plus
    each page's own; plain-index memory scales with the vectors.
    """
    runs = [run for run in result.indexes if not run.index.startswith("two-stage")]
    muvera = max(
        (run for run in runs if run.index == MUVERA), key=lambda run: run.pages, default=None
    )
    plain = max(
        (run for run in runs if run.index != MUVERA), key=lambda run: run.pages, default=None
    )
    if muvera is None:
        return None
    measured = result.tokens_per_page
    fixed_disk = muvera.disk_bytes_per_page - geometry.vector_bytes(measured)
    libraries = []
    for name, letter_share in geometry.LIBRARIES.items():
        vectors = geometry.library_vectors_per_page(letter_share)
        libraries.append(
            LibrarySizing(
                name=name,
                letter_share=letter_share,
                vectors=vectors,
                vectors_gib=geometry.vector_bytes(vectors) * SIZING_PAGES / 2**30,
                disk_gib=(fixed_disk + geometry.vector_bytes(vectors)) * SIZING_PAGES / 2**30,
                memory_gib=muvera.memory_bytes_per_page * SIZING_PAGES / 2**30,
                plain_memory_gib=(
                    plain.memory_bytes_per_page * vectors / measured * SIZING_PAGES / 2**30
                    if plain
                    else None
                ),
            )
        )
    a4, letter = geometry.paper_vectors("A4"), geometry.paper_vectors("US Letter")
    first, last = libraries[0], libraries[-1]
    return {
        "pages": SIZING_PAGES,
        "a4": a4,
        "letter": letter,
        "letter_more": letter.vectors / a4.vectors - 1,
        "vector_kib": geometry.vector_bytes(1) / 1024,
        "muvera": muvera,
        "plain": plain,
        "fixed_disk": fixed_disk,
        "libraries": libraries,
        # How much more the Letter-heavy library needs than the A4-heavy one.
        "disk_more": last.disk_gib / first.disk_gib - 1,
        "plain_memory_more": (
            last.plain_memory_gib / first.plain_memory_gib - 1
            if last.plain_memory_gib and first.plain_memory_gib
            else None
        ),
    }


def _web_numbers(result: WebResult) -> dict[str, Any]:
    return {"first": next(iter(result.modes.values())), "table": tables.web_table(result)}


def _gpu_numbers(gpu: GpuResult) -> dict[str, Any]:
    prep = gpu.preprocess_s_per_page
    ceiling = gpu.model_only.pages_per_s
    return {
        "rows": [
            {
                "name": name,
                "run": run,
                "share": None if run.pages_per_s is None else run.pages_per_s / ceiling,
            }
            for name, runs in gpu.service.items()
            for run in runs
        ],
        "pil_s": prep.get("pil", math.nan),
        "torchvision_s": prep.get("torchvision", math.nan),
        "jpeg_s": prep["jpeg_decode"],
        "on_device_s": next(
            (value for key, value in prep.items() if key.startswith("as_shipped")), None
        ),
        "workers": gpu.workers("as shipped"),
    }


def _scheduling_numbers(result: SchedulingResult) -> dict[str, Any]:
    runs = result.root
    return {
        "any": next(iter(runs.values())),
        "reasons": sorted({reason for run in runs.values() for reason in run.failed}),
    }


def _plot_ingest(result: IngestResult, path: Path) -> None:
    models = result.models
    stages = list(next(iter(models.values())).share)
    figure, axis = plt.subplots(figsize=(10, 1.4 + 0.6 * len(models)))
    names = list(models)
    left = [0.0] * len(names)
    colors = plt.get_cmap("tab10")
    for index, stage in enumerate(stages):
        shares = [models[name].share[stage] * 100 for name in names]
        axis.barh(names, shares, left=left, label=stage, color=colors(index % 10))
        left = [a + b for a, b in zip(left, shares, strict=True)]
    axis.set_xlabel("share of ingestion time (%)")
    axis.set_xlim(0, 100)
    axis.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
    axis.set_title(f"Ingestion time by stage, {result.pdf} ({result.pages} pages)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_search(result: SearchResult, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(8, 5))
    markers = {MUVERA: "o", PLAIN: "s"}
    markers.update({run.index: "^" for run in result.indexes if "two-stage" in run.index})
    groups: dict[tuple[str, int, str], list[SearchRun]] = {}
    for run in result.indexes:
        if run.owner_filter:
            groups.setdefault((run.index, run.pages, run.path), []).append(run)
    for (index, pages, path_kind), runs in sorted(groups.items()):
        two_stage = "two-stage" in index
        axis.plot(
            [run.recall_at_10 for run in runs],
            [run.p95_ms for run in runs],
            marker=markers.get(index, "x"),
            # Two-stage points vary two settings (pooled ef, candidates): no line through them.
            linestyle="none" if two_stage else ("-" if path_kind == "HNSW" else ":"),
            label=f"{index}, {pages:,} pages, {path_kind}",
        )
        for run in runs:
            if path_kind != "HNSW":
                label = f"{run.candidates or 'all'}"
            elif two_stage:
                label = f"ef {run.ef}/{run.candidates}"
            else:
                label = f"ef {run.ef}"
            axis.annotate(label, (run.recall_at_10, run.p95_ms), fontsize=6)
    axis.axhline(P95_TARGET_MS, color="grey", linewidth=0.8)
    axis.axvline(RECALL_TARGET, color="grey", linewidth=0.8)
    axis.set_yscale("log")
    axis.set_xlabel("recall@10 against exact MaxSim")
    axis.set_ylabel("p95 latency (ms, log)")
    axis.set_title(
        "Search with the owner filter: latency against recall\n"
        "(two-stage labels: pooled-index ef / candidates re-ranked)",
        fontsize=10,
    )
    axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_gpu(gpu: GpuResult, path: Path) -> None:
    labels = ["model only"]
    values = [gpu.model_only.pages_per_s]
    for name, runs in gpu.service.items():
        workers = gpu.workers(name)
        shown = f"{name} ({workers})" if name == "as shipped" and workers else name
        for run in runs:
            if run.pages_per_s is not None:
                labels.append(f"{shown}\n{run.inputs_per_request} per request")
                values.append(run.pages_per_s)
    figure, axis = plt.subplots(figsize=(8, 3.5))
    axis.bar(labels, values, color=["tab:green"] + ["tab:blue"] * (len(values) - 1))
    axis.axhline(
        values[0] * GPU_TARGET, color="grey", linewidth=0.8, linestyle="--", label="target: 80 %"
    )
    axis.legend(fontsize="small")
    axis.set_ylabel("pages/s")
    axis.set_title(f"Embedder on {gpu.machine.gpu}: service against model only")
    axis.tick_params(axis="x", labelsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_scheduling(result: SchedulingResult, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(9, 6))
    for name, run in result.root.items():
        times = run.import_ready_s
        line = axis.step(times, range(1, len(times) + 1), where="post", label=f"{name}: import")
        axis.axvline(
            run.other_wait_s,
            color=line[0].get_color(),
            linestyle="--",
            label=f"{name}: the other person's document ready",
        )
    axis.set_xlabel("seconds since the first upload")
    axis.set_ylabel("documents of the import finished (ready or failed)")
    axis.set_title("A large import and another person's upload, one worker")
    axis.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
