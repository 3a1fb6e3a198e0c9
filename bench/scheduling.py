"""Scheduling at real-model speed: one person's large import and another person's upload.

    python bench/scheduling.py --before ../docdb-before   # a checkout of the earlier code
    python bench/scheduling.py --only after               # this checkout alone

For each variant (the earlier code's scheduling, this checkout's) it starts Redis, Weaviate,
the embedder (tiny model, slowed by DOCDB_EMBEDDER_TEST_DELAY_MS per page), one Celery worker
process and beat on free ports with data in a temporary folder, uploads N documents of one
person and then one of another, and records when each became ready. Only the Django/Celery
code differs between the variants: the embedder and Weaviate come from this checkout.

The full-size model's forward pass takes ~19 s a page on 2 CPU cores (docs/benchmarks.md).
To fit, every time is divided by the same factor (default 19: a page costs 1 s): the page
delay and the pipeline's time settings (stall threshold, sweeper period, hold, heartbeat).
Rendering and import are not slowed, so they weigh relatively more than with the real model.

Saves bench/results/scheduling.json; `python -m bench --only report` puts it in
docs/benchmarks.md with its plot.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import requests

REPO_DIR = Path(__file__).resolve().parent.parent
RESULTS = REPO_DIR / "bench" / "results" / "scheduling.json"
API_KEY = "bench-scheduling-key"
# The full-size model's CPU forward pass (docs/benchmarks.md, float32 on this machine's 2 cores).
FORWARD_SECONDS = 19.0


def _spawn(
    command: list[str], env: dict[str, str], log: Path, cwd: Path
) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def _services(folder: Path, delay_ms: int) -> Iterator[dict[str, str]]:
    """Redis, Weaviate and the slowed embedder of this checkout; yields their settings."""
    sys.path.insert(0, str(REPO_DIR))
    from bench.common import service_wait_healthy
    from docdb.localstack import free_ports, redis_command, weaviate_start

    redis_port, embedder_port = free_ports(2)
    redis_dir = folder / "redis"
    redis_dir.mkdir()
    with ExitStack() as stack:
        redis = _spawn(
            redis_command(data_dir=redis_dir, port=redis_port),
            dict(os.environ),
            folder / "redis.log",
            REPO_DIR,
        )
        stack.callback(_stop, redis)
        weaviate = weaviate_start(
            data_dir=folder / "weaviate", api_key=API_KEY, log_path=folder / "weaviate.log"
        )
        stack.callback(_stop, weaviate.process)
        embedder = _spawn(
            [sys.executable, "-m", "docdb.embedder"],
            {
                **os.environ,
                "DOCDB_EMBEDDER_PORT": str(embedder_port),
                "DOCDB_EMBEDDER_MODEL": "tiny",
                "DOCDB_EMBEDDER_DEVICE": "cpu",
                "DOCDB_EMBEDDER_API_KEYS": API_KEY,
                "DOCDB_EMBEDDER_CACHE_DIR": str(folder / "models"),
                "DOCDB_EMBEDDER_TEST_DELAY_MS": str(delay_ms),
            },
            folder / "embedder.log",
            REPO_DIR,
        )
        stack.callback(_stop, embedder)
        embedder_url = f"http://127.0.0.1:{embedder_port}"
        service_wait_healthy(f"{embedder_url}/health", embedder)
        yield {
            "DOCDB_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "DOCDB_WEAVIATE_URL": weaviate.url,
            "DOCDB_WEAVIATE_GRPC_PORT": str(weaviate.ports.grpc),
            "DOCDB_WEAVIATE_API_KEY": API_KEY,
            "DOCDB_EMBEDDER_URL": embedder_url,
        }


def _variant_env(variant: str, scale: float) -> dict[str, str]:
    """The pipeline's own time settings, divided by the same factor as the page time."""

    def scaled(seconds: float, floor: int = 1) -> str:
        return str(max(floor, round(seconds / scale)))

    if variant == "before":
        return {
            "DOCDB_PIPELINE_STALL_SECONDS": scaled(900),
            "DOCDB_SWEEP_INTERVAL_SECONDS": scaled(60),
            "DOCDB_PIPELINE_RETRY_BASE_SECONDS": scaled(10),
        }
    return {
        "DOCDB_PIPELINE_HEARTBEAT_SECONDS": scaled(15),
        "DOCDB_PIPELINE_HOLD_SECONDS": scaled(90, floor=3),
        "DOCDB_SWEEP_INTERVAL_SECONDS": scaled(30),
        "DOCDB_PIPELINE_RETRY_BASE_SECONDS": scaled(10),
    }


def _worker_commands(variant: str, schedule: Path) -> list[list[str]]:
    celery = [sys.executable, "-m", "celery", "-A", "docdb.celery"]
    worker = [*celery, "worker", "--loglevel", "INFO", "--concurrency", "1"]
    if variant == "before":  # beat ran inside the one worker
        return [[*worker, "--beat", "--schedule", str(schedule)]]
    return [worker, [*celery, "beat", "--loglevel", "INFO", "--schedule", str(schedule)]]


def variant_run(
    *,
    variant: str,
    code: Path,
    documents: int,
    pages: int,
    pages_per_range: int,
    delay_ms: int,
    scale: float,
) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix=f"docdb-bench-scheduling-{variant}-"))
    try:
        with _services(folder, delay_ms) as services:
            env = {
                **os.environ,
                **services,
                **_variant_env(variant, scale),
                "PYTHONPATH": str(code),
                "DOCDB_DATA_DIR": str(folder / "data"),
                "DOCDB_SQLITE_PATH": str(folder / "db.sqlite3"),
                "DOCDB_RENDER_LONGEST_EDGE": "1024",
                "DOCDB_RENDER_PAGES_PER_CHUNK": str(pages_per_range),
                "DOCDB_DEBUG": "true",
            }
            manage = [sys.executable, "manage.py"]
            subprocess.run([*manage, "migrate", "-v0"], cwd=code, env=env, check=True)
            subprocess.run([*manage, "weaviate_schema"], cwd=code, env=env, check=True)
            workers = [
                _spawn(command, env, folder / f"{variant}-celery-{n}.log", code)
                for n, command in enumerate(_worker_commands(variant, folder / "beat-schedule"))
            ]
            try:
                out = folder / "drive.json"
                subprocess.run(
                    [
                        sys.executable,
                        str(Path(__file__).resolve()),
                        "drive",
                        "--documents",
                        str(documents),
                        "--pages",
                        str(pages),
                        "--out",
                        str(out),
                    ],
                    cwd=code,
                    env=env,
                    check=True,
                )
                result: dict[str, Any] = json.loads(out.read_text())
            finally:
                for worker in workers:
                    _stop(worker)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result.update(
        variant=variant,
        delay_ms=delay_ms,
        scale=scale,
        pages_per_document=pages,
        pages_per_range=pages_per_range,
    )
    return result


def drive(*, documents: int, pages: int, out: Path) -> None:
    """Inside the variant's checkout: upload, watch, and write what happened to `out`."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "docdb.settings")
    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from reportlab.pdfgen import canvas

    from docdb.documents.models import Document
    from docdb.documents.services import document_upload

    folder = Path(tempfile.mkdtemp(prefix="docdb-bench-pdfs-"))

    def pdf(name: str, count: int) -> SimpleUploadedFile:
        path = folder / f"{name}.pdf"
        page = canvas.Canvas(str(path))
        for number in range(1, count + 1):
            page.drawString(72, 720, f"{name}, page {number}: {uuid.uuid4().hex}")
            page.showPage()
        page.save()
        return SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/pdf")

    def counters() -> dict[str, int]:
        health = requests.get(f"{settings.EMBEDDER_URL}/health", timeout=10).json()
        return {k: int(v) for k, v in health["counters"].items() if isinstance(v, int | float)}

    users = get_user_model().objects
    importer = users.create_user(f"importer-{uuid.uuid4().hex[:6]}", password=uuid.uuid4().hex)
    other = users.create_user(f"other-{uuid.uuid4().hex[:6]}", password=uuid.uuid4().hex)
    # Weaviate asks the embedder once per vectorized named vector: count it on one page.
    warm = document_upload(owner=importer, upload=pdf("warm-up", 1))
    while Document.objects.get(id=warm.id).status not in ("ready", "failed"):
        time.sleep(0.2)
    before = counters()
    requests_per_page = before["images_embedded"]

    started = time.time()
    ids = [
        document_upload(owner=importer, upload=pdf(f"import-{n:03d}", pages)).id
        for n in range(documents)
    ]
    theirs = document_upload(owner=other, upload=pdf("other", pages)).id
    every = [*ids, theirs]
    peak_processing = 0
    while True:
        rows = list(Document.objects.filter(id__in=every))
        peak_processing = max(peak_processing, sum(1 for d in rows if d.status == "processing"))
        if all(d.status in ("ready", "failed", "cancelled") for d in rows):
            break
        time.sleep(0.5)
    after = counters()
    rows_by_id = {d.id: d for d in Document.objects.filter(id__in=every)}

    def seconds(document_id: uuid.UUID) -> float:
        finished = rows_by_id[document_id].finished_at
        return finished.timestamp() - started if finished else float("nan")

    pages_total = (documents + 1) * pages
    embedded = (after["images_embedded"] - before["images_embedded"]) / max(1, requests_per_page)
    out.write_text(
        json.dumps(
            {
                "documents": documents,
                "ready": sum(1 for d in rows_by_id.values() if d.status == "ready"),
                "failed": [d.error for d in rows_by_id.values() if d.status == "failed"],
                "import_ready_s": sorted(seconds(i) for i in ids),
                "first_ready_s": min(seconds(i) for i in every),
                "all_ready_s": max(seconds(i) for i in every),
                "other_wait_s": seconds(theirs),
                "import_in_upload_order": [seconds(i) for i in ids]
                == sorted(seconds(i) for i in ids),
                "pages": pages_total,
                "pages_embedded_twice": round(embedded) - pages_total,
                "resumes": sum(getattr(d, "resume_count", 0) for d in rows_by_id.values()),
                "peak_processing": peak_processing,
            }
        )
    )
    shutil.rmtree(folder, ignore_errors=True)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run")
    for p in (parser, run):
        p.add_argument("--before", type=Path, help="a checkout of the earlier code")
        p.add_argument("--only", choices=("before", "after"))
        p.add_argument("--documents", type=int, default=100)
        p.add_argument("--pages", type=int, default=2)
        # 1: each 2-page document needs two turns, as a long document does with 8-page ranges.
        p.add_argument("--pages-per-range", type=int, default=1)
        p.add_argument("--scale", type=float, default=19.0, help="times divided by this")
    driver = sub.add_parser("drive")
    driver.add_argument("--documents", type=int, required=True)
    driver.add_argument("--pages", type=int, required=True)
    driver.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "drive":
        drive(documents=args.documents, pages=args.pages, out=args.out)
        return 0
    sys.path.insert(0, str(REPO_DIR))
    from bench.common import machine_describe

    delay_ms = round(FORWARD_SECONDS / args.scale * 1000)
    variants = {"after": REPO_DIR}
    if args.before:
        variants = {"before": args.before.resolve(), **variants}
    if args.only:
        variants = {args.only: variants[args.only]}
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name, code in variants.items():
        print(f"{name}: {args.documents} + 1 documents of {args.pages} pages, {delay_ms} ms a page")
        result = variant_run(
            variant=name,
            code=code,
            documents=args.documents,
            pages=args.pages,
            pages_per_range=args.pages_per_range,
            delay_ms=delay_ms,
            scale=args.scale,
        )
        result["machine"] = machine_describe()
        saved[f"{name}, {args.pages_per_range}-page ranges"] = result
        print(json.dumps({k: v for k, v in result.items() if k != "import_ready_s"}, indent=1))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(saved, indent=1) + "\n")
    print(f"saved {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
