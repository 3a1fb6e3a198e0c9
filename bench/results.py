"""The saved results of each benchmark, typed: parsed once when read, so that the report reads
fields instead of dictionary keys, and a file that does not match says which file and which field.

Fields the report does not read are ignored (the GPU runs save more than it shows).
"""

import json
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, RootModel, ValidationError

ResultT = TypeVar("ResultT", bound=BaseModel)

# The names runs are saved under.
MUVERA = "MUVERA"
PLAIN = "multi-vector HNSW"


def mode_name(vectorize: str, muvera: bool, import_batch: int | None = None) -> str:
    name = f"{vectorize}-side, {MUVERA if muvera else PLAIN}"
    return f"{name}, import batch {import_batch}" if import_batch else name


def two_stage_name(pooled: int) -> str:
    return f"two-stage, pooled {pooled}"


class ResultError(Exception):
    """A result file that is not what its section saves."""


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class Machine(_Result):
    cpu: str
    cores: int
    memory_gib: float
    load_1_5_15: list[float]
    measured_at: str


class IngestModel(_Result):
    pages_measured_through_model: int
    s_per_page: dict[str, float]
    share: dict[str, float]
    total_s_per_page: float
    pages_per_s: float
    non_model_share: float
    vectors_per_page: float
    query_embedding_s: float
    dtype: str


class IngestResult(_Result):
    """bench/ingest.py: seconds per page of each pipeline stage, per model."""

    pdf: str
    pages: int
    longest_edge: int
    page_jpeg_kib: float
    models: dict[str, IngestModel]
    machine: Machine


class VectorizeRun(_Result):
    mode: str
    import_batch: int
    pipeline_pages_per_s: float
    embed_import_pages_per_s: float
    pages_per_call: int


class VectorizeResult(_Result):
    """bench/vectorize.py: server-side against client-side vectors."""

    pdf: str
    pages: int
    runs: list[VectorizeRun]
    machine: Machine


class WebEndpoint(_Result):
    endpoint: str
    mode: str
    p50_ms: float
    p95_ms: float
    bytes: int
    thumbnail_bytes: int | None = None


class WebMode(_Result):
    endpoints: list[WebEndpoint]
    pages_indexed: int
    thumbnail_kib_mean: float
    thumbnail_kib_max: float
    page_image_kib_mean: float


class WebResult(_Result):
    """bench/web.py: the search page and API, per way of vectorizing."""

    modes: dict[str, WebMode]
    machine: Machine


class SearchRun(_Result):
    """One index at one size, searched with one setting."""

    index: str
    pages: int
    owner_filter: bool
    path: Literal["flat", "HNSW"]
    ef: int
    fetch: int
    candidates: int | None
    import_pages_per_s: float
    memory_bytes_per_page: float
    disk_bytes_per_page: float
    p50_ms: float
    p95_ms: float
    recall_at_10: float


class SensitivityRow(_Result):
    """One row of the pooling sensitivity; `recall_in_N` for each number of candidates N."""

    model_config = ConfigDict(frozen=True, extra="allow")

    own_concepts: int
    pooled: int
    score_1: float
    score_10: float
    score_50: float

    def recalls(self) -> dict[str, float]:
        """Share of the exact top 10 among the best N by pooled MaxSim, by N as saved."""
        extra = self.model_extra or {}
        return {
            key.removeprefix("recall_in_"): float(value)
            for key, value in extra.items()
            if key.startswith("recall_in_")
        }


class SearchResult(_Result):
    """bench/search.py: latency and recall of the indexes at scale."""

    # The mean over the pages, which come in several sizes when `tokens_mix` says which.
    tokens_per_page: float
    # Vectors per page -> share of the pages (A4 and US Letter shapes); None: one size.
    tokens_mix: dict[int, float] | None = None
    queries: int
    query_tokens: int
    exact_ms_per_query_per_1000_pages: float
    pooled_vectors: int = 0
    pool_ms_per_page: float | None = None
    indexes: list[SearchRun]
    pooling_sensitivity: list[SensitivityRow] = []
    machine: Machine


class GpuMachine(_Result):
    gpu: str
    cpu_count: int
    torch: str
    transformers: str


class ModelOnly(_Result):
    pages: int
    seconds: float
    pages_per_s: float


class Counters(_Result):
    forward_passes: int | None = None
    forward_seconds: float | None = None


class Health(_Result):
    workers: int | None = None


class ServiceRun(_Result):
    """One load on the embedder service; a failed one has an error and no throughput."""

    inputs_per_request: int
    clients: int
    pages_per_s: float | None = None
    gpu_busy: float | None = None
    # Seconds in each step of serving (parse, base64, decode, preprocess, forward, serialize),
    # summed over the service's processes, and each one's share of them.
    step_seconds: dict[str, float] | None = None
    step_shares: dict[str, float] | None = None
    error: str = ""
    counters: Counters | None = None
    health: Health | None = None

    def forward_s(self) -> float | None:
        """Seconds per forward pass inside one worker of the service, from its counters."""
        counters = self.counters
        if not counters or not counters.forward_passes or counters.forward_seconds is None:
            return None
        return counters.forward_seconds / counters.forward_passes


class Preprocessing(_Result):
    backend: str
    device: str


class Parity(_Result):
    same_tokens: bool
    cosine_min: float
    concurrent_max_difference: float


class PrepareThreads(_Result):
    threads: int
    pages_per_s: float


class GpuResult(_Result):
    """bench/gpu_embedder.py on a GPU machine: the model alone against the service."""

    machine: GpuMachine
    batch: int
    pages: int
    service_backend_as_shipped: str
    preprocessing_as_shipped: Preprocessing | None = None
    preprocess_s_per_page: dict[str, float]
    parity_with_pil: Parity | None = None
    prepare_threads: PrepareThreads | None = None
    model_only: ModelOnly
    service: dict[str, list[ServiceRun]]
    service_share_of_model_only: dict[str, float]

    def workers(self, variant: str) -> int | None:
        """Worker processes of the service in `variant`, as its first run's health said."""
        runs = self.service.get(variant) or []
        health = runs[0].health if runs else None
        return health.workers if health else None


class SchedulingRun(_Result):
    """bench/scheduling.py: one variant (code before or after, range size) of the import."""

    documents: int
    ready: int
    failed: list[str]
    import_ready_s: list[float]
    first_ready_s: float
    all_ready_s: float
    other_wait_s: float
    import_in_upload_order: bool
    pages_embedded_twice: int
    resumes: int
    peak_processing: int
    delay_ms: int
    scale: float
    pages_per_document: int
    machine: Machine


class SchedulingResult(RootModel[dict[str, SchedulingRun]]):
    """The variants by name, in the order they ran."""

    model_config = ConfigDict(frozen=True)


class PrecisionVariant(_Result):
    """bench/precision.py: one dtype and page size against float32 at 2048 px."""

    dtype: str
    longest_edge: int
    vectors_per_page: float
    seconds_per_page: float
    query_ms_p50: float
    query_ms_p95: float
    speedup: float
    # None where the page size differs from the reference's (other tokens).
    mean_cosine: float | None
    min_page_cosine: float | None
    top_agreement: float
    top1_agreement: float
    # Each query's token cosine with the reference's (older runs lack it).
    query_cosine: float | None = None
    min_query_cosine: float | None = None
    # Mean change of a page's MaxSim score over the spread (standard deviation) of the
    # reference's scores for the query (older runs lack it).
    score_error: float | None = None


class PrecisionResult(_Result):
    model: str
    pages: list[str]
    queries: int
    top: int
    # The variant the others are compared with.
    reference: str = "float32"
    variants: dict[str, PrecisionVariant]
    # What the CPU computes natively (docdb.embedder.model.cpu_features); older runs lack it.
    cpu_features: dict[str, str | bool] | None = None
    machine: Machine


class ResamplePage(_Result):
    page: str
    tokens: list[int]
    mean_cosine: float
    min_cosine: float


class ResampleQuery(_Result):
    query: str
    top1_same: bool
    top3_overlap: float
    spearman: float
    own_page_rank: list[int]


class ResampleSummary(_Result):
    mean_cosine: float
    min_cosine: float
    top1_agreement: float
    top3_overlap: float
    spearman: float


class ResampleResult(_Result):
    """bench/resample.py: the PIL processor's LANCZOS against BICUBIC (torchvision on CUDA)."""

    model: str
    pages: list[ResamplePage]
    queries: list[ResampleQuery]
    summary: ResampleSummary
    mean_abs_pixel_difference_max: float
    seconds_per_page: dict[str, float]
    machine: Machine


class OcrAccuracy(_Result):
    page: str
    size: str
    longest_edge: int
    seconds: float
    recall: float
    precision: float


class OcrCorpusPage(_Result):
    file: str
    page: int
    layer_letters: int
    ocr_letters: int
    seconds: float
    sample: str


class OcrGarbled(_Result):
    page: str
    layer_letters: int
    ocr_letters: int
    seconds: float


class OcrResult(_Result):
    """bench/ocr.py: Tesseract on rendered pages: speed, accuracy, the corpus pages it reads."""

    tesseract: str
    jpeg_quality: int
    min_chars: int
    accuracy: list[OcrAccuracy]
    seconds_per_page: float
    start_seconds: float
    threads_seconds: dict[str, float]
    corpus: list[OcrCorpusPage]
    garbled: OcrGarbled
    machine: Machine


def result_load(path: Path, kind: type[ResultT]) -> ResultT:
    """The result saved in `path`, as `kind`; ResultError names the file and the fields wrong."""
    try:
        data: Any = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ResultError(f"{path}: cannot be read as JSON: {error}") from None
    try:
        return kind.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or '(top level)'}: {problem['msg']}"
            for problem in error.errors()
        )
        raise ResultError(f"{path} is not a {kind.__name__}: {problems}") from None
