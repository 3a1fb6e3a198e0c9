"""An hour of the embedder's traffic compressed into minutes, with its memory sampled.

    python -m bench.soak                      # 5 minutes, the tiny model, CPU
    python -m bench.soak --seconds 60 --model /path/to/model --out data/bench/soak.json

Starts the embedder (its own process, free port) and sends, from a few threads without pause,
the mix it gets in service: page images of many sizes (Weaviate's imports), queries of every
length (searches), queries over the token limit, DocDB's own calls (query tokens, image
layouts: similarity maps) and bad inputs (broken base64, not an image, broken JSON, empty
input, a layout too large). Every few seconds it reads the resident memory of the embedder and
its worker processes. It prints the traffic by kind and answer, and the memory at the start of
the second half, at the end and at its peak, with the growth over the second half (a least
squares slope): the first half warms up allocator pools and the recent-pages cache, so a leak
shows as a slope that does not fall to ~0 in the second.
"""

import argparse
import base64
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parent.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

import requests  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from bench.common import machine_describe, service_wait_healthy  # noqa: E402
from docdb.localstack import free_port  # noqa: E402

API_KEY = "soak-key"
WORDS = [
    *("invoice", "contract", "figure", "table", "revenue", "bamboo", "xylophone", "protocol"),
    *("court", "ruling", "chart", "quarterly", "methods", "results", "appendix", "culture"),
    *("film", "copyright", "river", "mountain", "engine"),
]


@dataclass
class Traffic:
    """Requests sent, by kind and HTTP status (or the exception's name)."""

    counts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, kind: str, outcome: str) -> None:
        with self.lock:
            self.counts[f"{kind} {outcome}"] += 1


def _page_image(rng: random.Random) -> str:
    """A JPEG of random size and content, base64: pages differ so the cache cannot answer all."""
    width, height = rng.choice([(595, 842), (612, 792), (842, 595), (300, 900), (1240, 1754)])
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for line in range(rng.randint(5, 40)):
        text = " ".join(rng.choices(WORDS, k=rng.randint(3, 12)))
        draw.text((20, 20 + line * 20), text, fill=(0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _request(rng: random.Random, pages: list[str], limit_words: int) -> tuple[str, str, Any]:
    """One request of the mix: (kind, path, JSON body or raw bytes)."""
    roll = rng.random()
    embed = "/v1/embeddings/embed"
    if roll < 0.35:
        # A third of the pages seen before (Weaviate's second request for a page's other vector).
        images = [rng.choice(pages) if rng.random() < 0.3 else _page_image(rng) for _ in range(2)]
        return "pages", embed, {"input": images[: rng.randint(1, 2)]}
    if roll < 0.65:
        words = " ".join(rng.choices(WORDS, k=rng.randint(1, 60)))
        return "query", embed, {"input": [words], "is_search_query": True}
    if roll < 0.72:
        words = " ".join(rng.choices(WORDS, k=limit_words * 2))
        return "long query", embed, {"input": [words], "is_search_query": True}
    if roll < 0.80:
        words = " ".join(rng.choices(WORDS, k=rng.randint(1, 20)))
        return "query tokens", "/v1/docdb/query-tokens", {"input": words}
    if roll < 0.86:
        size = rng.choice([(595, 842), (612, 792), (300, 900)])
        return "layout", "/v1/docdb/image-layout", {"width": size[0], "height": size[1]}
    bad: list[tuple[str, Any]] = [
        ("bad base64", {"input": ["not base64 at all!"]}),
        ("not an image", {"input": [base64.b64encode(b"%PDF-1.4 not an image").decode()]}),
        ("broken json", b'{"input": ["abc"'),
        ("empty input", {"input": []}),
        ("layout too large", {"width": 100_000, "height": 100_000}),
    ]
    kind, body = rng.choice(bad)
    path = "/v1/docdb/image-layout" if kind == "layout too large" else embed
    return kind, path, body


def _send(url: str, traffic: Traffic, stop: threading.Event, seed: int, limit_words: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - traffic, not secrets
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {API_KEY}"
    pages = [_page_image(rng) for _ in range(4)]
    while not stop.is_set():
        kind, path, body = _request(rng, pages, limit_words)
        try:
            if isinstance(body, bytes):
                answer = session.post(url + path, data=body, timeout=120)
            else:
                answer = session.post(url + path, json=body, timeout=120)
            traffic.count(kind, str(answer.status_code))
        except requests.RequestException as exc:
            traffic.count(kind, type(exc).__name__)


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and its children (the embedder's model workers)."""
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        pids += [int(child) for child in children]
    return total


def _slope_mb_per_minute(samples: list[tuple[float, int]]) -> float:
    if len(samples) < 2:
        return 0.0
    times = [t for t, _ in samples]
    values = [rss / 1e6 for _, rss in samples]
    mean_t, mean_v = sum(times) / len(times), sum(values) / len(values)
    spread = sum((t - mean_t) ** 2 for t in times)
    if spread == 0:
        return 0.0
    slope = sum((t - mean_t) * (v - mean_v) for t, v in zip(times, values, strict=True)) / spread
    return slope * 60


def soak(*, seconds: float, model: str, threads: int, sample_every: float) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="docdb-soak-"))
    port = free_port()
    env = {
        **os.environ,
        "DOCDB_EMBEDDER_HOST": "127.0.0.1",
        "DOCDB_EMBEDDER_PORT": str(port),
        "DOCDB_EMBEDDER_MODEL": model,
        "DOCDB_EMBEDDER_DEVICE": os.environ.get("DOCDB_EMBEDDER_DEVICE", "cpu"),
        "DOCDB_EMBEDDER_API_KEYS": API_KEY,
        "DOCDB_EMBEDDER_CACHE_DIR": os.environ.get("DOCDB_EMBEDDER_CACHE_DIR", str(folder)),
    }
    url = f"http://127.0.0.1:{port}"
    with (folder / "embedder.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "docdb.embedder"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_DIR,
            start_new_session=True,
        )
    try:
        service_wait_healthy(f"{url}/health", process, timeout=300)
        health = requests.get(f"{url}/health", timeout=10).json()
        limit_tokens = int(health.get("max_query_tokens") or 8192)
        traffic, stop = Traffic(), threading.Event()
        senders = [
            threading.Thread(target=_send, args=(url, traffic, stop, seed, limit_tokens))
            for seed in range(threads)
        ]
        started = time.monotonic()
        for sender in senders:
            sender.start()
        samples: list[tuple[float, int]] = []
        while (elapsed := time.monotonic() - started) < seconds:
            if process.poll() is not None:
                raise RuntimeError(f"the embedder exited; see {folder / 'embedder.log'}")
            samples.append((elapsed, _tree_rss(process.pid)))
            time.sleep(sample_every)
        stop.set()
        for sender in senders:
            sender.join(timeout=180)
        samples.append((time.monotonic() - started, _tree_rss(process.pid)))
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    second_half = [(t, rss) for t, rss in samples if t >= seconds / 2]

    def quarter_mean(quarter: int) -> float:
        """Mean memory (MB) over one quarter of the run: a leak shows as the last above the
        second, whatever the peaks of single large batches do in between."""
        low, high = seconds * (quarter - 1) / 4, seconds * quarter / 4
        inside = [rss for t, rss in samples if low <= t < high] or [samples[-1][1]]
        return round(sum(inside) / len(inside) / 1e6, 1)

    return {
        "seconds": seconds,
        "model": model,
        "threads": threads,
        "requests": dict(sorted(traffic.counts.items())),
        "requests_total": sum(traffic.counts.values()),
        "server_errors": sum(n for key, n in traffic.counts.items() if key.endswith(" 500")),
        "rss_mb": {
            "first": round(samples[0][1] / 1e6, 1),
            "second_half_start": round(second_half[0][1] / 1e6, 1),
            "end": round(samples[-1][1] / 1e6, 1),
            "peak": round(max(rss for _, rss in samples) / 1e6, 1),
            "mean_second_quarter": quarter_mean(2),
            "mean_last_quarter": quarter_mean(4),
        },
        "second_half_growth_mb_per_minute": round(_slope_mb_per_minute(second_half), 2),
        "samples": [(round(t, 1), round(rss / 1e6, 1)) for t, rss in samples],
        "machine": machine_describe(),
    }


def _print(result: dict[str, Any]) -> None:
    print(f"== Embedder soak: {result['seconds']:.0f} s, {result['threads']} senders")
    for key, count in result["requests"].items():
        print(f"  {key:<32} {count:>7}")
    rss = result["rss_mb"]
    print(
        f"  memory (MB): first {rss['first']}, second half from {rss['second_half_start']}, "
        f"end {rss['end']}, peak {rss['peak']}; mean {rss['mean_second_quarter']} in the "
        f"second quarter, {rss['mean_last_quarter']} in the last; second-half growth "
        f"{result['second_half_growth_mb_per_minute']} MB/min; "
        f"server errors {result['server_errors']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--threads", type=int, default=3)
    parser.add_argument("--sample-every", type=float, default=2.0)
    parser.add_argument("--out", type=Path, help="save the result as JSON here")
    args = parser.parse_args(argv)
    result = soak(
        seconds=args.seconds,
        model=args.model,
        threads=args.threads,
        sample_every=args.sample_every,
    )
    _print(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return 1 if result["server_errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
