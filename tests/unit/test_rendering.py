"""Rendering: golden images, text positions, determinism, fonts, metadata, assembling.

Golden PNGs live in tests/golden/; regenerate them with ``DOCPOST_UPDATE_GOLDEN=1`` (then look at them).
Needs pdftoppm, pdftotext and pdffonts from Debian's poppler-utils (``make debs``).
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageChops
from pypdf import PdfReader

from docpost import model
from docpost.rendering import (
    AddressDoesNotFit,
    AssembleError,
    NoLetterText,
    RenderError,
    address_lines,
    assemble,
    check_print_ready,
    render_letter,
)
from docpost_testbench import samples

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
DPI = 50
MM = 72 / 25.4
REPLY = "Svar via Digital Post: Borgerservice / Enkeltydelser (ref. R-1)"
pytestmark = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils missing: run make debs")

REFERENCE_LETTERS = {
    "citizen": samples.citizen_letter,
    "company": samples.company_letter,
    "long": samples.long_letter,
    "edge": samples.edge_letter,
}


def render(submission: model.Submission, reply: str | None = REPLY, **kw) -> bytes:
    return render_letter(submission, samples.letterhead(), reply, "R-1", samples.CREATED, **kw)


@pytest.fixture(scope="module")
def pdfs() -> dict[str, bytes]:
    return {name: render(make()) for name, make in REFERENCE_LETTERS.items()}


def run(*cmd: str, data: bytes) -> str:
    return subprocess.run([*cmd, "-", "-"], input=data, capture_output=True, check=True).stdout.decode()


def words(pdf: bytes, page: int = 1) -> list[tuple[float, float, float, float, str]]:
    """(xMin, yMin, xMax, yMax, word) in points from the top-left corner, via pdftotext -bbox."""
    html = run("pdftotext", "-bbox", "-f", str(page), "-l", str(page), data=pdf)
    found = re.findall(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', html)
    unescape = lambda s: s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")  # noqa: E731
    return [(float(a), float(b), float(c), float(d), unescape(w)) for a, b, c, d, w in found]


def text(pdf: bytes, page: int | None = None) -> str:
    pages = ["-f", str(page), "-l", str(page)] if page else []
    return run("pdftotext", "-layout", *pages, data=pdf)


def rasterise(pdf: bytes, tmp_path: Path, stem: str) -> list[Path]:
    (tmp_path / f"{stem}.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-gray", "-r", str(DPI), str(tmp_path / f"{stem}.pdf"), str(tmp_path / stem)],
                   check=True)
    return sorted(tmp_path.glob(f"{stem}-*.png"))


def differing_share(a: Path, b: Path) -> float:
    """Share of pixels whose grey level differs by more than 64 of 255 (sizes must match)."""
    one, two = Image.open(a).convert("L"), Image.open(b).convert("L")
    if one.size != two.size:
        return 1.0
    diff = ImageChops.difference(one, two).point(lambda v: 255 if v > 64 else 0)
    return diff.histogram()[255] / (one.size[0] * one.size[1])


# -- golden images -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(REFERENCE_LETTERS))
def test_letter_matches_golden_image(name, pdfs, tmp_path):
    pages = rasterise(pdfs[name], tmp_path, name)
    goldens = sorted(GOLDEN.glob(f"{name}-*.png"))
    if os.environ.get("DOCPOST_UPDATE_GOLDEN") == "1":
        for old in goldens:
            old.unlink()
        GOLDEN.mkdir(exist_ok=True)
        for page in pages:
            shutil.copy(page, GOLDEN / page.name)
        pytest.skip(f"golden images for {name} rewritten")
    assert [p.name for p in pages] == [g.name for g in goldens], "page count differs from the golden letter"
    for page, golden in zip(pages, goldens, strict=True):
        share = differing_share(page, golden)
        assert share < 0.005, f"{page.name} differs from the golden image in {share:.2%} of its pixels"


def test_golden_compare_notices_a_moved_address(pdfs, tmp_path):
    """The tolerance is tight enough to catch a layout change (window moved 10 mm down)."""
    layout = samples_layout_moved()
    moved = rasterise(render(samples.citizen_letter(), layout=layout), tmp_path, "moved")
    assert differing_share(moved[0], GOLDEN / "citizen-1.png") > 0.005


def samples_layout_moved():
    from docpost.rendering import PageLayout, Rect

    return PageLayout(address_field=Rect(left=20, top=55, width=85, height=45))


# -- text and positions --------------------------------------------------------------------------

def test_danish_letters_and_typography_survive(pdfs):
    body = text(pdfs["citizen"])
    assert "Ærtebjerg Østergård Ågesen" in body
    assert "Åboulevarden 12B, 3., tv" in body
    assert "enkeltydelse – “tandbehandling” – på 1.250 €" in body
    assert "Dato: 28. november 2026" in body
    assert "Sagsnr.: 27.12.00-G01-123-26" in body and "Ref.: R-1" in body


def in_window(box, *, left=20.0, top=45.0, width=85.0, height=45.0) -> bool:
    x0, y0, x1, y1 = box
    return x0 >= left * MM and x1 <= (left + width) * MM and y0 >= top * MM and y1 <= (top + height) * MM


@pytest.mark.parametrize("name", ["citizen", "company", "edge"])
def test_address_block_sits_in_the_envelope_window_and_nothing_else(name, pdfs):
    submission = REFERENCE_LETTERS[name]()
    found = words(pdfs[name])
    inside = [w for w in found if in_window(w[:4])]
    expected = " ".join([samples.letterhead().return_line, *address_lines(submission)]).split()
    assert [w[4] for w in inside] == expected
    # the name is the first address line, below the return line, and the post town the last
    name_word = next(w for w in inside if w[4] == submission.manifest.recipient.name.split()[0])
    assert name_word[1] > (45 + 5) * MM
    # nothing else within 2 mm of the window
    near = [w for w in found if w not in inside and w[0] < 107 * MM and w[2] > 18 * MM
            and w[1] < 92 * MM and w[3] > 43 * MM]
    assert near == []


def test_company_letter_has_att_line_and_citizen_letter_not():
    company = address_lines(samples.company_letter())
    assert company[:2] == ["Smørrebrød & Co. ApS", "Att.: Bogholderiet / Økonomi"]
    citizen = dataclasses.replace(samples.citizen_letter(), attention=model.Attention(person_label="X"))
    assert not any(line.startswith("Att.") for line in address_lines(citizen))


def test_page_numbers_on_every_page(pdfs):
    assert len(PdfReader(io.BytesIO(pdfs["long"])).pages) == 3
    for page in (1, 2, 3):
        assert f"Side {page} af 3" in text(pdfs["long"], page)
    assert "Side 1 af 1" in text(pdfs["citizen"])


def test_two_page_letter_says_side_1_af_2():
    submission = samples.long_letter(pages=2)
    pdf = render(submission)
    assert len(PdfReader(io.BytesIO(pdf)).pages) == 2
    assert "Side 1 af 2" in text(pdf, 1) and "Side 2 af 2" in text(pdf, 2)


def test_reply_line_in_footer_and_absent_for_ikke_muligt(pdfs):
    footer = [w for w in words(pdfs["citizen"]) if w[1] > 297 * MM - 20 * MM]
    assert " ".join(w[4] for w in footer).startswith(REPLY)
    no_reply = render(samples.citizen_letter(), reply=None)
    assert "Svar via" not in text(no_reply)
    assert "Side 1 af 1" in text(no_reply)


def test_user_text_cannot_inject_markup(pdfs):
    body = text(pdfs["edge"])
    assert "Titel med <b>markup</b> & “citat”" in body
    assert "<b>Dette er ikke fed</b> & <font color='red'>ikke rød</font> &amp; <br/> &#169;" in body
    assert "<i>kursiv?</i>" in body


def test_long_words_wrap_inside_the_right_margin(pdfs):
    for w in words(pdfs["edge"]):
        assert w[2] <= (210 - 20) * MM + 1, w[4]


def test_rendered_letters_pass_the_print_check(pdfs):
    for name, pdf in pdfs.items():
        assert check_print_ready(pdf) == [], name


# -- determinism, fonts, metadata ------------------------------------------------------------------

def test_same_input_renders_identical_bytes_also_in_a_fresh_process(pdfs, tmp_path):
    assert render(samples.company_letter()) == pdfs["company"]
    script = (
        "import sys; from docpost.rendering import render_letter; from docpost_testbench import samples; "
        f"sys.stdout.buffer.write(render_letter(samples.company_letter(), samples.letterhead(), {REPLY!r}, "
        "'R-1', samples.CREATED))"
    )
    fresh = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True).stdout
    assert fresh == pdfs["company"]


def test_a_letter_renders_the_same_bytes_whatever_the_process_rendered_before(tmp_path):
    """Fonts, logo and parsed paragraphs are prepared once per process: what a letter becomes
    must not depend on the letters before it (first in a fresh process, or after many others)."""
    from reportlab import rl_config

    logo = tmp_path / "logo.png"
    Image.new("RGB", (240, 80), (0, 70, 140)).save(logo)
    script = (
        "import sys; from docpost.rendering import render_letter; from docpost_testbench import samples; "
        f"sys.stdout.buffer.write(render_letter(samples.generated_letter(7), samples.letterhead({str(logo)!r}), "
        f"{REPLY!r}, 'R-7', samples.CREATED))"
    )
    fresh = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True).stdout
    a85 = rl_config.useA85
    for n in range(30):  # other letters first: other glyphs, subsets, paragraphs, with and without a logo
        head = samples.letterhead(str(logo) if n % 2 else None)
        render_letter(samples.generated_letter(100 + n), head, REPLY, f"R-{n}", samples.CREATED)
    render(samples.edge_letter())
    after = render_letter(samples.generated_letter(7), samples.letterhead(str(logo)), REPLY, "R-7", samples.CREATED)
    assert after == fresh
    assert rl_config.useA85 == a85  # no global switch flipped per letter
    for page in PdfReader(io.BytesIO(after)).pages:  # page streams: binary Flate, no ASCII85 layer
        assert page["/Contents"].get_object()["/Filter"] in ("/FlateDecode", ["/FlateDecode"])


def test_a_changed_logo_file_is_read_again(tmp_path):
    logo = tmp_path / "logo.png"
    Image.new("RGB", (240, 80), (0, 70, 140)).save(logo)
    first = render_letter(samples.citizen_letter(), samples.letterhead(str(logo)), REPLY, "R-1", samples.CREATED)
    Image.new("RGB", (240, 80), (200, 30, 30)).save(logo)
    os.utime(logo, ns=(logo.stat().st_atime_ns, logo.stat().st_mtime_ns + 1_000_000_000))
    second = render_letter(samples.citizen_letter(), samples.letterhead(str(logo)), REPLY, "R-1", samples.CREATED)
    assert first != second


@pytest.mark.parametrize("other_first", [True, False])
def test_prepared_fonts_stay_docposts_beside_other_dejavu_fonts(other_first, pdfs):
    """reportlab's registerFont makes a second name for a face an alias of the first font: docpost's
    prepared fonts must neither become aliases of another DejaVu Sans font (registered before them,
    as the rendering benchmark's floor does) nor turn later ones into aliases of theirs."""
    script = f"""
import sys
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from docpost.rendering import render_letter
from docpost.rendering.fonts import BOLD, FONT_DIR, REGULAR, PreparedTTFont
from docpost_testbench import samples

dejavu = str(FONT_DIR / "DejaVuSans.ttf")
if {other_first!r}:
    pdfmetrics.registerFont(TTFont("OtherSans", dejavu))
pdf = render_letter(samples.company_letter(), samples.letterhead(), {REPLY!r}, "R-1", samples.CREATED)
pdfmetrics.registerFont(TTFont("LaterSans", dejavu))
assert all(isinstance(pdfmetrics.getFont(name), PreparedTTFont) for name in (REGULAR, BOLD))
assert not isinstance(pdfmetrics.getFont("LaterSans"), PreparedTTFont)
sys.stdout.buffer.write(pdf)
"""
    fresh = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True).stdout
    assert fresh == pdfs["company"]


def test_plain_paragraphs_get_the_fragments_reportlabs_parser_makes():
    """Plain text skips reportlab's markup parser: its text and fragment must be the parser's."""
    from reportlab.platypus import Paragraph

    from docpost.rendering.fonts import register_fonts
    from docpost.rendering.letter import _paragraph, _styles, markup

    for style in _styles(*register_fonts()).values():
        for text in ("Hej", "  to  mellemrum\tog tab ", "a\xa0b  c", "x\u2003y", "ÆØÅ “citat” – €", "Erdős", " "):
            ours, theirs = _paragraph(markup(text), style), Paragraph(markup(text), style)
            assert ours.text == theirs.text and ours.style is theirs.style
            assert [f.__dict__ for f in ours.frags] == [f.__dict__ for f in theirs.frags], (style.name, text)


def test_created_and_reference_change_the_bytes(pdfs):
    import datetime as dt

    later = render_letter(samples.company_letter(), samples.letterhead(), REPLY, "R-1",
                          samples.CREATED + dt.timedelta(days=1))
    assert later != pdfs["company"]
    assert PdfReader(io.BytesIO(later)).metadata["/CreationDate"].startswith("D:20261129160000")


def test_every_font_is_embedded(pdfs, tmp_path):
    for name, pdf in pdfs.items():
        (tmp_path / "f.pdf").write_bytes(pdf)
        out = subprocess.run(["pdffonts", str(tmp_path / "f.pdf")], capture_output=True, check=True, text=True)
        rows = out.stdout.splitlines()[2:]
        assert rows, name
        for row in rows:
            cols = row.split()
            assert "DejaVuSans" in cols[0], row
            assert cols[-5] == "yes", f"{name}: font not embedded: {row}"


def test_metadata_language_and_xmp(pdfs):
    reader = PdfReader(io.BytesIO(pdfs["edge"]))
    meta = reader.metadata
    assert meta.title == "Titel med <b>markup</b> & “citat”"
    assert meta.author == "Søby Kommune"
    assert "docpost-ref:R-1" in meta["/Keywords"]
    assert meta["/CreationDate"].startswith("D:20261128160000")
    root = reader.trailer["/Root"]
    assert root["/Lang"] == "da"
    xmp = root["/Metadata"].get_object().get_data().decode()
    assert "<pdfaid:part>2</pdfaid:part>" in xmp and "<pdfaid:conformance>B</pdfaid:conformance>" in xmp
    assert "Titel med &lt;b&gt;markup&lt;/b&gt; &amp; “citat”" in xmp
    assert "<xmp:CreateDate>2026-11-28T16:00:00+00:00</xmp:CreateDate>" in xmp
    intent = root["/OutputIntents"][0].get_object()
    assert intent["/S"] == "/GTS_PDFA1"
    assert intent["/DestOutputProfile"].get_object().get_data()[36:40] == b"acsp"
    assert reader.trailer["/ID"][0] == reader.trailer["/ID"][1]


def test_personal_data_stays_out_of_metadata(pdfs):
    reader = PdfReader(io.BytesIO(pdfs["citizen"]))
    blob = " ".join(str(v) for v in reader.metadata.values())
    assert "0101904321" not in blob and "Ærtebjerg" not in blob


def test_logo_is_drawn_in_the_letterhead_outside_the_window(tmp_path):
    logo = tmp_path / "logo.png"
    Image.new("RGB", (300, 90), (0, 70, 140)).save(logo)
    pdf = render_letter(samples.citizen_letter(), samples.letterhead(str(logo)), REPLY, "R-1", samples.CREATED)
    page = PdfReader(io.BytesIO(pdf)).pages[0]
    assert len(page.images) == 1
    assert check_print_ready(pdf) == []
    png = rasterise(pdf, tmp_path, "logo")[0]
    with Image.open(png) as img:  # the logo's area (25-85 mm x 20-34 mm from the top) is dark now
        x, y = round(40 / 25.4 * DPI), round(27 / 25.4 * DPI)
        assert img.convert("L").getpixel((x, y)) < 128
    with pytest.raises(RenderError) as err:
        render_letter(samples.citizen_letter(), samples.letterhead(str(tmp_path / "missing.png")), REPLY, "R-1",
                      samples.CREATED)
    assert err.value.code == "render.logo-unreadable"
    assert "logo cannot be read" in str(err.value)


# -- errors ------------------------------------------------------------------------------------------

def test_submission_without_letter_text_is_refused():
    with pytest.raises(NoLetterText) as err:
        render(dataclasses.replace(samples.citizen_letter(), letter=None))
    assert err.value.code == "render.no-letter"


def test_address_too_long_for_the_window_is_refused_without_personal_data():
    sub = samples.citizen_letter()
    address = dataclasses.replace(sub.manifest.recipient.address, co_name="Plejecenter Solbakken afdeling " * 6,
                                  mail_delivery_sublocation="Nørre Søby " * 8, post_office_box="1234")
    recipient = dataclasses.replace(sub.manifest.recipient, address=address)
    sub = dataclasses.replace(sub, manifest=dataclasses.replace(sub.manifest, recipient=recipient))
    with pytest.raises(AddressDoesNotFit) as err:
        render(sub)
    assert isinstance(err.value, RenderError) and err.value.code == "render.address-too-long"
    assert "Ærtebjerg" not in str(err.value) and "Solbakken" not in str(err.value)
    assert str(err.value).startswith("[render.address-too-long] The recipient address has 13 lines and does not fit")


# -- assembling ----------------------------------------------------------------------------------

def test_assemble_appends_attachments_in_order_deterministically(pdfs):
    joined = assemble(pdfs["citizen"], [pdfs["long"], pdfs["company"]])
    reader = PdfReader(io.BytesIO(joined))
    assert len(reader.pages) == 1 + 3 + 1
    assert "Afgørelse om enkeltydelse" in reader.pages[0].extract_text()
    assert "Rykker for betaling" in reader.pages[4].extract_text()
    assert reader.metadata.title == "Afgørelse om enkeltydelse"
    assert assemble(pdfs["citizen"], [pdfs["long"], pdfs["company"]]) == joined
    assert assemble(pdfs["citizen"], [pdfs["company"], pdfs["long"]]) != joined
    assert assemble(pdfs["citizen"], []) == pdfs["citizen"]


def test_assemble_refuses_an_unreadable_attachment(pdfs):
    with pytest.raises(AssembleError) as err:
        assemble(pdfs["citizen"], [b"%PDF-1.4 this is not a pdf"])
    assert err.value.code == "render.unreadable-pdf" and "attachment 1" in str(err.value).lower()
