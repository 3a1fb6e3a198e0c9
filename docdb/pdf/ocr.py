"""Text for pages that have none in their text layer (scans): Tesseract reads the page image
already rendered.

One `tesseract` process per page, capped like the PDF engines (a time limit, a memory cap),
rather than the engine kept loaded in the worker (tesserocr): starting it costs 0.2-0.4 s
against 4-10 s to read a page on this project's 2-core build machine (docs/benchmarks.md, "OCR
of scanned pages"), it needs no compiled binding, and a page that makes it crash or hang costs
that page its text, not the worker.
"""

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from docdb.config import TESSERACT_LANGUAGE, tesseract_package
from docdb.pdf.capped import capped_run
from docdb.pdf.pagefiles import image_blank

TESSERACT = "tesseract"
_CHECK_TIMEOUT_SECONDS = 10


class OcrError(Exception):
    """Tesseract could not read a page, or cannot run at all; the message says why."""


@dataclass(frozen=True, slots=True)
class OcrEngine:
    version: str  # "5.3.0"
    languages: tuple[str, ...]  # every language pack installed


def ocr_wanted(layer: str, image: Image.Image, *, min_chars: int) -> bool:
    """Whether a page is worth reading by OCR: its text layer has fewer than `min_chars`
    letters and digits (a scan, or a scan with a stamp or a page number), and something is
    drawn on it."""
    return letters_count(layer) < min_chars and not image_blank(image)


def letters_count(text: str) -> int:
    return sum(character.isalnum() for character in text)


def ocr_check(languages: Sequence[str]) -> OcrEngine:
    """Tesseract's version and language packs; OcrError, saying what to install, when it is
    missing or lacks one of `languages`."""
    try:
        version = _tesseract(["--version"])
        listed = _tesseract(["--list-langs"])
    except FileNotFoundError:
        raise OcrError(
            "Tesseract is not installed: install the Debian package tesseract-ocr (`make run` "
            "does), or set DOCDB_OCR=off to index scanned pages without their text."
        ) from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OcrError(f"Tesseract does not run: {exc}") from None
    # "List of available languages in "/usr/share/tesseract-ocr/5/tessdata/" (2):", then one a line.
    installed = tuple(line.strip() for line in listed.splitlines()[1:] if line.strip())
    missing = [language for language in languages if language not in installed]
    if missing:
        packages = " ".join(tesseract_package(language) for language in missing)
        raise OcrError(
            f"Tesseract has no language pack for {', '.join(missing)}: install the Debian "
            f"package {packages} (`make run` installs one for each of DOCDB_OCR_LANGUAGES), or "
            "remove it from DOCDB_OCR_LANGUAGES."
        )
    words = version.split()
    return OcrEngine(version=words[1] if len(words) > 1 else version.strip(), languages=installed)


def _tesseract(args: list[str]) -> str:
    result = subprocess.run(
        [TESSERACT, *args],
        capture_output=True,
        timeout=_CHECK_TIMEOUT_SECONDS,
        check=False,
        text=True,
    )
    # Tesseract 5 prints these to stdout, older versions to stderr.
    return result.stdout or result.stderr


def image_ocr(image: bytes, *, languages: Sequence[str], timeout: float, threads: int = 1) -> str:
    """The text Tesseract reads on a page image (JPEG or PNG bytes); OcrError when it cannot.

    One thread by default: OpenMP's threads spin while they wait, and on a busy 2-core machine
    two threads read a page 3-10x slower than one (docs/benchmarks.md, "OCR of scanned
    pages"). Workers read pages in parallel instead."""
    if not languages or not all(TESSERACT_LANGUAGE.fullmatch(code) for code in languages):
        raise ValueError(f"not Tesseract language codes: {list(languages)}")
    try:
        finished = capped_run(
            [TESSERACT, "stdin", "stdout", "-l", "+".join(languages)],
            timeout=timeout,
            stdin=image,
            env={"OMP_THREAD_LIMIT": str(threads)},
        )
    except FileNotFoundError:
        raise OcrError("Tesseract is not installed.") from None
    if finished.timed_out:
        raise OcrError(f"Tesseract took more than {timeout:.0f} s.")
    if finished.returncode != 0:
        said = finished.stderr.decode(errors="replace").strip().splitlines()
        raise OcrError(f"Tesseract failed ({finished.returncode}): {' '.join(said[-2:])}")
    # Tesseract ends each page with a form feed.
    return finished.stdout.decode(errors="replace").replace("\f", "").strip()
