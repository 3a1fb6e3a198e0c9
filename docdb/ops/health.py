"""How each service DocDB depends on is doing, for the operations page.

Every check has a short timeout and turns any failure into a readable line: the page must load
even (especially) when a service is down.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

import redis
from django.conf import settings
from django.core.files.storage import storages
from django.db.models import Count
from django.utils import timezone
from kombu.exceptions import OperationalError

from docdb import pdf
from docdb.celery import QUEUES, queue_length
from docdb.celery import app as celery_app
from docdb.documents.files import local_path
from docdb.documents.models import PipelineRun, RunState
from docdb.documents.progress import documents_by_phase, seconds_per_page
from docdb.embedder_status import embedder_health
from docdb.weaviate_store import WeaviateUnavailable, pages_count, server_describe

logger = logging.getLogger(__name__)

REDIS_TIMEOUT_SECONDS = 2
INSPECT_TIMEOUT_SECONDS = 1.0


@dataclass
class ServiceHealth:
    name: str
    ok: bool
    details: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    warning: str = ""


def redis_health() -> ServiceHealth:
    client = redis.Redis.from_url(
        settings.CELERY_BROKER_URL,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
    )
    try:
        info = cast(dict[str, Any], client.info("server"))
        waiting = {queue: queue_length(queue) for queue in QUEUES}
        # Delivered to a worker but not yet acknowledged (late acknowledgement): Kombu keeps
        # them in this hash and has no call that counts them.
        unacked = cast(int, client.hlen("unacked"))
    except (redis.RedisError, OperationalError) as exc:
        return ServiceHealth("Redis", ok=False, error=f"{settings.CELERY_BROKER_URL}: {exc}")
    finally:
        client.close()
    return ServiceHealth(
        "Redis",
        ok=True,
        details={
            "version": info.get("redis_version", ""),
            "url": settings.CELERY_BROKER_URL,
            **{f"queue “{queue}”": f"{count} waiting" for queue, count in waiting.items()},
            # Taken by a worker, not yet acknowledged (running, or lost with a dead worker).
            "taken": f"{unacked} unacknowledged",
        },
    )


def weaviate_health() -> ServiceHealth:
    try:
        server = server_describe()
        objects = pages_count() if server["collection_exists"] else 0
    except WeaviateUnavailable as exc:
        return ServiceHealth("Weaviate", ok=False, error=str(exc))
    health = ServiceHealth(
        "Weaviate",
        ok=server["collection_exists"],
        details={
            "version": server["version"],
            "url": settings.WEAVIATE_URL,
            "collection": server["collection"],
            "objects": objects,
        },
    )
    if not server["collection_exists"]:
        health.error = "The collection does not exist: run `manage.py weaviate_schema`."
    return health


def _cpu_describe(features: dict[str, Any] | None) -> str:
    """The embedder CPU's widest instructions and native arithmetic: "AVX512, bfloat16, VNNI"."""
    if not features:
        return "not used (the model runs on a GPU)"
    native = [name for name in ("bfloat16", "VNNI", "AMX") if features.get(name.lower())]
    return ", ".join([str(features.get("capability", "")), *(native or ["no bfloat16 or VNNI"])])


def embedder_status() -> ServiceHealth:
    if settings.WEAVIATE_CLOUD:
        return ServiceHealth(
            "Embedder",
            ok=True,
            details={"model": settings.WEAVIATE_MODEL, "where": "Weaviate Cloud (hosted)"},
        )
    health = embedder_health()
    if health is None:
        return ServiceHealth("Embedder", ok=False, error=f"{settings.EMBEDDER_URL} does not answer")
    status = ServiceHealth(
        "Embedder",
        ok=True,
        details={
            "model": health.get("model", ""),
            # Which weights are served: the hub revision, and their checksum to compare with the
            # hub's (or another machine's).
            "revision": health.get("revision") or "not from the hub",
            "weights sha256": health.get("weights_sha256") or "",
            "device": health.get("device", ""),
            "dtype": health.get("dtype", ""),
            # Queries may run through an int8 copy of the text model (`auto` on a CPU with VNNI).
            "query dtype": health.get("query_dtype", ""),
            # What the CPU computes natively, which the `auto` dtypes follow; none on a GPU.
            "cpu": _cpu_describe(health.get("cpu")),
            # The page size before tiling: fewer tiles are faster and search fine print less well.
            "page size": f"{health.get('geometry', {}).get('longest_edge', '')} px longest edge",
            "image preprocessing": f"{health.get('image_backend', '')} on "
            f"{health.get('image_device', '')}",
            # Each worker process holds the model; the one that answered speaks for itself.
            "workers": health.get("workers", 1),
            "random test model": bool(health.get("random_test_model")),
            "url": settings.EMBEDDER_URL,
        },
    )
    if health.get("random_test_model"):
        status.warning = "The random test model is loaded: vector search results are noise."
    return status


def workers_health() -> ServiceHealth:
    """Ask the workers over the broker which are alive and what they run (1 s per question)."""
    inspect = celery_app.control.inspect(timeout=INSPECT_TIMEOUT_SECONDS)
    try:
        active = inspect.active() or {}
        reserved = inspect.reserved() or {}
    except Exception as exc:  # kombu raises transport-specific errors when Redis is down
        return ServiceHealth("Celery workers", ok=False, error=f"cannot ask the workers: {exc}")
    if not active:
        return ServiceHealth(
            "Celery workers", ok=False, error="No worker answered: nothing will be processed."
        )
    details: dict[str, Any] = {}
    for worker, tasks in sorted(active.items()):
        running = ", ".join(
            f"{task.get('name', '').rsplit('.', 1)[-1]}{tuple(task.get('args') or ())}"
            for task in tasks
        )
        waiting = len(reserved.get(worker, []))
        details[worker] = f"{len(tasks)} active{': ' + running if running else ''}" + (
            f"; {waiting} reserved" if waiting else ""
        )
    return ServiceHealth("Celery workers", ok=True, details=details)


def ocr_health() -> ServiceHealth:
    """Tesseract as this process finds it; workers run from the same installation (make run,
    the Docker image), so they find it alike."""
    if settings.OCR == "off":
        return ServiceHealth("OCR", ok=True, details={"OCR": "off (DOCDB_OCR)"})
    languages = ", ".join(settings.OCR_LANGUAGES)
    try:
        engine = pdf.ocr_check(settings.OCR_LANGUAGES)
    except pdf.OcrError as exc:
        return ServiceHealth("OCR", ok=False, details={"languages": languages}, error=str(exc))
    return ServiceHealth(
        "OCR",
        ok=True,
        details={
            "engine": f"Tesseract {engine.version}",
            "languages": languages,
            "reads": f"pages with fewer than {settings.OCR_MIN_CHARS} letters in their text layer",
        },
    )


def storage_health() -> ServiceHealth:
    """Where documents' files are kept: the local folder, or the bucket (one HEAD request)."""
    folder = local_path("")
    if folder is not None:
        return ServiceHealth("File storage", ok=True, details={"folder": str(folder)})
    # The only other storage DocDB configures (settings.py): django-storages' S3Storage.
    storage = cast(Any, storages["default"])
    where = f"S3 bucket {storage.bucket_name} at {storage.endpoint_url or 'Amazon S3'}"
    try:
        storage.connection.meta.client.head_bucket(Bucket=storage.bucket_name)
    except Exception as exc:  # botocore's many errors: the page shows any of them
        return ServiceHealth("File storage", ok=False, error=f"{where}: {exc}")
    return ServiceHealth("File storage", ok=True, details={"bucket": where})


def services_health() -> list[ServiceHealth]:
    redis = redis_health()
    if redis.ok:
        workers = workers_health()
    else:
        # Asking the workers goes through Redis, and would wait on its reconnection attempts.
        workers = ServiceHealth("Celery workers", ok=False, error="Redis is down: cannot ask.")
    return [
        redis,
        weaviate_health(),
        embedder_status(),
        workers,
        storage_health(),
        ocr_health(),
    ]


@dataclass
class PipelineSummary:
    documents_by_status: dict[str, int]
    # Measured over the documents worked on most recently (None before the first page).
    seconds_per_page: float | None
    runs_by_state: dict[str, int]
    oldest_queued: PipelineRun | None
    recent_failures: list[PipelineRun]

    @property
    def oldest_queued_age(self) -> timedelta | None:
        return timezone.now() - self.oldest_queued.queued_at if self.oldest_queued else None


def pipeline_summary() -> PipelineSummary:
    runs = dict(
        PipelineRun.objects.filter(state__in=[RunState.QUEUED, RunState.RUNNING, RunState.RETRYING])
        .values_list("state")
        .annotate(n=Count("id"))
        .order_by()
    )
    return PipelineSummary(
        documents_by_status=documents_by_phase(),
        seconds_per_page=seconds_per_page(),
        runs_by_state={label: runs.get(value, 0) for value, label in RunState.choices[:3]},
        oldest_queued=PipelineRun.objects.filter(state=RunState.QUEUED)
        .order_by("queued_at")
        .select_related("document")
        .first(),
        recent_failures=list(
            PipelineRun.objects.filter(state=RunState.FAILED)
            .select_related("document")
            .order_by("-queued_at")[:5]
        ),
    )
