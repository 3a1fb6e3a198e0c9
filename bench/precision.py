"""Embedding speed on a CPU against fidelity: float32, bfloat16, int8 and a smaller page size.

Each variant loads the full-size ColModernVBERT architecture (random weights: bench/models.py;
tiles, tokens and layer sizes are the real ones) as the embedder does, with its
DOCDB_EMBEDDER_DTYPE and DOCDB_EMBEDDER_LONGEST_EDGE, and embeds the same pages of the shared
corpus, rendered as DocDB renders them, one page per forward pass (as the pipeline sends them on
a CPU), and the same queries, taken from the pages' text. Against float32 at 2048 px it reports:

- seconds a page and a query's milliseconds (median and p95) on this machine;
- the cosine of each token vector with float32's (same page size only: another size makes other
  tokens);
- agreement of the top-10 (and top-1) pages by MaxSim for every query.

    python -m bench.precision --pages 12 --queries 50 --out bench/results/precision.json
    python -m bench.precision --variants float32,bfloat16 --pages 4     # emulated bf16 is slow

With random weights a ranking is noise, but the reference's noise: a variant that keeps the
rankings here changes the scores little; on the real weights, where scores are far apart, it
can only agree more. The issue's full size is 200 pages and 50 queries (~2 h on 2 cores).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parent.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench.common import percentile, results_save  # noqa: E402
from bench.resample import CORPUS_DIR, _maxsim, _query, _render  # noqa: E402

# name: (DOCDB_EMBEDDER_DTYPE, DOCDB_EMBEDDER_LONGEST_EDGE, DOCDB_EMBEDDER_QUERY_DTYPE); the
# first is the reference.
VARIANTS = {
    "float32": ("float32", 2048, "same"),
    "bfloat16": ("bfloat16", 2048, "same"),
    "bfloat16-1024": ("bfloat16", 1024, "same"),
    "int8": ("int8", 2048, "same"),
    "float32-1024": ("float32", 1024, "same"),
    "int8-1024": ("int8", 1024, "same"),
    # Pages as float32 or bfloat16, queries through an int8 copy of the text model.
    "int8-queries": ("float32", 2048, "int8"),
    "bfloat16-int8-queries": ("bfloat16", 2048, "int8"),
}
REFERENCE = "float32"


def pages_render(count: int, folder: Path) -> list[tuple[str, Image.Image, str]]:
    """`count` pages with text, taken in turn from the corpus PDFs (page 1 of each, then 2, ...)."""
    pdfs = sorted(CORPUS_DIR.glob("*.pdf"))
    chosen: list[tuple[str, Image.Image, str]] = []
    for page in range(1, 40):
        for pdf in pdfs:
            try:
                image, text = _render(pdf, page, folder)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError):
                continue  # past its last page, damaged or protected: the next PDF
            if len(text.split()) >= 20:
                chosen.append((f"{pdf.name} p{page}", image, text))
            if len(chosen) == count:
                return chosen
    return chosen


def variant_measure(
    name: str,
    *,
    model_dir: Path,
    pages: list[Image.Image],
    queries: list[str],
    measured: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """One variant's pages and queries. A variant whose pages another variant in `measured`
    already embedded the same way (the same dtype and page size: `int8-queries` and `float32`)
    takes that variant's page vectors and times instead of embedding the pages again."""
    from docdb.embedder.model import embedder_load, query_model_quantize

    dtype, longest_edge, query_dtype = VARIANTS[name]
    embedder = embedder_load(
        str(model_dir), device="cpu", dtype=dtype, image_backend="pil", longest_edge=longest_edge
    )
    query_model_quantize(embedder, query_dtype)
    same_pages = next(
        (
            variant
            for other, variant in measured.items()
            if VARIANTS[other][:2] == (dtype, longest_edge)
        ),
        None,
    )
    if same_pages is not None:
        vectors, page_seconds = same_pages["_pages"], same_pages["_page_seconds"]
    else:
        embedder.embed_images([pages[0]])  # warm-up: first-call allocations and kernel choices
        vectors, page_seconds = [], []
        for image in pages:
            started = time.perf_counter()
            vectors.append(embedder.embed_images([image])[0])
            page_seconds.append(time.perf_counter() - started)
            took = page_seconds[-1]
            print(f"  {name}: page {len(vectors)}/{len(pages)} {took:.1f} s", flush=True)
    embedder.embed_queries([queries[0]])  # warm-up
    query_vectors, query_ms = [], []
    for query in queries:
        started = time.perf_counter()
        query_vectors.append(embedder.embed_queries([query])[0])
        query_ms.append((time.perf_counter() - started) * 1000)
    return {
        "dtype": embedder.precision
        if embedder.query_precision == embedder.precision
        else f"{embedder.precision}, queries {embedder.query_precision}",
        "longest_edge": longest_edge,
        "vectors_per_page": float(np.mean([len(v) for v in vectors])),
        "seconds_per_page": round(float(np.median(page_seconds)), 2),
        "query_ms_p50": round(percentile(query_ms, 0.5), 1),
        "query_ms_p95": round(percentile(query_ms, 0.95), 1),
        "_pages": vectors,
        "_page_seconds": page_seconds,
        "_queries": query_vectors,
    }


def fidelity(variant: dict[str, Any], reference: dict[str, Any], *, top: int) -> dict[str, Any]:
    """Token cosines (same size only) and top-`top` agreement of the rankings."""
    cosines = [
        float((a * b).sum(axis=1).mean())
        for a, b in zip(variant["_pages"], reference["_pages"], strict=True)
        if a.shape == b.shape
    ]
    # A query is the same tokens in every variant: its vectors compare token by token.
    query_cosines = [
        float((a * b).sum(axis=1).mean())
        for a, b in zip(variant["_queries"], reference["_queries"], strict=True)
    ]
    overlaps, firsts, errors = [], [], []
    # Queries are compared with the reference's query vectors too: a query is part of the variant.
    for query_v, query_r in zip(variant["_queries"], reference["_queries"], strict=True):
        scores_v = np.array([_maxsim(query_v, page) for page in variant["_pages"]])
        scores_r = np.array([_maxsim(query_r, page) for page in reference["_pages"]])
        top_v, top_r = np.argsort(-scores_v)[:top], np.argsort(-scores_r)[:top]
        overlaps.append(len(set(top_v) & set(top_r)) / top)
        # How far the variant moves a page's score, against how far apart the reference's
        # scores are: the smaller, the fewer pages change places.
        if len(scores_r) > 1:
            errors.append(float(np.abs(scores_v - scores_r).mean() / scores_r.std()))
        firsts.append(top_v[0] == top_r[0])
    return {
        "mean_cosine": round(float(np.mean(cosines)), 5) if cosines else None,
        "min_page_cosine": round(float(np.min(cosines)), 5) if cosines else None,
        "query_cosine": round(float(np.mean(query_cosines)), 5),
        "min_query_cosine": round(float(np.min(query_cosines)), 5),
        "score_error": round(float(np.mean(errors)), 4) if errors else None,
        "top_agreement": round(float(np.mean(overlaps)), 3),
        "top1_agreement": round(float(np.mean(firsts)), 3),
    }


def measure(
    *,
    variants: list[str],
    pages: int,
    queries: int,
    top: int,
    model_dir: Path,
    reference_name: str = REFERENCE,
) -> dict[str, Any]:
    from bench.models import fullsize_model_build
    from docdb.embedder.model import cpu_features

    if not (model_dir / "config.json").exists():
        print(f"building the full-size model in {model_dir} (random weights) ...", flush=True)
        fullsize_model_build(model_dir)
    with tempfile.TemporaryDirectory(prefix="docdb-precision-") as folder:
        chosen = pages_render(pages, Path(folder))
    rng = np.random.default_rng(0)
    texts = [query for query in (_query(chosen[i % len(chosen)][2], rng) for i in range(queries))]
    images = [image for _, image, _ in chosen]
    names = [reference_name, *[name for name in variants if name != reference_name]]
    measured = {}
    for name in names:
        measured[name] = variant_measure(
            name, model_dir=model_dir, pages=images, queries=texts, measured=measured
        )
    reference = measured[reference_name]
    results = {}
    for name, variant in measured.items():
        results[name] = {
            **{key: value for key, value in variant.items() if not key.startswith("_")},
            "speedup": round(reference["seconds_per_page"] / variant["seconds_per_page"], 2),
            **fidelity(variant, reference, top=min(top, len(images))),
        }
    return {
        "model": "full-size ColModernVBERT architecture, random weights, CPU, one page a pass",
        "pages": [label for label, _, _ in chosen],
        "queries": len(texts),
        "top": min(top, len(images)),
        "reference": reference_name,
        "variants": results,
        "cpu_features": cpu_features(),
    }


def kernels_measure(tokens: int = 4096, repeats: int = 3) -> dict[str, float]:
    """Milliseconds of one 768 x 3072 linear layer (the vision MLP's) on `tokens` tokens in each
    arithmetic: what this CPU's kernels give, apart from the model."""
    import torch

    from docdb.embedder.model import linear_layers_quantize

    torch.manual_seed(0)
    inputs = torch.randn(tokens, 768)
    layers = {
        "float32": torch.nn.Sequential(torch.nn.Linear(768, 3072)),
        "int8": linear_layers_quantize(torch.nn.Sequential(torch.nn.Linear(768, 3072))),
        "bfloat16": torch.nn.Sequential(torch.nn.Linear(768, 3072)).to(torch.bfloat16),
    }
    timings = {}
    with torch.inference_mode():
        for name, layer in layers.items():
            x = inputs.to(torch.bfloat16) if name == "bfloat16" else inputs
            layer(x)
            started = time.perf_counter()
            for _ in range(repeats):
                layer(x)
            timings[name] = round((time.perf_counter() - started) / repeats * 1000, 1)
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.precision")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--pages", type=int, default=12)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument(
        "--model-dir", type=Path, default=REPO_DIR / "data" / "bench" / "fullsize-model"
    )
    parser.add_argument(
        "--reference", default=REFERENCE, help="the variant the others are compared with"
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--kernels", action="store_true", help="only time one linear layer in each arithmetic"
    )
    args = parser.parse_args(argv)
    if args.kernels:
        from docdb.embedder.model import cpu_features

        print(json.dumps({"cpu_features": cpu_features(), "linear_ms": kernels_measure()}))
        return 0
    unknown = {*args.variants.split(","), args.reference} - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}: choose from {', '.join(VARIANTS)}")
    result = measure(
        variants=args.variants.split(","),
        pages=args.pages,
        queries=args.queries,
        top=args.top,
        model_dir=args.model_dir,
        reference_name=args.reference,
    )
    for name, variant in result["variants"].items():
        print(f"{name:<14} {json.dumps(variant)}")
    if args.out:
        # With the machine it was measured on (read back by bench/results.py).
        results_save(args.out.parent, args.out.stem, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
