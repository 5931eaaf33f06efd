"""Print-readiness of supplied PDFs: one PDF per broken rule (drawn with reportlab here), and good ones."""

from __future__ import annotations

import io

import pytest
from reportlab.lib.pagesizes import A4, landscape, letter
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from docpost.rendering import (
    NotPrintReady,
    PageLayout,
    PrintIssue,
    Rect,
    RenderError,
    check_print_ready,
    render_letter,
)
from docpost.rendering.printready import ensure_print_ready
from docpost_testbench import samples

W, H = A4


def top(y_mm: float) -> float:
    """A y coordinate given in millimetres from the top edge."""
    return H - y_mm * mm


def letter_page(c: Canvas, *, address: bool = True) -> None:
    """A well-behaved page 1: address in the window, body text inside the margins."""
    if address:
        c.setFont("Helvetica", 10)
        for i, line in enumerate(("Jens Hansen", "Skolegade 3", "8999 Søby")):
            c.drawString(25 * mm, top(55 + i * 4.5), line)
    c.setFont("Helvetica", 10)
    c.drawString(25 * mm, top(110), "Kære Jens Hansen, her er dit brev.")
    c.drawString(25 * mm, top(280), "Side 1")


def make_pdf(draw, pagesize=A4, pages: int = 1) -> bytes:
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=pagesize, invariant=1)
    for number in range(pages):
        draw(c, number)
        c.showPage()
    c.save()
    return buf.getvalue()


def codes(issues: list[PrintIssue]) -> list[str]:
    return sorted({i.code for i in issues})


def good(c: Canvas, number: int) -> None:
    if number == 0:
        letter_page(c)
    else:
        c.setFont("Helvetica", 10)
        c.drawString(25 * mm, top(30), f"Side {number + 1}")


def test_a_good_supplied_pdf_passes():
    assert check_print_ready(make_pdf(good, pages=3)) == []
    ensure_print_ready(make_pdf(good))


def test_docposts_own_letters_pass():
    pdf = render_letter(samples.long_letter(), samples.letterhead(), "Svar via Digital Post: X / Y", "R",
                        samples.CREATED)
    assert check_print_ready(pdf) == []


def test_white_page_background_and_clipped_content_do_not_count():
    def draw(c, number):
        c.setFillColorRGB(1, 1, 1)
        c.rect(0, 0, W, H, stroke=0, fill=1)  # a white background over the whole sheet
        c.setFillColorRGB(0, 0, 0)
        c.saveState()
        p = c.beginPath()
        p.rect(30 * mm, top(200), 100 * mm, 50 * mm)
        c.clipPath(p, stroke=0)
        c.rect(0, 0, W, H, stroke=0, fill=1)  # black, but clipped to a box well inside the margins
        c.restoreState()
        letter_page(c)
    assert check_print_ready(make_pdf(draw)) == []


def test_us_letter_size_is_not_a4():
    issues = check_print_ready(make_pdf(good, pagesize=letter))
    assert codes(issues) == ["print.not-a4"]
    assert "216 x 279 mm" in issues[0].message and "A4" in issues[0].message and issues[0].page == 1


def test_landscape_a4_is_refused():
    issues = check_print_ready(make_pdf(good, pagesize=landscape(A4)))
    assert codes(issues) == ["print.landscape"]


def test_rotated_landscape_page_shown_as_portrait_is_checked_as_portrait():
    from pypdf import PdfReader, PdfWriter

    def draw(c, number):  # drawn on a landscape sheet so that it reads upright after /Rotate 90
        c.translate(H, 0)
        c.rotate(90)
        letter_page(c)
    reader = PdfReader(io.BytesIO(make_pdf(draw, pagesize=landscape(A4))))
    writer = PdfWriter()
    writer.add_page(reader.pages[0]).rotate(90)
    out = io.BytesIO()
    writer.write(out)
    assert check_print_ready(out.getvalue()) == []


def test_too_many_pages():
    issues = check_print_ready(make_pdf(good, pages=11))
    assert codes(issues) == ["print.too-many-pages"]
    assert "11 pages" in issues[0].message and "10" in issues[0].message
    assert check_print_ready(make_pdf(good, pages=11), max_pages=12) == []
    assert codes(check_print_ready(make_pdf(good, pages=3), max_pages=2)) == ["print.too-many-pages"]


def test_text_crossing_the_window_edge():
    def draw(c, number):
        letter_page(c)
        c.drawString(60 * mm, top(88), "Denne tekst løber ud over vinduets højre kant og videre")
    issues = check_print_ready(make_pdf(draw))
    assert codes(issues) == ["print.content-in-address-window"]
    assert "85 x 45 mm" in issues[0].message


def test_text_just_outside_the_window_is_too_close():
    def draw(c, number):
        letter_page(c)
        c.drawString(25 * mm, top(91), "lige under vinduet")  # baseline 1 mm below the window, ascenders inside
    assert codes(check_print_ready(make_pdf(draw))) == ["print.content-in-address-window"]


def test_image_or_drawing_in_the_window():
    def draw(c, number):
        letter_page(c)
        c.rect(80 * mm, top(85), 20 * mm, 10 * mm, stroke=1, fill=0)  # e.g. a QR code box
    issues = check_print_ready(make_pdf(draw))
    assert codes(issues) == ["print.content-in-address-window"]
    assert "image or a drawing" in issues[0].message


def test_content_moved_into_the_window_by_a_form_xobject_is_found():
    def draw(c, number):
        letter_page(c)
        if not c.hasForm("stamp"):
            c.beginForm("stamp")
            c.rect(0, 0, 10 * mm, 10 * mm, fill=1)
            c.endForm()
        c.saveState()
        c.translate(70 * mm, top(80))
        c.doForm("stamp")
        c.restoreState()
    assert codes(check_print_ready(make_pdf(draw))) == ["print.content-in-address-window"]


def test_empty_window_means_no_address():
    issues = check_print_ready(make_pdf(lambda c, n: letter_page(c, address=False)))
    assert codes(issues) == ["print.no-address"]


def test_text_in_the_margin():
    def draw(c, number):
        letter_page(c)
        if number == 1:
            c.drawRightString(W - 2 * mm, top(150), "helt ude ved kanten")
    issues = check_print_ready(make_pdf(draw, pages=2))
    assert codes(issues) == ["print.margin"]
    assert issues[0].page == 2 and "5 mm" in issues[0].message


def test_line_at_the_bottom_edge_is_in_the_margin():
    def draw(c, number):
        letter_page(c)
        c.line(30 * mm, 3 * mm, 150 * mm, 3 * mm)
    assert codes(check_print_ready(make_pdf(draw))) == ["print.margin"]


def test_content_in_the_omr_zone():
    def draw(c, number):
        letter_page(c)
        c.drawString(7 * mm, top(150), "x")  # inside the margin rule, in the barcode strip
    assert codes(check_print_ready(make_pdf(draw))) == ["print.omr-zone"]
    no_omr = PageLayout(omr_zone=None)
    assert check_print_ready(make_pdf(draw), layout=no_omr) == []


def test_window_geometry_is_configurable():
    pdf = make_pdf(lambda c, n: letter_page(c))
    right_window = PageLayout(address_field=Rect(left=110, top=45, width=85, height=45))
    assert codes(check_print_ready(pdf, layout=right_window)) == ["print.no-address"]


@pytest.mark.parametrize("data, code", [
    (b"not a pdf at all", "print.unreadable"),
    (b"", "print.unreadable"),
])
def test_unreadable_input(data, code):
    assert codes(check_print_ready(data)) == [code]


def test_every_broken_rule_is_reported_and_raised_together():
    def draw(c, number):
        letter_page(c, address=False)
        c.drawString(1 * mm, top(150), "kant")
    pdf = make_pdf(draw, pages=12)
    with pytest.raises(NotPrintReady) as err:
        ensure_print_ready(pdf)
    found = codes(err.value.issues)
    assert found == ["print.margin", "print.no-address", "print.omr-zone", "print.too-many-pages"]
    assert isinstance(err.value, RenderError) and err.value.code == "print.not-ready"
    assert all(code in str(err.value) for code in found)
