"""What every benchmark shares: a dedicated Weaviate, timers, tables, results, the machine."""

import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from docdb.localstack import weaviate_start

REPO_DIR = Path(__file__).resolve().parent.parent
CORPUS_PDF = REPO_DIR.parent / "shared" / "corpus" / "real" / "freeculture.pdf"
RESULTS_DIR = REPO_DIR / "data" / "bench"
# The results docs/benchmarks.md is built from, committed with it: the page can be rebuilt from a
# clone, and a change of its numbers shows in the results' diff.
PUBLISHED_RESULTS_DIR = REPO_DIR / "bench" / "results"
DOCS_DIR = REPO_DIR / "docs"
API_KEY = "bench-weaviate-key"


@dataclass
class Weaviate:
    """A Weaviate of our own, on free ports, with its data in a temporary folder."""

    url: str
    http_port: int
    grpc_port: int
    data_dir: Path
    process: subprocess.Popen[bytes]

    def rss_bytes(self) -> int:
        return process_rss_bytes(self.process.pid)

    def disk_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.data_dir.rglob("*") if path.is_file())


def process_rss_bytes(pid: int) -> int:
    """The resident memory of a process (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@contextmanager
def weaviate_running(*, memory_limit: str = "8GiB") -> Iterator[Weaviate]:
    folder = Path(tempfile.mkdtemp(prefix="docdb-bench-weaviate-"))
    data_dir = folder / "data"
    try:
        server = weaviate_start(
            data_dir=data_dir,
            api_key=API_KEY,
            log_path=folder / "weaviate.log",
            env={
                "GOMEMLIMIT": memory_limit,
                # Imports of the largest collections take minutes: no query or import may time out.
                "LOG_LEVEL": "error",
            },
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    process = server.process
    try:
        yield Weaviate(server.url, server.ports.http, server.ports.grpc, data_dir, process)
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Stopwatch:
    """Seconds spent per named stage, accumulated over many calls."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; numbers get a sensible number of digits."""
    cells = [[cell_format(value) for value in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def cell_format(value: Any) -> str:
    """A table cell: floats to a few significant digits, NaN as -, ints with thousands commas."""
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def results_save(folder: Path, name: str, data: dict[str, Any]) -> Path:
    """`data` and the machine it was measured on, in folder/name.json (read by bench/results.py)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps({**data, "machine": machine_describe()}, indent=2) + "\n")
    return path


def machine_describe() -> dict[str, Any]:
    """CPU model, cores, memory and load right now: numbers mean little without them."""
    model = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=False
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    memory = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = int(line.split()[1]) * 1024
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 1024**3, 1),
        "load_1_5_15": [round(value, 2) for value in os.getloadavg()],
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def service_wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    """Until the service started as `process` answers 200 at `url`; raises if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service for {url} exited; see its log")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer in {timeout:.0f} s")
