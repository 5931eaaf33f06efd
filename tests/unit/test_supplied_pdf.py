"""Supplied main PDFs: the print check only where paper is possible, and the address cover page.

Real PDFs: the byggesag example's supplied PDF (content in its envelope window), and PDFs drawn with
reportlab here. Page texts and positions are read back with pypdf.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest
from pypdf import PdfReader
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from docpost import stamping, validation
from docpost.model import ChannelWish
from docpost.rendering import (
    NotPrintReady,
    PageLayout,
    RenderError,
    check_print_ready,
    check_supplied,
    printed_copy,
    render_letter,
)
from docpost.rendering.supplied import COVER_NOTE, window_issues
from docpost_testbench import samples

ROOT = Path(__file__).resolve().parents[2]
BYG = ROOT / "examples/inbox/byggesag/2026-01-15/byg-000002"
W, H = A4
WINDOW = "print.content-in-address-window"


# --------------------------------------------------------------------------- helpers


def top(y_mm: float) -> float:
    return H - y_mm * mm


def make_pdf(draw, pages: int = 1) -> bytes:
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=A4, invariant=1)
    for number in range(pages):
        draw(c, number)
        c.showPage()
    c.save()
    return buf.getvalue()


def clean(c: Canvas, number: int) -> None:
    """A print-ready page: on page 1 an address in the window, body text inside the margins."""
    c.setFont("Helvetica", 10)
    if number == 0:
        for i, line in enumerate(("Modtager A/S", "Skolegade 3", "8999 Søby")):
            c.drawString(25 * mm, top(55 + i * 4.5), line)
        c.drawString(25 * mm, top(110), "Brevets første side.")
    else:
        c.drawString(25 * mm, top(30), f"Side {number + 1}")


def through_window(c: Canvas, number: int) -> None:
    """Page 1 has a line of text running through the envelope window and out over its right edge."""
    clean(c, number)
    if number == 0:
        c.drawString(30 * mm, top(70), "Denne tekst løber gennem vinduet og ud over dets højre kant, videre")


def blank_window(c: Canvas, number: int) -> None:
    """Page 1 leaves the window empty: no address for the envelope."""
    c.setFont("Helvetica", 10)
    c.drawString(25 * mm, top(110 if number == 0 else 30), f"Tekst side {number + 1}")


def pages(pdf: bytes) -> list:
    return list(PdfReader(io.BytesIO(pdf)).pages)


def page_text(pdf: bytes, index: int) -> str:
    return pages(pdf)[index].extract_text()


def placed_lines(pdf: bytes, index: int = 0) -> dict[str, tuple[float, float]]:
    """Each text line on a page -> its start point (x, y) in points, origin bottom-left."""
    out: dict[str, tuple[float, float]] = {}

    def visit(text, cm, tm, font, size):
        if text.strip():
            x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
            y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
            out.setdefault(text.strip(), (round(x, 2), round(y, 2)))

    pages(pdf)[index].extract_text(visitor_text=visit)
    return out


def codes(issues) -> list[str]:
    return sorted({i.code for i in issues})


@pytest.fixture(scope="module")
def byg():
    """The byggesag example as the pipeline sees it: validated, stamped with the project's profiles."""
    report = validation.validate(validation.LocalSubmission(BYG))
    assert report.valid, report.codes
    submission = report.submission
    letterhead = stamping.stamp(submission, stamping.load_profiles()).letterhead
    main = submission.documents[submission.manifest.main_file.name]
    attachments = [submission.documents[f.name] for f in submission.manifest.attachments]
    return submission, letterhead, main, attachments


def as_printable(submission, wish=ChannelWish.PHYSICAL):
    return dataclasses.replace(submission, manifest=dataclasses.replace(submission.manifest, channel_wish=wish))


# --------------------------------------------------------------------------- check_supplied


def test_byg_example_is_not_rejected_as_a_digital_letter(byg):
    submission, _, main, _ = byg
    assert submission.manifest.channel_wish is ChannelWish.DIGITAL
    assert WINDOW in codes(check_print_ready(main))  # what rejected it before
    assert check_supplied(main, submission.manifest.channel_wish) == []
    assert check_supplied(main, ChannelWish.DIGITAL, window_policy="reject") == []


def test_byg_example_as_a_printable_letter(byg):
    _, _, main, _ = byg
    for wish in (ChannelWish.AUTO, ChannelWish.PHYSICAL, "physical"):
        assert check_supplied(main, wish) == []  # the cover page takes care of the window
        assert codes(check_supplied(main, wish, window_policy="reject")) == [WINDOW]


def test_text_through_the_window_is_refused_under_reject():
    pdf = make_pdf(through_window, pages=2)
    issues = check_supplied(pdf, ChannelWish.PHYSICAL, window_policy="reject")
    assert codes(issues) == [WINDOW] and issues[0].page == 1
    assert codes(check_supplied(pdf, ChannelWish.AUTO, window_policy="reject")) == [WINDOW]
    assert check_supplied(pdf, ChannelWish.PHYSICAL) == []  # default policy: cover
    assert check_supplied(pdf, ChannelWish.DIGITAL, window_policy="reject") == []


def test_other_print_issues_still_block_a_printable_letter():
    def margin(c, number):
        through_window(c, number)
        c.drawString(1 * mm, top(150), "helt ude ved kanten")
    pdf = make_pdf(margin)
    assert codes(check_supplied(pdf, ChannelWish.AUTO)) == ["print.margin", "print.omr-zone"]
    assert codes(check_supplied(pdf, ChannelWish.AUTO, window_policy="reject")) == [
        WINDOW, "print.margin", "print.omr-zone"]
    assert check_supplied(pdf, ChannelWish.DIGITAL) == []


def test_no_address_in_the_window_gets_a_cover_unless_reject():
    pdf = make_pdf(blank_window)
    assert check_supplied(pdf, ChannelWish.PHYSICAL) == []
    assert codes(check_supplied(pdf, ChannelWish.PHYSICAL, window_policy="reject")) == ["print.no-address"]


def test_the_cover_page_counts_towards_the_page_limit():
    layout = PageLayout()
    full = make_pdf(through_window, pages=layout.max_pages)
    issues = check_supplied(full, ChannelWish.PHYSICAL)
    assert codes(issues) == ["print.too-many-pages"]
    assert f"{layout.max_pages + 1} pages" in issues[0].message
    assert check_supplied(make_pdf(clean, pages=layout.max_pages), ChannelWish.PHYSICAL) == []  # no cover needed
    assert check_supplied(make_pdf(through_window, pages=layout.max_pages - 1), ChannelWish.PHYSICAL) == []


def test_unknown_window_policy_is_an_error():
    with pytest.raises(ValueError):
        check_supplied(make_pdf(clean), ChannelWish.PHYSICAL, window_policy="ignore")


# --------------------------------------------------------------------------- printed_copy


def test_byg_example_printed_copy_has_an_address_cover(byg):
    submission, letterhead, main, attachments = byg
    printed = printed_copy(as_printable(submission), letterhead, main, attachments)
    n_main, n_att = len(pages(main)), sum(len(pages(a)) for a in attachments)
    assert len(pages(printed)) == 1 + n_main + n_att
    assert check_print_ready(printed) == []

    cover = page_text(printed, 0)
    lines = [line.strip() for line in cover.splitlines() if line.strip()]
    assert lines[:2] == ["Søby Kommune", "Søby Kommune, Rådhustorvet 1, 4990 Søby"]  # letterhead, return line
    assert lines[2:8] == ["Bøgh & Kjær Byg ApS", "Att.: Jørgen Bøgh / Byggeafdelingen", "c/o Ålykke Administration",
                          "Præstegårdsvej 7", "Ålykkegård", "5960 Marstal"]
    assert "Byggetilladelse til tilbygning, Præstegårdsvej 7" in lines
    assert COVER_NOTE in lines
    # then the supplied PDF's pages, untouched, then the attachment's
    assert page_text(printed, 1) == page_text(main, 0)
    assert page_text(printed, n_main) == page_text(main, n_main - 1)
    assert page_text(printed, 1 + n_main) == page_text(attachments[0], 0)
    # deterministic
    assert printed_copy(as_printable(submission), letterhead, main, attachments) == printed


def test_cover_address_sits_exactly_where_rendered_letters_put_it(byg):
    submission, letterhead, main, _ = byg
    printed = printed_copy(submission, letterhead, main, [])
    as_letter = dataclasses.replace(submission, letter=samples.citizen_letter().letter)
    rendered = render_letter(as_letter, letterhead, None, "R-1", samples.CREATED)
    on_cover, on_letter = placed_lines(printed), placed_lines(rendered)
    window_lines = ["Søby Kommune, Rådhustorvet 1, 4990 Søby", "Bøgh & Kjær Byg ApS",
                    "Att.: Jørgen Bøgh / Byggeafdelingen", "c/o Ålykke Administration", "Præstegårdsvej 7",
                    "Ålykkegård", "5960 Marstal"]
    for line in window_lines + ["Søby Kommune"]:
        assert on_cover[line] == on_letter[line], line
    field = PageLayout().address_field
    x0, y0, x1, y1 = field.to_pdf()
    for line in window_lines:
        x, y = on_cover[line]
        assert x0 < x < x1 and y0 < y < y1, line


def test_text_through_the_window_gets_a_cover_or_is_refused():
    submission = samples.company_letter()
    letterhead = samples.letterhead()
    main = make_pdf(through_window, pages=2)
    attachment = make_pdf(clean, pages=3)
    assert window_issues(main)
    printed = printed_copy(submission, letterhead, main, [attachment])
    assert len(pages(printed)) == 1 + 2 + 3
    assert check_print_ready(printed) == []
    assert "Smørrebrød & Co. ApS" in page_text(printed, 0) and "Rykker for betaling" in page_text(printed, 0)
    assert page_text(printed, 1) == page_text(main, 0)
    with pytest.raises(NotPrintReady) as caught:
        printed_copy(submission, letterhead, main, [attachment], window_policy="reject")
    assert [i.code for i in caught.value.issues] == [WINDOW]
    assert "Smørrebrød" not in str(caught.value) and "Industrivej" not in str(caught.value)


def test_no_address_in_the_window_gets_a_cover():
    main = make_pdf(blank_window)
    printed = printed_copy(samples.citizen_letter(), samples.letterhead(), main, [])
    assert len(pages(printed)) == 2
    assert check_print_ready(printed) == []
    assert "Ærtebjerg Østergård Ågesen" in page_text(printed, 0)


def test_a_clean_printable_pdf_gets_no_cover():
    main = make_pdf(clean, pages=2)
    attachment = make_pdf(clean, pages=1)
    assert check_supplied(main, ChannelWish.PHYSICAL, window_policy="reject") == []
    printed = printed_copy(samples.company_letter(), samples.letterhead(), main, [attachment])
    assert len(pages(printed)) == 2 + 1
    assert page_text(printed, 0) == page_text(main, 0)
    assert "Smørrebrød" not in page_text(printed, 0)
    assert check_print_ready(printed) == []
    assert printed_copy(samples.company_letter(), samples.letterhead(), main, []) == main  # unchanged


def test_a_rendered_letter_never_gets_a_cover():
    letter = render_letter(samples.company_letter(), samples.letterhead(), None, "R-1", samples.CREATED)
    printed = printed_copy(samples.company_letter(), samples.letterhead(), letter, [make_pdf(clean)])
    assert len(pages(printed)) == len(pages(letter)) + 1
    assert page_text(printed, 0) == page_text(letter, 0)


def test_cover_without_a_postal_address_fails_without_personal_data():
    submission = samples.company_letter()
    recipient = dataclasses.replace(submission.manifest.recipient, address=None)
    submission = dataclasses.replace(submission, manifest=dataclasses.replace(submission.manifest,
                                                                              recipient=recipient))
    with pytest.raises(RenderError) as caught:
        printed_copy(submission, samples.letterhead(), make_pdf(through_window), [])
    assert caught.value.code == "render.address-missing"
    assert "Smørrebrød" not in str(caught.value) and "12345678" not in str(caught.value)
    # a clean PDF needs no cover, so no address is needed either
    assert printed_copy(submission, samples.letterhead(), make_pdf(clean), []) == make_pdf(clean)
