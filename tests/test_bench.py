"""The benchmarks: their entry points run end to end on tiny sizes (a smoke test: nothing is
timed or compared, so a slow or busy machine cannot fail it; `make bench` takes the real
measurements), and the report renders from saved results without any service."""

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest

from bench import report
from bench.common import PUBLISHED_RESULTS_DIR
from bench.results import GpuResult, ResultError
from tests.pdf_factory import pdf_make

pytestmark = pytest.mark.sqlite_pass

REPO_DIR = Path(__file__).resolve().parent.parent
# What one `python -m bench --quick --pdf sample.pdf` saved (a 4-page PDF from pdf_factory, as in
# the smoke test below): every section's result, at tiny sizes.
QUICK_RESULTS = REPO_DIR / "tests" / "bench_results"


def _run(args: list[str], *, timeout: float) -> str:
    result = subprocess.run(
        [sys.executable, *args], cwd=REPO_DIR, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


# The benchmarks start Redis, Weaviate, the embedder and workers themselves.
@pytest.mark.services
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


@pytest.mark.services
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
            "--workers", "", "--front", "1", "--out", str(out),
        ],
        timeout=600,
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert result["model_only"]["pages_per_s"] > 0
    assert result["service"]["as shipped"][0]["pages"] == 2
    front = result["service"]["front, 1 model process"][0]
    assert front["pages"] == 2 and front["step_seconds"]["forward"] > 0
    assert sum(front["step_shares"].values()) == pytest.approx(1, abs=0.01)


@pytest.mark.services
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


def test_report_renders_every_section_from_saved_results(tmp_path: Path) -> None:
    results = report.results_read(QUICK_RESULTS, gpu_dir=PUBLISHED_RESULTS_DIR)
    page = report.write(tmp_path, results).read_text()
    headings = [line for line in page.splitlines() if line.startswith("#")]
    assert headings == [
        "# Benchmarks",
        "## Machine",
        "## Targets",
        "## What the numbers decided",
        "## What is not met, and what would fix it",
        "## 1. Ingestion by stage",
        "## 2. Server-side vs client-side vectors",
        "## 3. Search at scale",
        "## 4. Web",
        "## GPU embedder",
        "## Scheduling: a large import and another person's upload",
        "## Embedding on a CPU: dtype and page size",
        "## Resampling: LANCZOS against BICUBIC",
        "## OCR of scanned pages",
    ]
    for number in (
        "| search | AMD EPYC | 2 | 23.5 | 1.46, 1.19, 1.08 | 2026-11-30 08:34:18 UTC |",
        "| GPU embedder ≥ 80 % of model-only throughput | 71% as shipped (58.8 of 82.4 pages/s",
        "client-side vectors ran the whole pipeline 1.0x as fast (4.0 against 3.9 pages/s)",
        "Query embedding on this CPU (one query, median): tiny 172 ms.",
        "| client-side, MUVERA | 4 | 18.8 | 32 |",
        "| two-stage, pooled 8 | 60 | owner | HNSW | 32 | 10 | 20.5 | 20.9 | 0.86 |",
        "Thumbnails (40 pages): 3.1 KiB on average (largest 3.1 KiB); page images 59 KiB.",
        "| service, as shipped | 2 | 16 | 58.8 | 64% | 71% |",
        "| before, 1-page ranges | 49 / 52 | 20 s | 386 s | 366 s | no | - | 274 | 101 |",
        "| int8 | int8 | 2048 | 1014 | 61.9 | 1.02x | 194 / 342 | 0.9995 (0.9995) | - | - | 0.99 "
        "| 0.96 |",
        "| bfloat16 | bfloat16 | 2048 | 1014 | 15.0 | 1.91x | 57 / 101 | 0.9999 (0.9999) | 0.9999 "
        "(0.9999) | 0.316 | 0.89 | 0.98 |",
        "at most 6 s a page, **not met** at the model's own 2048 px (fastest 16.0 s) and **met** "
        "at 1024 px (fastest 4.5 s)",
        "| A text query ≤ 50 ms p95 on two CPU cores (full-size model) | bfloat16 pages, int8 "
        "queries (the default there): 34 / 38 ms p50 / p95 over 200 queries;",
        "| pdkids.pdf p2 | 1146 | 1.0000 | 0.9995 |",
    ):
        assert number in page
    # One blank line between blocks, every paragraph on one line (the templates wrap theirs).
    assert "\n\n\n" not in page and page.endswith("OCR's reading of a figure.\n")
    assert "Weaviate splits each import batch into requests of two images and sends" in page
    for plot in ("ingest", "search", "gpu", "scheduling"):
        assert (tmp_path / f"bench-{plot}.png").read_bytes().startswith(b"\x89PNG")


def test_report_without_section_results_shows_the_gpu_runs_and_scheduling(
    tmp_path: Path,
) -> None:
    page = report.page_render(report.results_read(tmp_path, gpu_dir=PUBLISHED_RESULTS_DIR))
    assert "## Machine" in page and "## 1. Ingestion" not in page and "## 4. Web" not in page
    assert "| gpu-h200-3-workers | as shipped | 4 | 58.8 | 82.4 | 71% | 0.40 |" in page
    assert "## Scheduling: a large import" in page


def test_report_without_gpu_runs_says_the_embedder_was_not_measured(tmp_path: Path) -> None:
    page = report.page_render(report.results_read(QUICK_RESULTS, gpu_dir=tmp_path))
    assert "The GPU embedder has not been measured" in page
    assert "## GPU embedder" not in page and "## Scheduling" not in page


def test_report_describes_pages_of_two_sizes_and_what_libraries_of_them_cost(
    tmp_path: Path,
) -> None:
    shutil.copytree(QUICK_RESULTS, tmp_path, dirs_exist_ok=True)
    saved = json.loads((tmp_path / "search.json").read_text())
    # As `--letter-share 0.5` saves it: the mean over the pages, and which sizes they have.
    saved["tokens_per_page"] = 1014.0
    saved["tokens_mix"] = {"1146": 0.5, "882": 0.5}
    (tmp_path / "search.json").write_text(json.dumps(saved))
    page = report.page_render(report.results_read(tmp_path, gpu_dir=PUBLISHED_RESULTS_DIR))
    assert (
        "Synthetic pages of A4 and US Letter shapes (50% of 882, 50% of 1,146; 1,014 on average) "
        "unit 128-dim vectors"
    ) in page
    assert "every token vector (1,014 a page)" in page and "~5.2 GB of vectors" in page
    assert "an A4 page is 13 tiles and 882 vectors, a US Letter page" in page
    assert "| disk GiB | memory GiB | memory GiB, plain multi-vector HNSW |" in page
    assert "| half and half | 50% | 1,014 | 48.4 |" in page


def test_a_result_file_that_does_not_match_names_the_file_and_the_fields(tmp_path: Path) -> None:
    shutil.copytree(QUICK_RESULTS, tmp_path, dirs_exist_ok=True)
    saved = json.loads((tmp_path / "search.json").read_text())
    del saved["indexes"][1]["p95_ms"]
    saved["queries"] = "five"
    (tmp_path / "search.json").write_text(json.dumps(saved))
    with pytest.raises(ResultError) as raised:
        report.results_read(tmp_path, gpu_dir=PUBLISHED_RESULTS_DIR)
    message = str(raised.value)
    assert str(tmp_path / "search.json") in message and "SearchResult" in message
    assert "indexes.1.p95_ms: Field required" in message
    assert "queries: Input should be a valid integer" in message

    (tmp_path / "search.json").write_text('{"indexes": [')
    with pytest.raises(ResultError, match=r"search\.json: cannot be read as JSON"):
        report.results_read(tmp_path, gpu_dir=PUBLISHED_RESULTS_DIR)


def test_a_value_the_templates_miss_fails_the_render() -> None:
    results = report.results_read(QUICK_RESULTS, gpu_dir=PUBLISHED_RESULTS_DIR)
    assert results.gpu is not None
    # A GPU run built without validation, lacking the machine that the page names.
    unchecked = GpuResult.model_construct(
        **{name: getattr(results.gpu, name) for name in GpuResult.model_fields if name != "machine"}
    )
    with pytest.raises(jinja2.UndefinedError, match="machine"):
        report.page_render(dataclasses.replace(results, gpu_history=[("gpu-x", unchecked)]))
