"""docdb.pdf against real poppler tools, on PDFs made here (pdf_factory) and, marked `corpus`,
on the shared corpus of real and hostile files named by DOCDB_CORPUS_DIR (the `corpus_dir`
fixture skips when it is unset and fails when it names a missing folder).
"""

import io
import math
import os
import pickle
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from docdb import pdf
from docdb.pdf import capped, poppler
from tests.pdf_factory import (
    file_make_not_pdf,
    pdf_make,
    pdf_make_giant_page,
    pdf_make_junk_before_header,
    pdf_make_no_pages,
    pdf_make_raw_pages,
    pdf_make_slow_page,
    pdf_make_troubled,
    pdf_make_truncated,
)

TIMEOUT = 30.0
LETTER_ASPECT = 612 / 792


@pytest.fixture
def five_pages(tmp_path: Path) -> Path:
    return pdf_make(
        tmp_path / "five.pdf",
        pages=[
            ["Hello on page one"],
            ["Page two says goodbye"],
            ["Zebras graze on page three", "Grüße aus Köln, café"],
            [],
            ["The fifth and last page"],
        ],
        title="Five pages",
    )


def _render(path: Path, **kwargs: int | float) -> list[pdf.RenderedPage]:
    options: dict = {
        "first": 1,
        "last": 1,
        "longest_edge": 1000,
        "max_pixels": 1000 * 1000,
        "timeout": TIMEOUT,
    }
    return pdf.pages_render(path, **(options | kwargs))


def _assert_readable(error: pdf.PdfError) -> None:
    """A reason a person can be shown: one plain sentence, no poppler output."""
    assert error.code in pdf.PDF_ERROR_CODES
    assert str(error) == error.reason
    assert error.reason[0].isupper() and error.reason.endswith(".")
    assert "\n" not in error.reason and len(error.reason) < 120
    assert "rror" not in error.reason


# pdf_sniff


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", True),
        (b"\xef\xbb\xbfjunk before the header\r\n%PDF-1.4\n", True),
        (b" " * 1023 + b"%PDF-", True),
        (b" " * 1024 + b"%PDF-", False),
        (b"<!doctype html><html></html>", False),
        (b"\x89PNG\r\n\x1a\n", False),
        (b"", False),
    ],
)
def test_sniff_looks_for_the_header_in_the_first_kilobyte(head: bytes, expected: bool) -> None:
    assert pdf.pdf_sniff(head) is expected


# pdf_inspect


def test_inspect_reads_pages_title_and_sizes(five_pages: Path) -> None:
    info = pdf.pdf_inspect(five_pages, max_pages=100, timeout=TIMEOUT)

    assert info == pdf.PdfInfo(
        pages=5, encrypted=False, title="Five pages", page_sizes=((612.0, 792.0),) * 5
    )


def test_inspect_gives_sizes_as_shown_for_rotated_pages(tmp_path: Path) -> None:
    path = pdf_make_raw_pages(tmp_path / "turned.pdf", media_boxes=["0 0 612 792"], rotate=90)

    info = pdf.pdf_inspect(path, max_pages=100, timeout=TIMEOUT)

    assert info.page_sizes == ((792.0, 612.0),)
    assert _render(path)[0].image.size == (1000, math.ceil(1000 * LETTER_ASPECT))


def test_inspect_has_empty_title_without_metadata(tmp_path: Path) -> None:
    path = pdf_make_raw_pages(tmp_path / "bare.pdf", media_boxes=["0 0 200 100"])

    info = pdf.pdf_inspect(path, max_pages=100, timeout=TIMEOUT)

    assert (info.pages, info.title, info.page_sizes) == (1, "", ((200.0, 100.0),))


def test_inspect_accepts_a_pdf_with_only_an_owner_password(tmp_path: Path) -> None:
    path = pdf_make(tmp_path / "owner.pdf", pages=[["Permissions only"]], owner_password="boss")

    info = pdf.pdf_inspect(path, max_pages=100, timeout=TIMEOUT)

    assert (info.pages, info.encrypted) == (1, True)
    assert pdf.pages_text(path, first=1, last=1, timeout=TIMEOUT) == {1: "Permissions only"}
    assert max(_render(path)[0].image.size) == 1000


def test_inspect_refuses_more_pages_than_the_limit(tmp_path: Path) -> None:
    path = pdf_make(tmp_path / "twelve.pdf", pages=[[f"page {n}"] for n in range(1, 13)])

    with pytest.raises(pdf.PdfError) as raised:
        pdf.pdf_inspect(path, max_pages=10, timeout=TIMEOUT)

    assert raised.value.code == "too_many_pages"
    assert raised.value.reason == "This PDF has 12 pages; the limit is 10."
    assert pdf.pdf_inspect(path, max_pages=12, timeout=TIMEOUT).pages == 12


def test_inspect_refuses_a_pdf_without_pages(tmp_path: Path) -> None:
    with pytest.raises(pdf.PdfError) as raised:
        pdf.pdf_inspect(pdf_make_no_pages(tmp_path / "none.pdf"), max_pages=10, timeout=TIMEOUT)

    assert (raised.value.code, raised.value.reason) == ("empty", "This PDF has no pages.")


def test_inspect_gives_up_after_the_timeout(five_pages: Path) -> None:
    # No real PDF makes pdfinfo slow; a limit shorter than starting a process stands in.
    with pytest.raises(pdf.PdfError) as raised:
        pdf.pdf_inspect(five_pages, max_pages=10, timeout=0.001)

    assert raised.value.code == "timeout"
    _assert_readable(raised.value)


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.pdf"
    path.write_bytes(b"")
    return path


def _html(tmp_path: Path) -> Path:
    return file_make_not_pdf(tmp_path / "page.pdf")


def _locked(tmp_path: Path) -> Path:
    return pdf_make(tmp_path / "locked.pdf", pages=[["secret"]], user_password="open sesame")


def _truncated(tmp_path: Path) -> Path:
    return pdf_make_truncated(tmp_path / "cut.pdf")


UNREADABLE = [
    pytest.param(_empty, "empty", "The file is empty.", id="empty"),
    pytest.param(_html, "not_pdf", "This file is not a PDF.", id="not_pdf"),
    pytest.param(_locked, "encrypted", "This PDF is password-protected.", id="encrypted"),
    pytest.param(_truncated, "damaged", "The file is damaged and could not be read.", id="damaged"),
]


@pytest.mark.parametrize(("make", "code", "reason"), UNREADABLE)
def test_every_reader_explains_a_file_it_cannot_open(
    tmp_path: Path, make: Callable[[Path], Path], code: str, reason: str
) -> None:
    path = make(tmp_path)
    readers = [
        lambda: pdf.pdf_inspect(path, max_pages=10, timeout=TIMEOUT),
        lambda: _render(path),
        lambda: pdf.pages_text(path, first=1, last=1, timeout=TIMEOUT),
    ]
    for read in readers:
        with pytest.raises(pdf.PdfError) as raised:
            read()
        assert (raised.value.code, raised.value.reason, raised.value.page) == (code, reason, None)


def test_a_file_name_is_never_taken_for_an_option(tmp_path: Path, monkeypatch) -> None:
    pdf_make(tmp_path / "-v.pdf", pages=[["dash"]])
    monkeypatch.chdir(tmp_path)

    assert pdf.pdf_inspect(Path("-v.pdf"), max_pages=10, timeout=TIMEOUT).pages == 1
    assert pdf.pages_text(Path("-v.pdf"), first=1, last=1, timeout=TIMEOUT) == {1: "dash"}


# pages_render


def test_render_scales_the_longest_side_to_longest_edge(five_pages: Path) -> None:
    pages = _render(five_pages, first=1, last=5, longest_edge=800)

    assert [page.number for page in pages] == [1, 2, 3, 4, 5]
    for page in pages:
        assert page.image.mode == "RGB"
        assert page.image.size == (math.ceil(800 * LETTER_ASPECT), 800)


def test_render_gives_only_the_pages_asked_for(five_pages: Path) -> None:
    all_pages = {page.number: page.image for page in _render(five_pages, first=1, last=5)}

    pages = _render(five_pages, first=2, last=3)

    assert [page.number for page in pages] == [2, 3]
    assert pages[1].image.tobytes() == all_pages[3].tobytes()
    assert pages[1].image.tobytes() != all_pages[2].tobytes()


def test_render_bounds_a_giant_page(tmp_path: Path, monkeypatch) -> None:
    path = pdf_make_giant_page(tmp_path / "giant.pdf")
    # 200 x 200 inches at 150 dpi would be 2.7 GB of bitmap; scaled it fits in far less.
    monkeypatch.setattr(capped, "MEMORY_BYTES", 400 * 1024**2)

    [page] = _render(path, longest_edge=2048, max_pixels=2048 * 2048)

    assert page.image.size == (2048, 2048)


def test_render_shrinks_an_image_to_max_pixels(five_pages: Path) -> None:
    [page] = _render(five_pages, longest_edge=1000, max_pixels=100_000)

    width, height = page.image.size
    assert width * height <= 100_000
    assert width * height > 95_000
    assert width / height == pytest.approx(LETTER_ASPECT, rel=0.01)


def test_render_handles_zero_size_and_sliver_pages(tmp_path: Path) -> None:
    path = pdf_make_raw_pages(
        tmp_path / "odd.pdf", media_boxes=["0 0 0 0", "0 0 14400 1", "0 0 1 14400"]
    )

    zero, wide, tall = _render(path, first=1, last=3, longest_edge=1000, max_pixels=500)

    # Poppler shows a page with an empty MediaBox as a blank letter-size page.
    assert zero.image.getextrema() == ((255, 255),) * 3
    assert zero.image.width / zero.image.height == pytest.approx(LETTER_ASPECT, rel=0.05)
    assert (wide.image.size, tall.image.size) == ((500, 1), (1, 500))


def test_render_names_the_page_that_needs_too_much_memory(tmp_path: Path, monkeypatch) -> None:
    # Page 2 is square: 10 000 px a side is a 300 MB bitmap, over the 200 MB cap; the
    # slivers around it are a few kilobytes.
    path = pdf_make_raw_pages(
        tmp_path / "big.pdf", media_boxes=["0 0 14400 10", "0 0 14400 14400", "0 0 14400 10"]
    )
    monkeypatch.setattr(capped, "MEMORY_BYTES", 200 * 1024**2)

    with pytest.raises(pdf.PdfError) as raised:
        _render(path, first=1, last=3, longest_edge=10_000, max_pixels=10_000**2)

    assert (raised.value.code, raised.value.page) == ("page_too_large", 2)
    assert raised.value.reason == "Page 2 needs too much memory to render."


def test_render_keeps_pillows_decompression_bomb_guard(five_pages: Path, monkeypatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)

    with pytest.raises(pdf.PdfError) as raised:
        _render(five_pages, first=2, last=2)

    assert (raised.value.code, raised.value.page) == ("page_too_large", 2)
    _assert_readable(raised.value)


def test_render_names_the_page_that_takes_too_long(tmp_path: Path) -> None:
    path = pdf_make_slow_page(tmp_path / "slow.pdf", pages=3, slow_page=2)

    with pytest.raises(pdf.PdfError) as raised:
        _render(path, first=1, last=3, timeout=3)

    assert (raised.value.code, raised.value.page) == ("timeout", 2)
    assert raised.value.reason == "Page 2 took too long to render."
    assert [page.number for page in _render(path, first=3, last=3)] == [3]


@pytest.mark.parametrize(
    "options",
    [
        {"first": 0},
        {"first": 3, "last": 2},
        {"longest_edge": 0},
        {"longest_edge": 100_000},
        {"max_pixels": 0},
        {"first": 6, "last": 6},
    ],
)
def test_render_rejects_bad_arguments(five_pages: Path, options: dict) -> None:
    with pytest.raises(ValueError):
        _render(five_pages, **options)


# pages_text


def test_text_keeps_each_page_with_its_number(five_pages: Path) -> None:
    texts = pdf.pages_text(five_pages, first=1, last=5, timeout=TIMEOUT)

    assert list(texts) == [1, 2, 3, 4, 5]
    assert texts[1] == "Hello on page one"
    assert "Zebras graze on page three" in texts[3]
    assert "Grüße aus Köln, café" in texts[3]
    assert texts[4] == ""
    assert "Zebras" not in texts[2] + texts[4]


def test_text_of_a_range(five_pages: Path) -> None:
    texts = pdf.pages_text(five_pages, first=3, last=4, timeout=TIMEOUT)

    assert list(texts) == [3, 4]
    assert texts[3].startswith("Zebras")


def test_poppler_text_gives_up_after_the_timeout(tmp_path: Path) -> None:
    path = pdf_make_slow_page(tmp_path / "slow.pdf", pages=2, slow_page=2)

    with pytest.raises(pdf.PdfError) as raised:
        poppler.pages_text(path, first=1, last=2, timeout=2)

    assert raised.value.code == "timeout"
    _assert_readable(raised.value)
    assert poppler.pages_text(path, first=1, last=1, timeout=TIMEOUT) == {1: "Page 1"}


def test_text_keeps_the_pages_pdfium_reads_when_poppler_runs_out_of_time(tmp_path: Path) -> None:
    path = pdf_make_slow_page(tmp_path / "slow.pdf", pages=2, slow_page=2)

    assert pdf.pages_text(path, first=1, last=2, timeout=2) == {1: "Page 1", 2: ""}


@pytest.mark.parametrize(("first", "last"), [(0, 1), (2, 1), (5, 6), (6, 6)])
def test_text_rejects_pages_outside_the_document(five_pages: Path, first: int, last: int) -> None:
    with pytest.raises(ValueError):
        pdf.pages_text(five_pages, first=first, last=last, timeout=TIMEOUT)


# The second engine: PDFium where poppler cannot


def _render_each(path: Path, last: int) -> pdf.PagesRendered:
    return pdf.pages_render_each(
        path, first=1, last=last, longest_edge=500, max_pixels=500 * 500, timeout=TIMEOUT
    )


def test_pdfium_draws_a_page_poppler_renders_blank(tmp_path: Path) -> None:
    path = pdf_make_troubled(tmp_path / "font.pdf", pages=3, font_missing=[3])
    poppler_pages = poppler.pages_render_each(
        path, first=1, last=3, longest_edge=500, max_pixels=500 * 500, timeout=TIMEOUT
    )
    assert poppler_pages[3].getextrema() == ((255, 255),) * 3  # type: ignore[union-attr]

    rendered = _render_each(path, 3)

    assert [(page.number, page.engine) for page in rendered.pages] == [
        (1, "poppler"), (2, "poppler"), (3, "pdfium"),
    ]  # fmt: skip
    assert rendered.damaged == []
    assert rendered.pages[2].image.size == (math.ceil(500 * LETTER_ASPECT), 500)
    assert rendered.pages[2].image.convert("L").getextrema()[0] < 100  # black text drawn
    texts = pdf.pages_text(path, first=1, last=3, timeout=TIMEOUT, pdfium_pages=frozenset({3}))
    assert texts == {n: f"Page {n} of the troubled file" for n in (1, 2, 3)}


def test_pdfium_reads_a_file_whose_page_tree_poppler_finds_empty(tmp_path: Path) -> None:
    path = pdf_make_troubled(tmp_path / "count.pdf", pages=3, count=0)
    with pytest.raises(pdf.PdfError, match="no pages"):
        poppler.pdf_inspect(path, max_pages=10, timeout=TIMEOUT)

    info = pdf.pdf_inspect(path, max_pages=10, timeout=TIMEOUT)
    rendered = _render_each(path, 3)

    assert (info.pages, info.page_sizes) == (3, ((612.0, 792.0),) * 3)
    assert [(page.number, page.engine) for page in rendered.pages] == [
        (1, "pdfium"), (2, "pdfium"), (3, "pdfium"),
    ]  # fmt: skip
    assert pdf.pages_text(path, first=2, last=2, timeout=TIMEOUT) == {
        2: "Page 2 of the troubled file"
    }
    with pytest.raises(pdf.PdfError, match="3 pages; the limit is 2"):
        pdf.pdf_inspect(path, max_pages=2, timeout=TIMEOUT)


def test_a_page_no_engine_renders_is_listed_and_the_others_kept(tmp_path: Path) -> None:
    path = pdf_make_troubled(tmp_path / "tiny.pdf", pages=3, tiny=[2])

    rendered = _render_each(path, 3)

    assert [page.number for page in rendered.pages] == [1, 3]
    [damage] = rendered.damaged
    assert (damage.page, damage.code) == (2, "damaged")
    assert damage.reason == "Page 2 is damaged and could not be rendered."
    with pytest.raises(pdf.PdfError) as raised:
        _render(path, first=1, last=3)
    assert raised.value.page == 2


def test_a_page_that_hangs_both_engines_is_listed_as_too_slow(tmp_path: Path) -> None:
    path = pdf_make_slow_page(tmp_path / "slow.pdf", pages=3, slow_page=2)

    rendered = pdf.pages_render_each(
        path, first=1, last=3, longest_edge=500, max_pixels=500 * 500, timeout=3
    )

    assert [page.number for page in rendered.pages] == [1, 3]
    assert [(d.page, d.reason) for d in rendered.damaged] == [
        (2, "Page 2 took too long to render.")
    ]


def test_a_header_after_junk_within_the_first_kilobyte_is_read(tmp_path: Path) -> None:
    path = pdf_make_junk_before_header(tmp_path / "junk.pdf", junk=b"\r\n" * 511 + b"X")

    assert pdf.pdf_sniff(path.read_bytes()[: pdf.SNIFF_HEAD])
    assert pdf.pdf_inspect(path, max_pages=10, timeout=TIMEOUT).pages == 2
    assert [page.engine for page in _render_each(path, 2).pages] == ["poppler", "poppler"]


def test_pdfium_runs_under_the_memory_cap(tmp_path: Path, monkeypatch) -> None:
    path = pdf_make_troubled(tmp_path / "font.pdf", pages=1, font_missing=[1])
    # 10 000 px a side is a 400 MB bitmap for PDFium: over a 200 MB cap the page fails alone.
    monkeypatch.setattr(capped, "MEMORY_BYTES", 200 * 1024**2)

    huge = pdf.pages_render_each(
        path, first=1, last=1, longest_edge=10_000, max_pixels=10_000**2, timeout=TIMEOUT
    )
    small = _render_each(path, 1)

    assert (huge.pages, [d.page for d in huge.damaged]) == ([], [1])
    assert [page.engine for page in small.pages] == ["pdfium"]


def test_unlock_writes_a_copy_without_the_password(tmp_path: Path) -> None:
    locked = _locked(tmp_path)
    unlocked = tmp_path / "unlocked.pdf"

    with pytest.raises(pdf.PdfError) as raised:
        pdf.pdf_unlock(locked, unlocked, password="wrong", timeout=TIMEOUT)
    assert raised.value.code == "encrypted"
    assert pdf.pdf_unlock(locked, unlocked, password="open sesame", timeout=TIMEOUT) == 1

    assert pdf.pdf_inspect(unlocked, max_pages=10, timeout=TIMEOUT).encrypted is False
    assert pdf.pages_text(unlocked, first=1, last=1, timeout=TIMEOUT) == {1: "secret"}


# images


def test_thumbnail_keeps_the_aspect_ratio() -> None:
    image = Image.new("RGB", (1000, 1294), "white")

    thumbnail = pdf.thumbnail_make(image, width=320)

    assert thumbnail.size == (320, 414)


def test_thumbnail_never_enlarges() -> None:
    image = Image.new("RGB", (100, 50), "white")

    thumbnail = pdf.thumbnail_make(image, width=320)

    assert thumbnail.size == (100, 50) and thumbnail is not image


def test_thumbnail_needs_a_positive_width() -> None:
    with pytest.raises(ValueError):
        pdf.thumbnail_make(Image.new("RGB", (10, 10)), width=0)


def test_jpeg_bytes_are_a_jpeg_even_from_rgba() -> None:
    data = pdf.image_jpeg_bytes(Image.new("RGBA", (40, 30), (255, 0, 0, 128)), quality=80)

    assert data.startswith(b"\xff\xd8")
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (40, 30))


def test_write_jpeg_replaces_the_file_in_one_step(tmp_path: Path) -> None:
    path = tmp_path / "thumbs" / "1.jpg"
    pdf.image_write_jpeg(Image.new("RGB", (10, 10), "black"), path, quality=80)

    written = pdf.image_write_jpeg(Image.new("RGB", (64, 48), "white"), path, quality=80)

    assert written == path.stat().st_size
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(path.parent) == ["1.jpg"]
    with Image.open(path) as image:
        assert (image.format, image.size) == ("JPEG", (64, 48))


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "page.jpg"
    pdf.file_write_atomic(path, b"old")

    with pytest.raises(TypeError):
        pdf.file_write_atomic(path, "not bytes")  # type: ignore[arg-type]

    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["page.jpg"]


# errors


@pytest.mark.parametrize("code", pdf.PDF_ERROR_CODES)
def test_every_error_code_has_a_readable_default_reason(code: pdf.PdfErrorCode) -> None:
    _assert_readable(pdf.PdfError(code))


def test_an_error_survives_pickling() -> None:
    error = pdf.PdfError("damaged", "Page 7 is damaged and could not be rendered.", page=7)

    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes)

    assert (copy.code, copy.reason, copy.page) == ("damaged", error.reason, 7)


# The shared corpus: real documents and files that broke other PDF readers.

CORPUS_ENV = "DOCDB_CORPUS_DIR"
# What must happen to the hostile files whose outcome does not depend on poppler's repair
# skills (None: they are processed). The rest must either work or fail with a reason.
HOSTILE_OUTCOMES = {
    "zero-bytes.pdf": "empty",
    "22060_A1_01_Plans.pdf": "empty",
    "html-named-pdf.pdf": "not_pdf",
    "png-named-pdf.pdf": "not_pdf",
    "issue3371.pdf": "encrypted",
    "many-pages.pdf": "too_many_pages",
    "empty_protected.pdf": None,
    "empty.pdf": None,
    "giant-page.pdf": None,
    "zero-size-page.pdf": None,
    "..%2F..%2Fetc%2Fpasswd ünïcødé 名前.pdf": None,
}


def _corpus_names(folder: str) -> list[str]:
    root = os.environ.get(CORPUS_ENV)
    if not root or not Path(root, folder).is_dir():
        return []  # test_corpus_is_there fails or skips for these cases
    return sorted(path.name for path in Path(root, folder).iterdir() if path.is_file())


@pytest.mark.corpus
def test_corpus_is_there(corpus_dir: Path) -> None:
    assert _corpus_names("hostile"), f"no files in {corpus_dir / 'hostile'}"
    assert (corpus_dir / "real" / "tracemonkey.pdf").is_file()


@pytest.mark.corpus
@pytest.mark.parametrize("name", _corpus_names("hostile"))
def test_corpus_hostile_file_is_processed_or_explained(corpus_dir: Path, name: str) -> None:
    path = corpus_dir / "hostile" / name
    try:
        info = pdf.pdf_inspect(path, max_pages=2000, timeout=TIMEOUT)
        last = min(info.pages, 3)
        pages = pdf.pages_render(
            path, first=1, last=last, longest_edge=1024, max_pixels=1024**2, timeout=TIMEOUT
        )
        texts = pdf.pages_text(path, first=1, last=last, timeout=TIMEOUT)
    except pdf.PdfError as error:
        _assert_readable(error)
        outcome: str | None = error.code
    else:
        assert [page.number for page in pages] == list(texts) == list(range(1, last + 1))
        assert all(max(page.image.size) == 1024 for page in pages)
        outcome = None
    if name in HOSTILE_OUTCOMES:
        assert outcome == HOSTILE_OUTCOMES[name]


@pytest.mark.corpus
@pytest.mark.parametrize("name", _corpus_names("real"))
def test_corpus_real_document_is_processed(corpus_dir: Path, name: str) -> None:
    path = corpus_dir / "real" / name

    info = pdf.pdf_inspect(path, max_pages=2000, timeout=TIMEOUT)
    [page] = _render(path, longest_edge=512, max_pixels=512**2)

    assert info.pages >= 1 and len(info.page_sizes) == info.pages
    assert page.number == 1 and max(page.image.size) == 512


@pytest.mark.corpus
def test_corpus_tracemonkey_pages_and_text(corpus_dir: Path) -> None:
    path = corpus_dir / "real" / "tracemonkey.pdf"

    info = pdf.pdf_inspect(path, max_pages=2000, timeout=TIMEOUT)
    texts = pdf.pages_text(path, first=1, last=info.pages, timeout=TIMEOUT)

    assert info.pages == 14
    assert "Trace-based Just-in-Time Type Specialization" in texts[1]
    assert "References" in texts[14]


def test_control_characters_in_a_text_layer_become_spaces() -> None:
    # What pdftotext gives for a font without a Unicode map (TAMReview.pdf in the corpus).
    raw = "\x12\x98\x87\x94\x03\x91\x88\nOverview\x02of\x02the\x02Model:\x02\x02\nA\tB\x00C\n"
    assert poppler.text_clean(raw) == "Overview of the Model: \nA\tBC"
