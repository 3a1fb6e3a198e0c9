"""BICUBIC against LANCZOS: how much the image processor's resampling changes the vectors and the
MaxSim rankings, on real rendered pages with the full-size ColModernVBERT architecture.

The model was trained on images resized with LANCZOS (transformers' PIL image processor). The
torchvision image processor, which DocDB uses on a GPU to preprocess there, falls back to
BICUBIC on CUDA (torchvision has no LANCZOS there; transformers warns about it); on a CPU, with
torchvision 0.27 or newer, it resizes with LANCZOS and gives the PIL processor's pixels exactly.
So the BICUBIC side here is the torchvision processor told to use BICUBIC, as it does on CUDA.
Both run on the CPU with the same full-size model (random weights: bench/models.py; the
architecture, tiles and token counts are the real ones), on pages of the shared corpus rendered as
DocDB renders them:

    python -m bench.resample                      # 8 pages, ~10 min on 2 cores
    python -m bench.resample --pages 4 --out bench/results/resample.json

It prints, per page, the mean cosine between the two embeddings' token vectors (same tiles, so
the same tokens in the same order), and for queries taken from the pages' text, whether the
two rankings of the pages by MaxSim agree (top-1, top-3 overlap, Spearman's rho). With random
weights a ranking is noise, but the same noise for both processors: what differs between them is
what the resampling alone changes.
"""

import argparse
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

from bench.common import CORPUS_PDF, results_save  # noqa: E402

CORPUS_DIR = CORPUS_PDF.parent
LONGEST_EDGE = 2048


def _render(pdf: Path, page: int, folder: Path) -> tuple[Image.Image, str]:
    """Page `page` as DocDB renders it (longest edge 2048 px) and its text."""
    prefix = folder / f"{pdf.stem}-{page}"
    subprocess.run(
        ["pdftoppm", "-f", str(page), "-l", str(page), "-scale-to", str(LONGEST_EDGE),
         "-jpeg", "-singlefile", str(pdf), str(prefix)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    text = subprocess.run(
        ["pdftotext", "-f", str(page), "-l", str(page), "-layout", str(pdf), "-"],
        check=True, capture_output=True, timeout=120, text=True,
    ).stdout  # fmt: skip
    with Image.open(f"{prefix}.jpg") as image:
        return image.convert("RGB"), text


def _pages(count: int, folder: Path) -> list[tuple[str, Image.Image, str]]:
    """Pages with text from several corpus PDFs, the first and a middle page of each."""
    chosen = []
    for pdf in sorted(CORPUS_DIR.glob("*.pdf")):
        for page in (1, 2):
            try:
                image, text = _render(pdf, page, folder)
            except subprocess.CalledProcessError:
                continue
            if len(text.split()) >= 20:
                chosen.append((f"{pdf.name} p{page}", image, text))
            if len(chosen) == count:
                return chosen
    return chosen


def _query(text: str, rng: np.random.Generator) -> str:
    words = [word for word in text.split() if word.isalpha() and len(word) > 3]
    start = int(rng.integers(0, max(1, len(words) - 6)))
    return " ".join(words[start : start + 6])


def _maxsim(query: np.ndarray, page: np.ndarray) -> float:
    return float((query @ page.T).max(axis=1).sum())


def _spearman(a: list[float], b: list[float]) -> float:
    ranks_a = np.argsort(np.argsort(a))
    ranks_b = np.argsort(np.argsort(b))
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def measure(*, pages: int, model_dir: Path) -> dict[str, Any]:
    from transformers import ColModernVBertProcessor
    from transformers.image_utils import PILImageResampling

    from bench.models import fullsize_model_build
    from docdb.embedder.model import embedder_load

    if not (model_dir / "config.json").exists():
        print(f"building the full-size model in {model_dir} (random weights) ...", flush=True)
        fullsize_model_build(model_dir)
    embedder = embedder_load(str(model_dir), device="cpu", dtype="float32", image_backend="pil")
    bicubic = ColModernVBertProcessor.from_pretrained(model_dir, backend="torchvision")
    # What the torchvision processor falls back to on CUDA (see the module's docstring).
    bicubic.image_processor.resample = PILImageResampling.BICUBIC
    processors = {"LANCZOS (PIL)": embedder.processor, "BICUBIC (torchvision, as on CUDA)": bicubic}
    with tempfile.TemporaryDirectory(prefix="docdb-resample-") as folder:
        chosen = _pages(pages, Path(folder))
    rng = np.random.default_rng(0)
    queries = [_query(text, rng) for _, _, text in chosen]
    vectors: dict[str, list[np.ndarray]] = {}
    seconds: dict[str, float] = {}
    pixels = [
        [processor.process_images([image])["pixel_values"].numpy() for _, image, _ in chosen]
        for processor in processors.values()
    ]
    pixel_difference = max(float(abs(a - b).mean()) for a, b in zip(*pixels, strict=True))
    print(f"mean absolute pixel difference (of -1..1): up to {pixel_difference:.4f}", flush=True)
    for name, processor in processors.items():
        started = time.perf_counter()
        vectors[name] = [
            embedder.forward([processor.process_images([image])])[0] for _, image, _ in chosen
        ]
        seconds[name] = (time.perf_counter() - started) / len(chosen)
        print(f"{name}: {seconds[name]:.1f} s a page", flush=True)
    query_vectors = embedder.embed_queries(queries)
    lanczos, bicubic = (vectors[name] for name in processors)
    per_page = []
    for (label, _, _), a, b in zip(chosen, lanczos, bicubic, strict=True):
        cosines = (a * b).sum(axis=1) if a.shape == b.shape else np.array([np.nan])
        per_page.append(
            {
                "page": label,
                "tokens": [int(a.shape[0]), int(b.shape[0])],
                "mean_cosine": round(float(np.nanmean(cosines)), 5),
                "min_cosine": round(float(np.nanmin(cosines)), 5),
            }
        )
    agreement = []
    for query, own in zip(query_vectors, range(len(chosen)), strict=True):
        scores_a = [_maxsim(query, page) for page in lanczos]
        scores_b = [_maxsim(query, page) for page in bicubic]
        top_a, top_b = np.argsort(scores_a)[::-1], np.argsort(scores_b)[::-1]
        agreement.append(
            {
                "query": queries[own],
                "top1_same": bool(top_a[0] == top_b[0]),
                "top3_overlap": len(set(top_a[:3]) & set(top_b[:3])) / 3,
                "spearman": round(_spearman(scores_a, scores_b), 4),
                "own_page_rank": [int(np.where(top_a == own)[0][0]) + 1,
                                  int(np.where(top_b == own)[0][0]) + 1],
            }
        )  # fmt: skip
    return {
        "model": "full-size ColModernVBERT architecture, random weights, float32, CPU",
        "pages": per_page,
        "queries": agreement,
        "summary": {
            "mean_cosine": round(float(np.mean([p["mean_cosine"] for p in per_page])), 5),
            "min_cosine": round(float(np.min([p["min_cosine"] for p in per_page])), 5),
            "top1_agreement": float(np.mean([q["top1_same"] for q in agreement])),
            "top3_overlap": float(np.mean([q["top3_overlap"] for q in agreement])),
            "spearman": round(float(np.mean([q["spearman"] for q in agreement])), 4),
        },
        "mean_abs_pixel_difference_max": round(pixel_difference, 5),
        "seconds_per_page": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.resample")
    parser.add_argument("--pages", type=int, default=8)
    parser.add_argument(
        "--model-dir", type=Path, default=REPO_DIR / "data" / "bench" / "fullsize-model"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    result = measure(pages=args.pages, model_dir=args.model_dir)
    for page in result["pages"]:
        print(f"  {page['page']:<28} tokens {page['tokens']} cosine mean "
              f"{page['mean_cosine']:.4f} min {page['min_cosine']:.4f}")  # fmt: skip
    print(f"  summary: {result['summary']}")
    if args.out:
        # With the machine it was measured on (read back by bench/results.py).
        results_save(args.out.parent, args.out.stem, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
