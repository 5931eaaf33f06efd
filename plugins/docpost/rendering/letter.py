"""Render a structured letter (``model.Letter``) to a print-ready, deterministic A4 PDF."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from functools import cache, cached_property
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase.pdfdoc import PDFStream, PDFZCompress
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Frame,
    KeepTogether,
    ListFlowable,
    ListItem,
    NextPageTemplate,
    PageTemplate,
    Spacer,
    Table,
    TableStyle,
)
from reportlab.platypus import Paragraph as RLParagraph
from reportlab.platypus.paragraph import cleanBlockQuotedText
from reportlab.platypus.paraparser import ParaFrag
from reportlab.rl_config import _FUZZ

from docpost import model
from docpost.rendering import pdfa
from docpost.rendering.errors import AddressDoesNotFit, NoLetterText
from docpost.rendering.fonts import register_fonts
from docpost.rendering.layout import PAGE_HEIGHT, PAGE_WIDTH, PageLayout
from docpost.rendering.logo import draw_logo, prepared_logo

MONTHS_DA = (
    "januar", "februar", "marts", "april", "maj", "juni",
    "juli", "august", "september", "oktober", "november", "december",
)
DOCUMENT_TYPES_DA = {
    "afgoerelse": "Afgørelse",
    "partshoering": "Partshøring",
    "indkaldelse": "Indkaldelse",
    "orientering": "Orientering",
    "opkraevning": "Opkrævning",
    "rykker": "Rykker",
    "kvittering": "Kvittering",
    "bevilling": "Bevilling",
}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

BODY_SIZE, BODY_LEADING = 10.0, 14.0
INFO_SIZE, INFO_LEADING = 8.0, 10.5
ADDRESS_SIZE, ADDRESS_LEADING_MM = 10.0, 4.5
RETURN_SIZE = 6.5
FOOTER_SIZE = 7.5


def danish_date(day: dt.date) -> str:
    """``28. november 2026``."""
    return f"{day.day}. {MONTHS_DA[day.month - 1]} {day.year}"


def markup(text: str) -> str:
    """User text as reportlab Paragraph markup: every ``<``, ``>``, ``&`` printed literally."""
    return escape(_CONTROL.sub("", text)).replace("\n", "<br/>")


def plain(text: str) -> str:
    """User text for direct canvas drawing (no markup is interpreted there); control chars removed."""
    return _CONTROL.sub("", text).replace("\n", " ")


def _top(y_mm: float) -> float:
    """A y coordinate in points for ``y_mm`` millimetres from the page's top edge."""
    return PAGE_HEIGHT - y_mm * mm


def address_lines(submission: model.Submission) -> list[str]:
    """The recipient block printed in the window: name, Att. line (companies), postal address."""
    recipient = submission.manifest.recipient
    lines = [recipient.name]
    attention = submission.attention.line if submission.attention else None
    if attention and recipient.id_type is model.IdType.CVR:
        lines.append(f"Att.: {attention}")
    if recipient.address is not None:
        lines.extend(recipient.address.lines())
    return [plain(line) for line in lines]


class _Paragraph(RLParagraph):
    """reportlab's ``Paragraph``, not broken into lines again for the width it was last broken for
    (platypus wraps it again to place what it kept with a heading, to draw a list, on the next page)."""

    def wrap(self, availWidth, availHeight):  # noqa: N803 (reportlab's names)
        last = self.__dict__.get("_wrapped")
        if last is not None and last[0] == availWidth and last[1] is self.__dict__.get("blPara"):
            self.width, self.height = last[2]
            return last[2]
        size = super().wrap(availWidth, availHeight)
        if availWidth >= _FUZZ:  # reportlab broke the lines (below that, it found no room at all)
            self._wrapped = (availWidth, self.blPara, size)
        return size


_PARSED: dict[tuple[str, str], tuple[str, list]] = {}  # markup, style name -> cleaned text, fragments
PARSED_KEPT = 20_000


@cache
def _fragment(style: ParagraphStyle) -> ParaFrag:
    """The one fragment reportlab's parser makes of a plain text in ``style`` (its text aside)."""
    return RLParagraph("x", style).frags[0]


def _paragraph(text: str, style: ParagraphStyle) -> _Paragraph:
    """``Paragraph(text, style)``: plain text (no tag, no entity) as the style's one fragment without
    reportlab's markup parser; other markup parsed once per process (letters repeat their signature).
    reportlab reads the fragments and never changes them."""
    if "<" not in text and "&" not in text:
        cleaned = cleanBlockQuotedText(text)
        if cleaned:
            return _Paragraph(cleaned, style, frags=[_fragment(style).clone(text=cleaned)])
    key = (text, style.name)
    parsed = _PARSED.get(key)
    if parsed is None:
        para = _Paragraph(text, style)
        if len(_PARSED) >= PARSED_KEPT:
            _PARSED.clear()
        _PARSED[key] = (para.text, para.frags)
        return para
    return _Paragraph(parsed[0], style, frags=list(parsed[1]))


@cache
def _styles(regular: str, bold: str) -> dict[str, ParagraphStyle]:
    """The paragraph styles, made once per process (reportlab never changes a style it is given)."""
    base = ParagraphStyle(
        "body", fontName=regular, fontSize=BODY_SIZE, leading=BODY_LEADING, alignment=TA_LEFT,
        spaceAfter=6, splitLongWords=1, allowWidows=0, allowOrphans=0,
    )
    return {
        "body": base,
        "title": ParagraphStyle("title", parent=base, fontName=bold, fontSize=12.5, leading=16, spaceAfter=10),
        "h1": ParagraphStyle("h1", parent=base, fontName=bold, fontSize=11, leading=15, spaceBefore=6, spaceAfter=4,
                             keepWithNext=1),
        "h2": ParagraphStyle("h2", parent=base, fontName=bold, fontSize=10, leading=14, spaceBefore=4, spaceAfter=2,
                             keepWithNext=1),
        "item": ParagraphStyle("item", parent=base, spaceAfter=2),
        "cell": ParagraphStyle("cell", parent=base, fontSize=9, leading=12, spaceAfter=0),
        "cellhead": ParagraphStyle("cellhead", parent=base, fontName=bold, fontSize=9, leading=12, spaceAfter=0),
    }


def _story(letter: model.Letter, title: str, width: float, st: dict[str, ParagraphStyle], bold: str) -> list:
    story: list = [_paragraph(markup(title), st["title"])]
    for block in letter.blocks:
        if isinstance(block, model.Heading):
            story.append(_paragraph(markup(block.text), st["h1" if block.level <= 1 else "h2"]))
        elif isinstance(block, model.Paragraph):
            story.append(_paragraph(markup(block.text), st["body"]))
        elif isinstance(block, model.BulletList):
            items = [ListItem(_paragraph(markup(t), st["item"])) for t in block.items]
            kw = (dict(bulletType="1", bulletFormat="%s.") if block.ordered
                  else dict(bulletType="bullet", start="•"))
            story.append(ListFlowable(items, bulletFontName=st["body"].fontName, bulletFontSize=BODY_SIZE,
                                      leftIndent=14, bulletDedent=12, spaceAfter=6, **kw))
            story.append(Spacer(0, 4))
        elif isinstance(block, model.Table):
            story.extend(_table(block, width, st))
    if letter.closing or letter.signature:
        closing = [Spacer(0, 8)]
        if letter.closing:
            closing.append(_paragraph(markup(letter.closing), st["body"]))
            closing.append(Spacer(0, 10))
        if letter.signature:
            sig = [markup(line) for line in letter.signature]
            sig[0] = f'<font name="{bold}">{sig[0]}</font>'
            closing.append(_paragraph("<br/>".join(sig), st["body"]))
        story.append(KeepTogether(closing))
    return story


def _table(block: model.Table, width: float, st: dict[str, ParagraphStyle]) -> list:
    if not block.rows:
        return []
    ncols = max(len(r) for r in block.rows)
    rows = []
    for i, row in enumerate(block.rows):
        style = st["cellhead"] if block.header and i == 0 else st["cell"]
        cells = list(row) + [""] * (ncols - len(row))
        rows.append([_paragraph(markup(c), style) for c in cells])
    commands = [
        ("FONTNAME", (0, 0), (-1, -1), st["cell"].fontName),  # else reportlab selects Helvetica
        ("GRID", (0, 0), (-1, -1), 0.5, colors.Color(0.55, 0.55, 0.55)),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
    ]
    if block.header:
        commands.append(("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.9, 0.9, 0.9)))
    table = Table(rows, colWidths=[width / ncols] * ncols, repeatRows=1 if block.header else 0,
                  style=TableStyle(commands), hAlign="LEFT")
    return [table, Spacer(0, 10)]


class _LetterCanvas(Canvas):
    """A canvas that keeps pages back until the end, so every page can say "Side X af Y"."""

    def __init__(self, *args, letter_footer=None, finish=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._pages: list[dict] = []
        self._letter_footer = letter_footer
        self._finish = finish

    def showPage(self):  # noqa: N802 (reportlab's name)
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self):
        total = len(self._pages)
        for number, state in enumerate(self._pages, start=1):
            self.__dict__.update(state)
            self._letter_footer(self, number, total)
            super().showPage()
        self._finish(self)
        for page in self._doc.Pages.pages:  # binary Flate streams: ~20 % smaller than reportlab's ASCII85
            page.Contents = PDFStream(content=page.stream, filters=[PDFZCompress])
            page.Contents.__Comment__ = "page stream"
        super().save()


class _Renderer:
    """One letter's drawing: the fixed page furniture around the flowing body."""

    def __init__(self, submission, letterhead, reply_line, reference, created, layout):
        self.s = submission
        self.head = letterhead
        self.reply_line = plain(reply_line) if reply_line else None
        self.reference = plain(reference)
        self.created = created
        self.layout = layout
        self.regular, self.bold = register_fonts()
        case = submission.case
        self.letter_date = (case.letter_date if case and case.letter_date
                            else created.date() if created is not None else None)
        self.address = address_lines(submission)

    # -- page furniture ------------------------------------------------------------------------
    def info_lines(self) -> list[tuple[str, str]]:
        """(font, text) lines of the right-hand column; ("", "") is a blank line."""
        h, case = self.head, self.s.case
        out: list[tuple[str, str]] = [(self.bold, plain(h.department))]
        out += [(self.regular, plain(a)) for a in h.address_lines]
        out.append(("", ""))
        if h.phone:
            out.append((self.regular, f"Tlf. {plain(h.phone)}"))
        if h.email:
            out.append((self.regular, plain(h.email)))
        if h.web:
            out.append((self.regular, plain(h.web)))
        out.append((self.regular, f"CVR {plain(h.cvr)}"))
        out.append(("", ""))
        out.append((self.bold, f"Dato: {danish_date(self.letter_date)}"))
        case_number = case.case_number if case else None
        case_number = case_number or self.s.manifest.case_reference
        if case_number:
            out.append((self.regular, f"Sagsnr.: {plain(case_number)}"))
        if case and case.document_number:
            out.append((self.regular, f"Dok.nr.: {plain(case.document_number)}"))
        out.append((self.regular, f"Ref.: {self.reference}"))
        return out

    @cached_property
    def wrapped_info(self) -> list[tuple[str, str]]:
        width = (PAGE_WIDTH / mm - self.layout.margin_right - self.layout.info_left) * mm
        out = []
        for font, text in self.info_lines():
            if not text:
                out.append((font, text))
                continue
            out += [(font, part) for part in simpleSplit(text, font, INFO_SIZE, width)]
        return out

    def first_body_top(self) -> float:
        """Millimetres from the top where the body starts on page 1 (below window and info column)."""
        lay = self.layout
        info_bottom = lay.info_top + (len(self.wrapped_info) * INFO_LEADING) / mm + 3
        return max(lay.first_body_top, info_bottom + 4, lay.address_field.bottom + lay.window_clearance + 4)

    def draw_first_page(self, canv: Canvas, doc) -> None:
        canv.saveState()
        self.draw_letterhead(canv)
        # info column
        lay = self.layout
        y = lay.info_top
        for font, text in self.wrapped_info:
            if text:
                canv.setFont(font, INFO_SIZE)
                canv.drawString(lay.info_left * mm, _top(y), text)
            y += INFO_LEADING / mm
        self.draw_window(canv)
        canv.restoreState()

    def draw_letterhead(self, canv: Canvas) -> None:
        """Logo (optional) on the left, the municipality's name on the right (call :meth:`load_logo` first)."""
        lay = self.layout
        if self.logo is not None:
            draw_logo(canv, self.logo, lay.margin_left * mm, _top(lay.margin_top + 14), 60 * mm, 18 * mm)
        canv.setFont(self.bold, 15)
        canv.drawString(lay.info_left * mm, _top(lay.margin_top + 2), plain(self.head.municipality))

    def draw_window(self, canv: Canvas) -> None:
        """The envelope window: the small return line, then the recipient address (checked to fit first)."""
        lay = self.layout
        field = lay.address_field
        x = (field.left + lay.address_indent) * mm
        max_width = self.address_width()
        ret = plain(self.head.return_line)
        size = RETURN_SIZE
        while stringWidth(ret, self.regular, size) > max_width and size > 5:
            size -= 0.25
        canv.setFont(self.regular, size)
        canv.drawString(x, _top(field.top + 3.2), ret)  # no rule under it: only text in the window
        lines = self.fitted_address(max_width)  # already checked in render(), before layout
        y = field.top + lay.return_zone + 4
        canv.setFont(self.regular, ADDRESS_SIZE)
        for line in lines:
            canv.drawString(x, _top(y), line)
            y += ADDRESS_LEADING_MM

    def address_width(self) -> float:
        """Points available for an address line inside the window."""
        lay = self.layout
        return (lay.address_field.width - 2 * lay.address_indent) * mm

    def load_logo(self) -> None:
        """The letterhead logo (if any), prepared once per process; raises :class:`LogoUnreadable`."""
        self.logo = prepared_logo(self.head.logo_path) if self.head.logo_path else None

    def fitted_address(self, max_width: float) -> list[str]:
        """The address lines, long lines wrapped; raises if they cannot fit the window."""
        lines: list[str] = []
        for line in self.address:
            lines += simpleSplit(line, self.regular, ADDRESS_SIZE, max_width) or [""]
        field = self.layout.address_field
        room = field.height - self.layout.return_zone - 4 - 1.5  # last baseline + descender inside
        if (len(lines) - 1) * ADDRESS_LEADING_MM > room:
            raise AddressDoesNotFit(
                f"The recipient address has {len(lines)} lines and does not fit the envelope window "
                f"({field.width:g} x {field.height:g} mm); shorten the address lines."
            )
        return lines

    def draw_later_page(self, canv: Canvas, doc) -> None:
        lay = self.layout
        canv.saveState()
        canv.setFont(self.regular, FOOTER_SIZE)
        canv.setFillColor(colors.Color(0.35, 0.35, 0.35))
        y = PAGE_HEIGHT - (lay.margin_top - 8) * mm
        canv.drawString(lay.margin_left * mm, y, plain(self.head.municipality))
        canv.drawRightString(PAGE_WIDTH - lay.margin_right * mm, y, f"Ref.: {self.reference}")
        canv.restoreState()

    def draw_footer(self, canv: Canvas, number: int, total: int) -> None:
        lay = self.layout
        canv.saveState()
        canv.setFont(self.regular, FOOTER_SIZE)
        canv.setFillColor(colors.Color(0.2, 0.2, 0.2))
        right = PAGE_WIDTH - lay.margin_right * mm
        base = lay.footer_baseline * mm
        page_text = f"Side {number} af {total}"
        canv.drawRightString(right, base, page_text)
        parts: list[str] = []
        if self.reply_line:
            width = right - lay.margin_left * mm - stringWidth(page_text, self.regular, FOOTER_SIZE) - 8 * mm
            parts = simpleSplit(self.reply_line, self.regular, FOOTER_SIZE, width)
            for i, part in enumerate(reversed(parts)):
                canv.drawString(lay.margin_left * mm, base + i * FOOTER_SIZE * 1.3, part)
        rule = base + max(len(parts) - 1, 0) * FOOTER_SIZE * 1.3 + 4 * mm
        canv.setStrokeColor(colors.Color(0.6, 0.6, 0.6))
        canv.setLineWidth(0.4)
        canv.line(lay.margin_left * mm, rule, right, rule)
        canv.restoreState()

    # -- document --------------------------------------------------------------------------------
    def metadata(self) -> pdfa.Metadata:
        manifest, case = self.s.manifest, self.s.case
        kind = DOCUMENT_TYPES_DA.get(manifest.document_type, manifest.document_type)
        keywords = [f"docpost-ref:{self.reference}", kind]
        case_number = (case.case_number if case else None) or manifest.case_reference
        if case_number:
            keywords.append(f"sagsnr:{plain(case_number)}")
        return pdfa.Metadata(
            title=plain(manifest.title),
            author=plain(self.head.municipality),
            subject=f"{kind} fra {plain(self.head.municipality)}, {plain(self.head.department)}",
            keywords=", ".join(keywords),
            created=self.created,
            language="da",
            document_id=hashlib.md5(
                f"{self.reference}\0{self.s.content_hash}".encode(), usedforsecurity=False
            ).digest(),
        )

    def render(self) -> bytes:
        letter = self.s.letter
        if letter is None:
            raise NoLetterText("The submission has no letter text to render (it carries a ready main PDF).")
        lay = self.layout
        self.load_logo()  # read up front: errors inside reportlab's page hooks get mangled
        self.fitted_address(self.address_width())  # raises outside reportlab's hooks
        st = _styles(self.regular, self.bold)
        width = (PAGE_WIDTH / mm - lay.margin_left - lay.margin_right) * mm
        first_top = self.first_body_top()
        first = Frame(lay.margin_left * mm, lay.body_bottom * mm, width,
                      PAGE_HEIGHT - (first_top + lay.body_bottom) * mm, id="first",
                      leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)
        later = Frame(lay.margin_left * mm, lay.body_bottom * mm, width,
                      PAGE_HEIGHT - (lay.margin_top + lay.body_bottom) * mm, id="later",
                      leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)
        meta = self.metadata()
        buf = io.BytesIO()
        doc = BaseDocTemplate(
            buf, pagesize=(PAGE_WIDTH, PAGE_HEIGHT), invariant=1, lang="da", pageCompression=1,
            title=meta.title, author=meta.author, subject=meta.subject, keywords=meta.keywords,
            creator="docpost", initialFontName=self.regular,
        )
        doc.addPageTemplates([
            PageTemplate("first", frames=[first], onPage=self.draw_first_page, autoNextPageTemplate="later"),
            PageTemplate("later", frames=[later], onPage=self.draw_later_page),
        ])
        story = [NextPageTemplate("later"), *_story(letter, self.s.manifest.title, width, st, self.bold)]

        def canvasmaker(*args, **kwargs):
            canv = _LetterCanvas(*args, letter_footer=self.draw_footer,
                                 finish=lambda c: pdfa.finish(c, meta), **kwargs)
            pdfa.prepare(canv, meta)
            return canv

        doc.build(story, canvasmaker=canvasmaker)
        return buf.getvalue()


def render_letter(
    submission: model.Submission,
    letterhead: model.Letterhead,
    reply_line: str | None,
    reference: str,
    created: dt.datetime,
    layout: PageLayout | None = None,
) -> bytes:
    """The letter as PDF bytes: A4, window-envelope address, "Side X af Y", reply line in the footer.

    Byte-identical for the same arguments. ``reply_line`` None prints no reply line (ikkeMuligt).
    Raises :class:`NoLetterText` or :class:`AddressDoesNotFit` (both ``RenderError``).
    """
    return _Renderer(submission, letterhead, reply_line, reference, created, layout or PageLayout()).render()
