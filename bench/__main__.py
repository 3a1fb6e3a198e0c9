"""`python -m bench` (`make bench`): every benchmark, then docs/benchmarks.md and its plots.

Starts its own Weaviate and embedder (tiny model, CPU) on free ports with data in a temporary
folder, so it runs beside `make run` or the tests and leaves nothing behind. Results go to
bench/results/*.json, committed with the page, which is built from them (and from the
gpu-*.json there, which a GPU machine produced with bench/gpu_embedder.py).

    python -m bench                  # everything, ~30 min on 2 cores
    python -m bench --quick          # tiny sizes, a minute; results and report in data/bench/quick/
    python -m bench --only search --search-sizes 1000
    python -m bench --only report    # rebuild docs/benchmarks.md from the saved results
"""

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parent.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

from bench.common import (  # noqa: E402
    API_KEY,
    CORPUS_PDF,
    DOCS_DIR,
    PUBLISHED_RESULTS_DIR,
    RESULTS_DIR,
    machine_describe,
    results_save,
    service_wait_healthy,
    weaviate_running,
)
from bench.results import (  # noqa: E402
    IngestResult,
    SearchResult,
    VectorizeResult,
    WebResult,
    result_load,
)
from docdb.localstack import free_port  # noqa: E402

SECTIONS = ["ingest", "vectorize", "web", "search", "report"]


def _arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that it all runs")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--pdf", type=Path, default=CORPUS_PDF)
    parser.add_argument("--pages", type=int, default=352, help="pages of the PDF to ingest")
    parser.add_argument("--full-pages", type=int, default=2, help="pages through the full model")
    parser.add_argument("--vectorize-pages", type=int, default=32)
    parser.add_argument("--search-sizes", default="1000,10000")
    parser.add_argument(
        "--search-tokens",
        type=int,
        help="vectors of every page (default: A4 and US Letter pages, with the real model's "
        "vectors for each, bench/geometry.py)",
    )
    parser.add_argument(
        "--letter-share", type=float, default=0.5, help="share of US Letter pages (else A4)"
    )
    parser.add_argument("--plain-max-pages", type=int, default=1000, help="largest plain index")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--efs", default="64,128,256,512")
    parser.add_argument("--fetches", default="10,50,100")
    parser.add_argument("--pooled", type=int, default=32, help="pooled vectors per page")
    parser.add_argument("--pooled-efs", default="64,96,128", help="ef of the pooled index")
    parser.add_argument("--reranks", default="20,40,80", help="candidates re-ranked exactly")
    parser.add_argument("--docs", type=Path, help="where the report goes (default: docs/)")
    parser.add_argument(
        "--drop-unmeasured",
        action="store_true",
        help="write docs/benchmarks.md even when sections have no results (they are left out)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.pages, args.full_pages, args.vectorize_pages = 4, 0, 4
        args.search_sizes, args.search_tokens, args.plain_max_pages = "60", 32, 60
        args.queries, args.efs, args.fetches = 5, "64", "10"
        args.pooled, args.pooled_efs, args.reranks = 8, "32", "10"
    # Quick results are only a check that everything runs: never beside the published ones.
    args.results = RESULTS_DIR / "quick" if args.quick else PUBLISHED_RESULTS_DIR
    if args.docs is None:
        args.docs = RESULTS_DIR / "quick" if args.quick else DOCS_DIR
    return args


def main(argv: Sequence[str]) -> int:
    args = _arguments(argv)
    sections = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        sys.exit(f"unknown sections: {', '.join(sorted(unknown))}; known: {', '.join(SECTIONS)}")
    print(f"machine: {machine_describe()}")
    stack_sections = [name for name in sections if name in ("ingest", "vectorize", "web")]
    if stack_sections:
        with _stack() as models_dir:
            _stack_sections(stack_sections, args, models_dir)
    if "search" in sections:
        _search_section(args)
    if "report" in sections:
        _django_setup()
        from bench import report

        results = report.results_read(args.results)
        unmeasured = [name for name in SECTIONS[:4] if getattr(results, name) is None]
        if unmeasured and args.docs == DOCS_DIR and not args.drop_unmeasured:
            # Rewriting the published page from a checkout without them would delete them.
            sys.exit(
                f"{args.results} has no results for {', '.join(unmeasured)}, so "
                f"{DOCS_DIR / 'benchmarks.md'} would lose their sections. Measure them first "
                "(--only " + ",".join(unmeasured) + ",report), or pass --drop-unmeasured."
            )
        path = report.write(args.docs, results)
        print(f"report written to {path}")
    return 0


@contextmanager
def _stack() -> Iterator[Path]:
    """Weaviate, the embedder with the tiny model, and Django configured for them."""
    models_dir = RESULTS_DIR / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="docdb-bench-") as folder, weaviate_running() as server:
        from docdb.embedder.testmodel import tiny_model_ensure

        port = free_port()
        embedder_env = {
            **os.environ,
            "DOCDB_EMBEDDER_PORT": str(port),
            "DOCDB_EMBEDDER_MODEL": str(tiny_model_ensure(models_dir)),
            "DOCDB_EMBEDDER_DEVICE": "cpu",
            "DOCDB_EMBEDDER_API_KEYS": API_KEY,
        }
        with Path(folder, "embedder.log").open("wb") as log:
            embedder = subprocess.Popen(
                [sys.executable, "-m", "docdb.embedder"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=embedder_env,
                cwd=REPO_DIR,
            )
        try:
            service_wait_healthy(f"http://127.0.0.1:{port}/health", embedder)
            os.environ.update(
                {
                    "DJANGO_SETTINGS_MODULE": "docdb.settings",
                    "DOCDB_DATA_DIR": folder,
                    "DOCDB_DEBUG": "true",
                    "DOCDB_ALLOWED_HOSTS": "testserver,localhost,127.0.0.1",
                    "DOCDB_WEAVIATE_URL": server.url,
                    "DOCDB_WEAVIATE_GRPC_PORT": str(server.grpc_port),
                    "DOCDB_WEAVIATE_API_KEY": API_KEY,
                    "DOCDB_WEAVIATE_CLOUD": "false",
                    "DOCDB_EMBEDDER_URL": f"http://127.0.0.1:{port}",
                }
            )
            import django
            from django.core.management import call_command

            django.setup()
            call_command("migrate", verbosity=0)
            yield models_dir
        finally:
            embedder.terminate()
            embedder.wait(30)


def _stack_sections(sections: list[str], args: argparse.Namespace, models_dir: Path) -> None:
    from bench import ingest, tables, vectorize, web

    if "ingest" in sections:
        print("\n== Ingestion by stage")
        result = ingest.run(
            pdf_path=args.pdf, pages=args.pages, full_pages=args.full_pages, models_dir=models_dir
        )
        saved = results_save(args.results, "ingest", result)
        print(tables.ingest_table(result_load(saved, IngestResult)))
    if "vectorize" in sections or "web" in sections:
        print("\n== Server-side vs client-side vectors")
        measured = vectorize.run(pdf_path=args.pdf, pages=args.vectorize_pages)
        if "vectorize" in sections:
            saved = results_save(args.results, "vectorize", measured)
            print(tables.vectorize_table(result_load(saved, VectorizeResult)))
        else:  # measured only for the web section: shown, not saved
            typed = VectorizeResult.model_validate({**measured, "machine": machine_describe()})
            print(tables.vectorize_table(typed))
    if "web" in sections:
        from django.test import override_settings

        from docdb.weaviate_store import client_close

        print("\n== Web")
        # The collections the vectorize run filled, with the index DocDB's settings choose.
        _, muvera = vectorize.default_mode()
        result: dict[str, Any] = {"modes": {}}
        for mode in ("server", "client"):
            with override_settings(**vectorize.mode_settings(mode, muvera)):
                client_close()
                result["modes"][mode] = web.run(repeats=1 if args.quick else 3)
            client_close()
        saved = results_save(args.results, "web", result)
        print(tables.web_table(result_load(saved, WebResult)))


def _django_setup() -> None:
    """Django with the default settings (a no-op when the stack already set it up)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "docdb.settings")
    import django

    django.setup()


def _page_mix(letter_share: float) -> dict[int, float]:
    """Vectors per page -> share of the pages, for a library of A4 and US Letter pages."""
    from bench.geometry import paper_vectors

    return {
        paper_vectors("A4").vectors: 1 - letter_share,
        paper_vectors("US Letter").vectors: letter_share,
    }


def _search_section(args: argparse.Namespace) -> None:
    _django_setup()
    from bench import search, tables

    print("\n== Search at scale")
    result = search.run(
        sizes=[int(size) for size in args.search_sizes.split(",")],
        tokens=args.search_tokens or _page_mix(args.letter_share),
        plain_max_pages=args.plain_max_pages,
        queries=args.queries,
        efs=[int(ef) for ef in args.efs.split(",")],
        fetches=[int(fetch) for fetch in args.fetches.split(",")],
        pooled=args.pooled,
        pooled_efs=[int(ef) for ef in args.pooled_efs.split(",")],
        reranks=[int(rerank) for rerank in args.reranks.split(",")],
    )
    saved = results_save(args.results, "search", result)
    print(tables.search_table(result_load(saved, SearchResult)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
