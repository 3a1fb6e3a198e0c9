"""OCR of scanned pages: seconds per page, how well Tesseract reads the page image DocDB already
renders (longest edge 2048 px, ~175 dpi for A4) against one rendered 1.7x larger (~300 dpi),
what starting a `tesseract` process costs (the case for a process per page over an engine kept
loaded), one OpenMP thread against two, which pages of the shared corpus get OCR text, and what
OCR would read on a page whose text layer is wrong (not detected: it keeps its layer).

    python -m bench.ocr                              # ~5 min on 2 cores
    python -m bench.ocr --out bench/results/ocr.json

Accuracy is measured on born-digital pages, whose text layer is the truth: the share of the
layer's words (three letters or more) that OCR reads (recall), and of OCR's words that the layer
has (precision). Tesseract reads the JPEG the pipeline stores, as docdb/documents/ingestion.py
does.
"""

import argparse
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parent.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

from PIL import Image  # noqa: E402

from bench.common import CORPUS_PDF, results_save  # noqa: E402
from docdb import pdf  # noqa: E402
from docdb.config import SETTINGS  # noqa: E402

CORPUS_DIR = CORPUS_PDF.parent.parent
LONGEST_EDGE = 2048
LARGER_EDGE = 3480  # A4 at ~300 dpi
JPEG_QUALITY = int(SETTINGS["DOCDB_PAGE_JPEG_QUALITY"].default or 88)
MIN_CHARS = int(SETTINGS["DOCDB_OCR_MIN_CHARS"].default or 10)
# Born-digital pages of several kinds: a paper in 10-point type, a children's book, a book, a
# tax form in small print.
ACCURACY_PAGES = [
    ("tracemonkey.pdf", 1),
    ("pdkids.pdf", 3),
    ("freeculture.pdf", 20),
    ("prefilled_f1040.pdf", 1),
]
# A text layer there but wrong: glyphs mapped to blanks and to the wrong characters.
GARBLED_PAGE = ("TAMReview.pdf", 3)
# Files the corpus test rejects or that take long to open and have no page to read.
CORPUS_SKIP = {"many-pages.pdf"}
TIMEOUT = 300.0


def _render(path: Path, page: int, longest_edge: int) -> Image.Image:
    (rendered,) = pdf.pages_render(
        path,
        first=page,
        last=page,
        longest_edge=longest_edge,
        max_pixels=longest_edge**2,
        timeout=TIMEOUT,
    )
    return rendered.image


def _read(image: Image.Image, *, threads: int = 1) -> tuple[str, float]:
    jpeg = pdf.image_jpeg_bytes(image, quality=JPEG_QUALITY)
    started = time.perf_counter()
    text = pdf.image_ocr(jpeg, languages=["eng"], timeout=TIMEOUT, threads=threads)
    return text, time.perf_counter() - started


def _words(text: str) -> set[str]:
    return {word.lower() for word in re.findall(r"[A-Za-z]{3,}", text)}


def _accuracy(folder: Path) -> list[dict[str, Any]]:
    rows = []
    for name, number in ACCURACY_PAGES:
        path = folder / "real" / name
        truth = _words(pdf.pages_text(path, first=number, last=number, timeout=TIMEOUT)[number])
        for edge in (LONGEST_EDGE, LARGER_EDGE):
            image = _render(path, number, edge)
            text, seconds = _read(image)
            read = _words(text)
            rows.append(
                {
                    "page": f"{name} p{number}",
                    "size": f"{image.width} x {image.height}",
                    "longest_edge": edge,
                    "seconds": round(seconds, 2),
                    "recall": round(len(truth & read) / max(1, len(truth)), 3),
                    "precision": round(len(truth & read) / max(1, len(read)), 3),
                }
            )
            print(f"  {rows[-1]}", flush=True)
    return rows


def _start_seconds() -> float:
    blank = Image.new("RGB", (64, 32), "white")
    return statistics.median(_read(blank)[1] for _ in range(5))


def _threads(folder: Path) -> dict[str, float]:
    name, number = ACCURACY_PAGES[2]
    image = _render(folder / "real" / name, number, LONGEST_EDGE)
    return {str(threads): round(_read(image, threads=threads)[1], 2) for threads in (1, 2)}


def _corpus(folder: Path) -> list[dict[str, Any]]:
    """Each page the pipeline would read by OCR, as it would (ocr_wanted, at the render size)."""
    rows = []
    for path in sorted(folder.rglob("*.pdf")):
        if path.name in CORPUS_SKIP:
            continue
        try:
            count = pdf.pdf_inspect(path, max_pages=5000, timeout=60).pages
            layers = pdf.pages_text(path, first=1, last=count, timeout=TIMEOUT)
        except (pdf.PdfError, ValueError):
            continue
        for number, layer in layers.items():
            if pdf.letters_count(layer) >= MIN_CHARS:
                continue
            try:
                image = _render(path, number, LONGEST_EDGE)
            except (pdf.PdfError, ValueError):
                continue
            if not pdf.ocr_wanted(layer, image, min_chars=MIN_CHARS):
                continue
            text, seconds = _read(image)
            rows.append(
                {
                    "file": f"{path.parent.name}/{path.name}",
                    "page": number,
                    "layer_letters": pdf.letters_count(layer),
                    "ocr_letters": pdf.letters_count(text),
                    "seconds": round(seconds, 2),
                    "sample": " ".join(text.split()[:8]),
                }
            )
            print(f"  {rows[-1]}", flush=True)
    return rows


def _garbled(folder: Path) -> dict[str, Any]:
    """What OCR would read on a page whose text layer is wrong, against what the layer has."""
    name, number = GARBLED_PAGE
    path = folder / "real" / name
    layer = pdf.pages_text(path, first=number, last=number, timeout=TIMEOUT)[number]
    text, seconds = _read(_render(path, number, LONGEST_EDGE))
    return {
        "page": f"{name} p{number}",
        "layer_letters": pdf.letters_count(layer),
        "ocr_letters": pdf.letters_count(text),
        "seconds": round(seconds, 2),
    }


def measure(folder: Path) -> dict[str, Any]:
    engine = pdf.ocr_check(["eng"])
    print(f"Tesseract {engine.version}", flush=True)
    accuracy = _accuracy(folder)
    at_render = [row["seconds"] for row in accuracy if row["longest_edge"] == LONGEST_EDGE]
    return {
        "tesseract": engine.version,
        "jpeg_quality": JPEG_QUALITY,
        "min_chars": MIN_CHARS,
        "accuracy": accuracy,
        "seconds_per_page": round(statistics.mean(at_render), 2),
        "start_seconds": round(_start_seconds(), 3),
        "threads_seconds": _threads(folder),
        "corpus": _corpus(folder),
        "garbled": _garbled(folder),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ocr")
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    result = measure(args.corpus)
    print(
        f"  {result['seconds_per_page']} s a page at {LONGEST_EDGE} px; start "
        f"{result['start_seconds']} s; threads {result['threads_seconds']}"
    )
    if args.out:
        # With the machine it was measured on (read back by bench/results.py).
        results_save(args.out.parent, args.out.stem, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
