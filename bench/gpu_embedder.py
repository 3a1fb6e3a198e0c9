"""Embedder throughput: the HTTP service (as Weaviate or a worker calls it) against the model alone.

Meant for a GPU machine, in one short run; with `--model tiny --device cpu` it runs anywhere
(the smoke test does that). Page images are JPEGs as the pipeline stores them (longest edge
2048 px), rendered beforehand where poppler is installed:

    python bench/gpu_embedder.py render ../shared/corpus/real/freeculture.pdf PAGES_DIR
    python bench/gpu_embedder.py --pages PAGES_DIR --out gpu.json

It measures, for the full-size architecture with random weights:
- image preprocessing per page: on one CPU core with the PIL and torchvision backends, and as
  shipped (on a GPU with torchvision installed: the torchvision backend on the GPU);
- how many pages per second the service's preparing threads decode and preprocess, as shipped;
- model only: inputs prepared beforehand (as shipped), forward passes of `--batch` pages;
- the service (`python -m docdb.embedder`, as shipped) with requests of 32 images from 4 clients
  (the worker batching, client-side vectors) and of 2 images from 16 clients (what Weaviate's
  module sends); on a GPU also with `DOCDB_EMBEDDER_IMAGE_BACKEND=pil`, the PIL image processor on
  CPU threads that the embedder used before.
"""

import argparse
import base64
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR))

API_KEY = "bench-key"
# Time for the client processes to start before they all begin.
CLIENT_START_S = 3.0


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    render = commands.add_parser("render", help="render pages of a PDF to JPEGs, as stored")
    render.add_argument("pdf", type=Path)
    render.add_argument("folder", type=Path)
    render.add_argument("--first", type=int, default=20)
    render.add_argument("--count", type=int, default=16)
    parser.add_argument("--pages", type=Path, required=False, help="folder of page JPEGs")
    parser.add_argument("--model", choices=["fullsize", "tiny"], default="fullsize")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--model-pages", type=int, default=256, help="pages through the model")
    parser.add_argument("--service-pages", type=int, default=1024, help="pages per service run")
    parser.add_argument(
        "--shapes", default="32x4,2x16", help="service loads: IMAGES_PER_REQUESTxCLIENTS, ..."
    )
    parser.add_argument(
        "--workers",
        default="1,2",
        help="embedder worker counts to measure besides the default (as shipped), e.g. 1,2",
    )
    parser.add_argument(
        "--front",
        default="1,2,4",
        help="model process counts to measure behind one HTTP front (DOCDB_EMBEDDER_FRONT)",
    )
    parser.add_argument(
        "--compile",
        default="default,reduce-overhead",
        help="DOCDB_EMBEDDER_COMPILE modes to measure, on a GPU, with the largest front count",
    )
    parser.add_argument(
        "--pil", action="store_true", help="also measure the PIL image processor (1 worker)"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.command == "render":
        return _render(args.pdf, args.folder, first=args.first, count=args.count)
    if args.pages is None:
        parser.error("--pages is required")
    result = run(
        pages_dir=args.pages,
        model=args.model,
        device=args.device,
        batch=args.batch,
        model_pages=args.model_pages,
        service_pages=args.service_pages,
        shapes=[
            (int(images), int(clients))
            for images, clients in (shape.split("x") for shape in args.shapes.split(","))
        ],
        workers=[int(count) for count in args.workers.split(",") if count.strip()],
        front=[int(count) for count in args.front.split(",") if count.strip()],
        compile_modes=[mode for mode in args.compile.split(",") if mode.strip()],
        pil=args.pil,
        # What is measured so far is kept even if the run is cut short (a device time limit).
        checkpoint=(lambda partial: _write(args.out, partial)) if args.out else None,
    )
    print(json.dumps(result, indent=2))
    if args.out:
        _write(args.out, result)
    return 0


def _write(path: Path, result: dict[str, Any]) -> None:
    path.write_text(json.dumps(result, indent=2))


def run(
    *,
    pages_dir: Path,
    model: str,
    device: str,
    batch: int,
    model_pages: int,
    service_pages: int,
    shapes: list[tuple[int, int]],
    workers: Sequence[int] = (),
    front: Sequence[int] = (),
    compile_modes: Sequence[str] = (),
    pil: bool = False,
    checkpoint: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    import torch
    import transformers

    from bench.models import fullsize_model_build
    from docdb.embedder.model import device_resolve, embedder_load
    from docdb.embedder.testmodel import tiny_model_build

    torch_device = device_resolve(device)
    result: dict[str, Any] = {
        "machine": {
            "gpu": torch.cuda.get_device_name() if torch_device.type == "cuda" else None,
            "cpu_count": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "model": model,
        "batch": batch,
    }
    _say(f"machine: {result['machine']}")
    model_dir = Path(tempfile.mkdtemp(prefix="docdb-bench-model-"))
    started = time.perf_counter()
    if model == "tiny":
        tiny_model_build(model_dir)
    else:
        fullsize_model_build(model_dir, device=torch_device.type)
    result["model_build_s"] = time.perf_counter() - started
    jpegs = [path.read_bytes() for path in sorted(pages_dir.glob("*.jpg"))]
    if not jpegs:
        raise SystemExit(f"no *.jpg in {pages_dir}")
    result["pages"] = len(jpegs)
    embedder = embedder_load(str(model_dir), device=str(torch_device))
    # The first key is what bench/report.py reads.
    result["service_backend_as_shipped"] = type(embedder.processor.image_processor).__name__
    result["preprocessing_as_shipped"] = {
        "backend": embedder.image_backend,
        "device": str(embedder.image_device),
    }
    _say(f"preprocessing as shipped: {result['preprocessing_as_shipped']}")
    result["preprocess_s_per_page"] = _preprocess_times(model_dir, jpegs, embedder)
    _say(f"preprocessing per page: {result['preprocess_s_per_page']}")
    try:
        result["parity_with_pil"] = _parity_with_pil(embedder, model_dir, jpegs)
    except Exception as exc:  # a wrong result must not lose the timings
        result["parity_with_pil"] = {"error": f"{type(exc).__name__}: {exc}"}
    _say(f"as shipped against PIL: {result['parity_with_pil']}")
    result["prepare_threads"] = _prepare_rate(embedder, jpegs, pages=model_pages)
    _say(f"decoding and preprocessing in the service's threads: {result['prepare_threads']}")
    result["model_only"] = _model_only(embedder, jpegs, batch=batch, pages=model_pages)
    _say(f"model only: {result['model_only']}")
    del embedder
    if torch_device.type == "cuda":
        torch.cuda.empty_cache()
    # As shipped: the default worker count; then each asked-for count, and before the GPU
    # preprocessing (the PIL image processor on CPU threads, one worker) if asked.
    variants: dict[str, dict[str, str]] = {"as shipped": {}}
    for count in workers:
        variants[f"{count} worker{'s' if count > 1 else ''}"] = {
            "DOCDB_EMBEDDER_WORKERS": str(count)
        }
    # One HTTP front handing pages to model processes through shared memory (JPEGs decoded on
    # the GPU there), and with the forward pass compiled (CUDA only: on a CPU it is skipped).
    for count in front:
        variants[f"front, {count} model process{'es' if count > 1 else ''}"] = {
            "DOCDB_EMBEDDER_FRONT": "true",
            "DOCDB_EMBEDDER_WORKERS": str(count),
        }
    if front and torch_device.type == "cuda":
        for mode in compile_modes:
            variants[f"front, {max(front)} model processes, compile {mode}"] = {
                "DOCDB_EMBEDDER_FRONT": "true",
                "DOCDB_EMBEDDER_WORKERS": str(max(front)),
                "DOCDB_EMBEDDER_COMPILE": mode,
            }
    if pil and result["preprocessing_as_shipped"]["backend"] != "pil":
        variants["PIL processor, 1 worker"] = {
            "DOCDB_EMBEDDER_IMAGE_BACKEND": "pil",
            "DOCDB_EMBEDDER_WORKERS": "1",
        }
    service: dict[str, Any] = {}
    result["service"] = service
    ceiling = result["model_only"]["pages_per_s"]
    for name, env in variants.items():
        try:
            service[name] = _service_runs(
                model_dir,
                jpegs,
                device=str(torch_device),
                env=env,
                pages=service_pages,
                shapes=shapes,
            )
        except Exception as exc:  # one failed variant must not lose the others' numbers
            service[name] = [{"error": f"{type(exc).__name__}: {exc}"}]
        _say(f"service {name}: {service[name]}")
        result["service_share_of_model_only"] = {
            name: max((run.get("pages_per_s", 0.0) for run in runs), default=0.0) / ceiling
            for name, runs in service.items()
        }
        if checkpoint:
            checkpoint(result)
    return result


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _torchvision_available() -> bool:
    try:
        import torchvision  # noqa: F401
    except Exception:
        return False
    return True


def _images(jpegs: Sequence[bytes]) -> list[Any]:
    import io

    from PIL import Image

    return [Image.open(io.BytesIO(data)).convert("RGB") for data in jpegs]


def _preprocess_times(model_dir: Path, jpegs: Sequence[bytes], embedder: Any) -> dict[str, float]:
    """Seconds per page on one thread with one CPU core: JPEG decode, each image processor
    backend on the CPU, and the embedder's own preparation (on its preprocessing device)."""
    import torch
    from transformers import ColModernVBertProcessor

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sample = list(jpegs[:4])
        times = {"jpeg_decode": _per_item(lambda data: _images([data]), sample)}
        images = _images(sample)
        backends = ["pil", "torchvision"] if _torchvision_available() else ["pil"]
        for backend in backends:
            try:
                processor = ColModernVBertProcessor.from_pretrained(model_dir, backend=backend)
                processor.process_images([images[0]])  # warm-up
                times[backend] = _per_item(
                    lambda image, processor=processor: processor.process_images([image]), images
                )
            except Exception as exc:
                _say(f"{backend} preprocessing failed: {exc}")
        embedder.image_prepare(images[0])  # warm-up: kernels, allocator
        # image_prepare returns once the device has finished the page.
        times[f"as_shipped_{embedder.image_backend}_on_{embedder.image_device.type}"] = _per_item(
            embedder.image_prepare, images
        )
        return times
    finally:
        torch.set_num_threads(threads)


def _parity_with_pil(embedder: Any, model_dir: Path, jpegs: Sequence[bytes]) -> dict[str, Any]:
    """The shipped preprocessing against PIL's, on the same pages and model: the same tokens and
    nearly the same vectors (on a GPU torchvision resizes bicubic, PIL with LANCZOS). And pages
    prepared by many threads at once against one at a time, which a missing wait between CUDA
    streams would tell apart."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import torch
    from transformers import ColModernVBertProcessor

    from docdb.embedder.model import Embedder
    from docdb.embedder.service import PREPARE_WORKERS

    pil = Embedder(
        model=embedder.model,
        processor=ColModernVBertProcessor.from_pretrained(model_dir, backend="pil"),
        name=embedder.name,
        random_test_model=True,
    )
    images = _images(jpegs[:4])
    shipped = [embedder.image_prepare(image) for image in images]
    reference = [pil.image_prepare(image) for image in images]
    with ThreadPoolExecutor(PREPARE_WORKERS) as pool:
        concurrent = list(pool.map(embedder.image_prepare, images * PREPARE_WORKERS))
    concurrent_difference = max(
        float((item["pixel_values"] - shipped[index % len(images)]["pixel_values"]).abs().max())
        for index, item in enumerate(concurrent)
    )
    cosines = [
        (mine * theirs).sum(axis=1)
        for mine, theirs in zip(embedder.forward(shipped), pil.forward(reference), strict=True)
    ]
    return {
        "same_tokens": all(
            torch.equal(mine["input_ids"], theirs["input_ids"])
            for mine, theirs in zip(shipped, reference, strict=True)
        ),
        "cosine_min": float(min(cosine.min() for cosine in cosines)),
        "cosine_mean": float(np.mean([cosine.mean() for cosine in cosines])),
        "concurrent_max_difference": concurrent_difference,
    }


def _prepare_rate(embedder: Any, jpegs: Sequence[bytes], *, pages: int) -> dict[str, Any]:
    """Pages per second decoded and prepared by as many threads as the service's pool has:
    what the service can feed the model at most."""
    from concurrent.futures import ThreadPoolExecutor

    from docdb.embedder.service import PREPARE_WORKERS

    def prepare(data: bytes) -> Any:
        return embedder.image_prepare(_images([data])[0])

    work = [jpegs[index % len(jpegs)] for index in range(max(pages, PREPARE_WORKERS))]
    with ThreadPoolExecutor(PREPARE_WORKERS) as pool:
        list(pool.map(prepare, work[:PREPARE_WORKERS]))  # warm-up: each thread's first page
        started = time.perf_counter()
        for _ in pool.map(prepare, work):
            pass
        seconds = time.perf_counter() - started
    return {"threads": PREPARE_WORKERS, "pages": len(work), "pages_per_s": len(work) / seconds}


def _per_item(work: Callable[[Any], Any], items: Sequence[Any]) -> float:
    started = time.perf_counter()
    for item in items:
        work(item)
    return (time.perf_counter() - started) / len(items)


def _model_only(embedder: Any, jpegs: Sequence[bytes], *, batch: int, pages: int) -> dict[str, Any]:
    """Forward passes over inputs prepared beforehand: the ceiling for the service."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        features = list(pool.map(embedder.image_prepare, _images(jpegs)))
    batches = [
        [features[(start + row) % len(features)] for row in range(batch)]
        for start in range(0, max(pages, batch), batch)
    ]
    embedder.forward(batches[0])  # warm-up: kernels, allocator
    _sync(torch)
    started = time.perf_counter()
    tokens = 0
    for items in batches:
        tokens += sum(len(vectors) for vectors in embedder.forward(items))
    _sync(torch)
    seconds = time.perf_counter() - started
    count = len(batches) * batch
    return {
        "pages": count,
        "seconds": seconds,
        "pages_per_s": count / seconds,
        "vectors_per_page": tokens / count,
    }


def _sync(torch: Any) -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _service_runs(
    model_dir: Path,
    jpegs: Sequence[bytes],
    *,
    device: str,
    env: dict[str, str],
    pages: int,
    shapes: list[tuple[int, int]],
) -> list[dict[str, Any]]:
    import requests

    from docdb.localstack import free_port

    port = free_port()
    variables = {
        **os.environ,
        "DOCDB_EMBEDDER_MODEL": str(model_dir),
        "DOCDB_EMBEDDER_DEVICE": device,
        "DOCDB_EMBEDDER_PORT": str(port),
        "DOCDB_EMBEDDER_API_KEYS": API_KEY,
        # The clients cycle through a few pages: remembered embeddings would answer repeats
        # without the model, so every image must go through it here.
        "DOCDB_EMBEDDER_RECENT_PAGES": "0",
        **env,
    }
    label = "-".join(env.values()) or "shipped"
    log_path = model_dir.parent / f"{model_dir.name}-{label}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "docdb.embedder"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=variables,
            cwd=REPO_DIR,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        # Every worker up: each new connection goes to any of them.
        deadline = time.monotonic() + 180
        processes: set[int] = set()
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the embedder exited:\n{log_path.read_text()[-3000:]}")
            try:
                health = requests.get(f"{url}/health", timeout=2).json()
                processes.add(health["process"])
                # A front starts its model processes before it answers.
                if health.get("front") or len(processes) >= health["workers"]:
                    break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(processes)} of {health['workers']} workers answered")
            time.sleep(0.2)
        runs = []
        for per_request, clients in shapes:
            # Warm-up: kernels and allocator of (most likely) every worker.
            _load(url, jpegs, per_request=per_request, clients=clients, pages=per_request * clients)
            before = _steps(url)
            sampler = _GpuSampler()
            sampler.start()
            measured = _load(url, jpegs, per_request=per_request, clients=clients, pages=pages)
            measured["gpu_busy"] = sampler.stop()
            measured.update(_shares(before, _steps(url)))
            runs.append(measured)
        # One worker's: its counters and memory.
        health = requests.get(f"{url}/health", timeout=5).json()
        counters = health["counters"]
        for run in runs:
            run["largest_batch"] = counters["largest_batch"]
        runs[0]["counters"] = counters
        shown = (
            "device",
            "dtype",
            "batch_size",
            "image_backend",
            "image_device",
            "workers",
            "gpu_memory_peak_gib",
        )
        runs[0]["health"] = {key: health.get(key) for key in shown}
        return runs
    finally:
        process.terminate()
        process.wait(30)


def _steps(url: str) -> dict[str, float]:
    """Seconds each step of serving has taken since start (GET /health's `steps`, plus the
    forward passes), summed over every process serving: the front and its model processes
    answer together, each worker for itself (asked until each has answered)."""
    import requests

    seen: dict[int, dict[str, float]] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        health = requests.get(f"{url}/health", timeout=10).json()
        seen[health["process"]] = {
            **health["steps"],
            "forward": health["counters"]["forward_seconds"],
        }
        if health.get("front") or len(seen) >= health["workers"]:
            break
    return {step: sum(steps[step] for steps in seen.values()) for step in next(iter(seen.values()))}


def _shares(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Each step's seconds in a run and its share of all of them: where the time goes."""
    spent = {step: after[step] - before[step] for step in after}
    total = sum(spent.values()) or 1.0
    return {
        "step_seconds": {step: round(seconds, 3) for step, seconds in spent.items()},
        "step_shares": {step: round(seconds / total, 3) for step, seconds in spent.items()},
    }


def _load(
    url: str, jpegs: Sequence[bytes], *, per_request: int, clients: int, pages: int
) -> dict[str, Any]:
    """`clients` processes post requests of `per_request` images until `pages` are embedded."""
    requests_each = max(1, pages // (per_request * clients))
    encoded = [base64.b64encode(data).decode("ascii") for data in jpegs]
    # Clients start together, once their processes are up; wall-clock time is shared by all.
    start_at = time.time() + CLIENT_START_S
    with ProcessPoolExecutor(clients, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [
            pool.submit(_client, url, encoded, per_request, requests_each, offset, start_at)
            for offset in range(clients)
        ]
        outcomes = [future.result() for future in futures]
    seconds = max(finished for finished, _ in outcomes) - start_at
    done = per_request * requests_each * clients
    latencies = sorted(latency for _, times in outcomes for latency in times)
    return {
        "inputs_per_request": per_request,
        "clients": clients,
        "pages": done,
        "seconds": seconds,
        "pages_per_s": done / seconds,
        "request_p50_s": latencies[len(latencies) // 2],
    }


def _client(
    url: str, encoded: Sequence[str], per_request: int, count: int, offset: int, start_at: float
) -> tuple[float, list[float]]:
    """Post `count` requests; returns when it finished (wall clock) and each request's time."""
    import orjson
    import requests

    session = requests.Session()
    time.sleep(max(0.0, start_at - time.time()))
    headers = {"Authorization": f"Bearer {API_KEY}"}
    latencies = []
    for number in range(count):
        start = (offset * count + number) * per_request
        inputs = [encoded[(start + row) % len(encoded)] for row in range(per_request)]
        began = time.perf_counter()
        response = session.post(
            f"{url}/v1/embeddings/embed",
            data=orjson.dumps({"input": inputs, "model": "ModernVBERT/colmodernvbert"}),
            headers=headers,
            timeout=600,
        )
        response.raise_for_status()
        embeddings = orjson.loads(response.content)["embeddings"]
        if len(embeddings) != per_request:
            raise RuntimeError(f"{len(embeddings)} embeddings for {per_request} inputs")
        latencies.append(time.perf_counter() - began)
    return time.time(), latencies


class _GpuSampler:
    """Share of time the GPU was busy (NVML), sampled every 50 ms; None without a GPU."""

    def __init__(self) -> None:
        self._samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._handle: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            self._nvml = pynvml
        except Exception:
            self._handle = None

    def start(self) -> None:
        if self._handle is not None:
            self._thread.start()

    def stop(self) -> float | None:
        if self._handle is None:
            return None
        self._stop.set()
        self._thread.join()
        return sum(self._samples) / max(1, len(self._samples)) / 100

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._samples.append(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)


def _render(pdf_path: Path, folder: Path, *, first: int, count: int) -> int:
    from docdb import pdf

    folder.mkdir(parents=True, exist_ok=True)
    info = pdf.pdf_inspect(pdf_path, max_pages=100_000, timeout=60)
    last = min(info.pages, first + count - 1)
    pages = pdf.pages_render(
        pdf_path, first=first, last=last, longest_edge=2048, max_pixels=2048 * 2048, timeout=600
    )
    for page in pages:
        jpeg = pdf.image_jpeg_bytes(page.image, quality=88)  # the pipeline's page JPEG
        (folder / f"page-{page.number:04d}.jpg").write_bytes(jpeg)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
