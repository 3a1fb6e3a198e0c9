"""Make PDFs (good and hostile) for tests, so tests never depend on files outside the repo."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from reportlab.lib.pagesizes import letter
from reportlab.lib.pdfencrypt import StandardEncryption
from reportlab.pdfgen import canvas

FONT_SIZE = 14
LINE_HEIGHT = 20
MARGIN = 72


def pdf_make(
    path: Path,
    *,
    pages: Sequence[Sequence[str]],
    page_size: tuple[float, float] = letter,
    title: str | None = None,
    user_password: str | None = None,
    owner_password: str | None = None,
) -> Path:
    """Write one page per item of `pages`, each line at `line_position` (a page may be empty).

    Give `user_password` to need a password to open it, or only `owner_password` to encrypt it
    the way readers open without asking (permissions only).
    """
    encrypt = None
    if user_password is not None or owner_password is not None:
        encrypt = StandardEncryption(
            userPassword=user_password or "",
            ownerPassword=owner_password or user_password or "",
            strength=128,
        )
    pdf = canvas.Canvas(str(path), pagesize=page_size, encrypt=encrypt, invariant=1)
    if title is not None:
        pdf.setTitle(title)
    for lines in pages:
        pdf.setFont("Helvetica", FONT_SIZE)
        for index, line in enumerate(lines):
            pdf.drawString(*line_position(index, page_size=page_size), line)
        pdf.showPage()
    pdf.save()
    return path


def line_position(index: int, *, page_size: tuple[float, float] = letter) -> tuple[float, float]:
    """Where `pdf_make` draws line `index` (0-based), in points from the bottom-left corner."""
    return MARGIN, page_size[1] - MARGIN - index * LINE_HEIGHT


def pdf_make_giant_page(path: Path, *, inches: float = 200) -> Path:
    """One square page `inches` wide: 900 megapixels at 150 dpi for the default 200 inches."""
    side = inches * 72
    return pdf_make(path, pages=[["giant page"]], page_size=(side, side))


def pdf_from_objects(objects: Sequence[bytes]) -> bytes:
    """A PDF whose objects 1..n are `objects` (object 1 the catalog), with a correct xref."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


def pdf_make_raw_pages(path: Path, *, media_boxes: Sequence[str], rotate: int = 0) -> Path:
    """Text-free pages with these MediaBox arrays written verbatim (e.g. "0 0 0 0"), each
    shown turned clockwise by `rotate` degrees.
    """
    first_page = 3
    kids = " ".join(f"{first_page + i} 0 R" for i in range(len(media_boxes)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(media_boxes)} >>".encode(),
    ]
    objects += [
        f"<< /Type /Page /Parent 2 0 R /MediaBox [{box}] /Rotate {rotate} >>".encode()
        for box in media_boxes
    ]
    path.write_bytes(pdf_from_objects(objects))
    return path


def pdf_make_slow_page(path: Path, *, pages: int, slow_page: int) -> Path:
    """`pages` pages saying "Page N"; page `slow_page` also draws a form that draws a form ten
    times, ten levels deep: 10^10 drawings, so no reader finishes that page.
    """
    depth = 10
    first_form = 4  # objects 1-3: catalog, page tree, font
    forms = []
    for level in range(depth):
        inner = first_form + level + 1
        content = b"/X Do " * 10 if level < depth - 1 else b"0 0 1 1 re f"
        resources = b"<< /XObject << /X %d 0 R >> >>" % inner if level < depth - 1 else b"<< >>"
        forms.append(
            b"<< /Type /XObject /Subtype /Form /BBox [0 0 1 1] /Resources %s /Length %d >>\n"
            b"stream\n%s\nendstream" % (resources, len(content), content)
        )
    page_objects: list[bytes] = []
    kids: list[bytes] = []
    for number in range(1, pages + 1):
        page_id = first_form + depth + len(page_objects)
        kids.append(b"%d 0 R" % page_id)
        content = b"BT /F1 24 Tf 72 700 Td (Page %d) Tj ET" % number
        if number == slow_page:
            content += b" /X Do"
        page_objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 3 0 R >> /XObject << /X %d 0 R >> >> >>"
            % (page_id + 1, first_form)
        )
        page_objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), pages),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        *forms,
        *page_objects,
    ]
    path.write_bytes(pdf_from_objects(objects))
    return path


def pdf_make_no_pages(path: Path) -> Path:
    """A well-formed PDF whose page tree is empty."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]
    path.write_bytes(pdf_from_objects(objects))
    return path


def pdf_make_truncated(path: Path, *, keep: float = 0.4, pages: int = 5) -> Path:
    """The first `keep` share of a real PDF, cut where an interrupted upload would cut it."""
    pdf_make(path, pages=[[f"Page {n} of a cut file"] * 30 for n in range(1, pages + 1)])
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def file_make_not_pdf(path: Path, *, content: bytes = b"<!doctype html><p>not a pdf</p>") -> Path:
    """Any non-PDF bytes under a `.pdf` name."""
    path.write_bytes(content)
    return path


def pdf_make_troubled(
    path: Path,
    *,
    pages: int,
    font_missing: Sequence[int] = (),
    tiny: Sequence[int] = (),
    count: int | None = None,
) -> Path:
    """`pages` pages each saying "Page N of the troubled file", with trouble where asked:

    - `font_missing`: the page's text names a font its resources lack. Poppler skips the text
      and renders a blank page; PDFium draws it with a stand-in font.
    - `tiny`: the page is 0.00001 pt square (and so shows nothing). Poppler gives up on it
      ("JpegWriter: hDPI or vDPI values are invalid"); PDFium renders it blank.
    - `count`: the page tree's /Count (default: right). With 0, poppler finds no pages;
      PDFium counts the pages the tree holds.
    """
    first_page = 4  # objects 1-3: catalog, page tree, font
    kids, page_objects = [], []
    for number in range(1, pages + 1):
        page_id = first_page + 2 * (number - 1)
        kids.append(b"%d 0 R" % page_id)
        fonts = b"" if number in font_missing else b"/Font << /F1 3 0 R >>"
        box = b"0 0 0.00001 0.00001" if number in tiny else b"0 0 612 792"
        page_objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [%s] /Contents %d 0 R /Resources << %s >> >>"
            % (box, page_id + 1, fonts)
        )
        content = b"BT /F1 36 Tf 72 600 Td (Page %d of the troubled file) Tj ET" % number
        page_objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (b" ".join(kids), pages if count is None else count),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        *page_objects,
    ]
    path.write_bytes(pdf_from_objects(objects))
    return path


def pdf_make_junk_before_header(path: Path, *, junk: bytes, pages: int = 2) -> Path:
    """A PDF of `pages` pages with `junk` written before its `%PDF-` header (as some mail
    gateways and web servers leave them); its offsets count from the header, as readers do."""
    pdf_make(path, pages=[[f"Page {n} after the junk"] for n in range(1, pages + 1)])
    path.write_bytes(junk + path.read_bytes())
    return path


SCAN_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def pdf_make_scanned(path: Path, *, pages: Sequence[Sequence[str]], dpi: int = 100) -> Path:
    """A PDF of page images with these lines drawn on them, as a scanner makes: no text layer.
    US Letter at `dpi`; the lines in 24-point type."""
    font = ImageFont.truetype(SCAN_FONT, size=round(24 * dpi / 72))
    images = []
    for lines in pages:
        image = Image.new("L", (round(8.5 * dpi), round(11 * dpi)), color=255)
        draw = ImageDraw.Draw(image)
        for index, line in enumerate(lines):
            draw.text((dpi, dpi + index * round(0.6 * dpi)), line, fill=0, font=font)
        images.append(image)
    images[0].save(path, format="PDF", save_all=True, append_images=images[1:], resolution=dpi)
    return path
