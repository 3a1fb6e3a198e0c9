"""The benchmark entry points run end to end on tiny sizes. A smoke test: nothing is timed or
compared, so a slow or busy machine cannot fail it; `make bench` takes the real measurements."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pdf_factory import pdf_make

# The benchmarks start Redis, Weaviate, the embedder and workers themselves.
pytestmark = pytest.mark.services

REPO_DIR = Path(__file__).resolve().parent.parent


def _run(args: list[str], *, timeout: float) -> str:
    result = subprocess.run(
        [sys.executable, *args], cwd=REPO_DIR, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def test_make_bench_quick_runs_every_section_and_writes_the_report(tmp_path: Path) -> None:
    document = pdf_make(
        tmp_path / "sample.pdf",
        pages=[[f"Page {number}: copyright, culture and film."] for number in range(1, 5)],
    )
    docs = tmp_path / "docs"
    output = _run(
        ["-m", "bench", "--quick", "--pdf", str(document), "--docs", str(docs)], timeout=900
    )
    for heading in ("Ingestion by stage", "Server-side vs client-side", "Search at scale", "Web"):
        assert f"== {heading}" in output
    report = (docs / "benchmarks.md").read_text()
    for heading in ("## Targets", "## 1. Ingestion", "## 2. Server-side", "## 3. Search", "## 4."):
        assert heading in report
    for plot in ("bench-ingest.png", "bench-search.png"):
        assert (docs / plot).read_bytes().startswith(b"\x89PNG")


def test_gpu_embedder_script_runs_on_a_cpu_with_the_tiny_model(tmp_path: Path) -> None:
    document = pdf_make(tmp_path / "sample.pdf", pages=[["A page."], ["Another page."]])
    pages = tmp_path / "pages"
    _run(
        ["bench/gpu_embedder.py", "render", str(document), str(pages), "--first", "1"], timeout=120
    )
    out = tmp_path / "gpu.json"
    _run(
        [
            "bench/gpu_embedder.py",
            "--pages", str(pages), "--model", "tiny", "--device", "cpu",
            "--batch", "2", "--model-pages", "2", "--service-pages", "2", "--shapes", "2x1",
            "--out", str(out),
        ],
        timeout=600,
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert result["model_only"]["pages_per_s"] > 0
    assert result["service"]["as shipped"][0]["pages"] == 2


def test_embedder_soak_runs_its_mix_and_reports_memory(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    output = _run(
        ["-m", "bench.soak", "--seconds", "12", "--threads", "1", "--sample-every", "1",
         "--out", str(out)],
        timeout=300,
    )  # fmt: skip
    assert "== Embedder soak" in output
    result = json.loads(out.read_text())
    kinds = {key.rsplit(" ", 1)[0] for key in result["requests"]}
    assert {"pages", "query"} <= kinds
    assert result["server_errors"] == 0
    assert result["rss_mb"]["peak"] >= result["rss_mb"]["first"] > 0
