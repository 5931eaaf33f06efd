"""Print-readiness of a SUPPLIED PDF: A4 portrait, page limit, the envelope window, margins.

Pure Python (pypdf): every page's content stream is interpreted for geometry only - where text,
vector paths and images land on the page (clipping and form XObjects followed). Text extents are
estimated from the font's glyph widths; that is exact enough for millimetre rules.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from reportlab.lib.units import mm

from docpost.rendering.errors import NotPrintReady, PrintIssue
from docpost.rendering.layout import PAGE_HEIGHT, PAGE_WIDTH, PageLayout, Rect

A4_TOLERANCE = 1.0 * mm  # ±1 mm for rounding in other tools
_INSIDE_SLACK = 0.5 * mm  # glyph boxes are estimates

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in points, origin bottom-left


@dataclass(frozen=True)
class Mark:
    """Something that prints: ``kind`` is "text", "path" or "image"; ``box`` where, in points."""

    kind: str
    box: Box


def _mul(m: tuple, n: tuple) -> tuple:
    """Matrix product m x n of PDF matrices (a b c d e f)."""
    a, b, c, d, e, f = m
    A, B, C, D, E, F = n
    return (a * A + b * C, a * B + b * D, c * A + d * C, c * B + d * D, e * A + f * C + E, e * B + f * D + F)


def _apply(m: tuple, x: float, y: float) -> tuple[float, float]:
    a, b, c, d, e, f = m
    return a * x + c * y + e, b * x + d * y + f


def _box_of(points: list[tuple[float, float]]) -> Box | None:
    if not points:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def _intersect(a: Box | None, b: Box | None) -> Box | None:
    if a is None:
        return b
    if b is None:
        return a
    box = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    return box if box[0] <= box[2] and box[1] <= box[3] else (0.0, 0.0, -1.0, -1.0)


def _empty(box: Box) -> bool:
    return box[0] > box[2] or box[1] > box[3]


class _Font:
    """Glyph widths (text space, 1/1000 em) and vertical extent of one PDF font."""

    def __init__(self, font) -> None:
        font = font.get_object() if font is not None else {}
        self.two_byte = font.get("/Subtype") == "/Type0"
        self.widths: dict[int, float] = {}
        self.default = 500.0
        descriptor = {}
        if self.two_byte:
            desc = font.get("/DescendantFonts")
            cid = desc.get_object()[0].get_object() if desc else {}
            self.default = float(cid.get("/DW", 1000))
            w = cid.get("/W")
            if w is not None:
                self._cid_widths(list(w.get_object()))
            descriptor = cid.get("/FontDescriptor", {})
        else:
            first = int(font.get("/FirstChar", 0))
            for i, width in enumerate(font.get("/Widths", None) or []):
                self.widths[first + i] = float(width)
            descriptor = font.get("/FontDescriptor", {})
            if not self.widths:
                self._standard_widths(str(font.get("/BaseFont", "/Helvetica"))[1:])
        descriptor = descriptor.get_object() if descriptor else {}
        if "/MissingWidth" in descriptor:
            self.default = float(descriptor["/MissingWidth"])
        self.scale = 1.0 / 1000.0
        if font.get("/Subtype") == "/Type3" and "/FontMatrix" in font:
            self.scale = float(font["/FontMatrix"][0])
        ascent = float(descriptor.get("/Ascent", 800) or 800)
        descent = float(descriptor.get("/Descent", -200) or -200)
        self.ascent, self.descent = min(ascent, 1100) / 1000.0, max(descent, -400) / 1000.0

    def _cid_widths(self, w: list) -> None:
        i = 0
        while i + 1 < len(w):
            start = int(w[i])
            nxt = w[i + 1].get_object() if hasattr(w[i + 1], "get_object") else w[i + 1]
            if isinstance(nxt, list):
                for k, width in enumerate(nxt):
                    self.widths[start + k] = float(width)
                i += 2
            elif i + 2 < len(w):
                for cid in range(start, int(nxt) + 1):
                    self.widths[cid] = float(w[i + 2])
                i += 3
            else:
                break

    def _standard_widths(self, base: str) -> None:
        from reportlab.pdfbase import pdfmetrics

        try:
            face = pdfmetrics.getFont(base.split("+")[-1])
        except KeyError:
            return
        for code in range(32, 256):
            self.widths[code] = face.stringWidth(bytes([code]).decode("cp1252", "replace"), 1000)

    def codes(self, raw: bytes) -> list[int]:
        if self.two_byte:
            return [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw) - 1, 2)]
        return list(raw)


@dataclass
class _State:
    ctm: tuple = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
    clip: Box | None = None
    line_width: float = 1.0
    fill_white: bool = False
    stroke_white: bool = False
    font: _Font | None = None
    size: float = 0.0
    char_space: float = 0.0
    word_space: float = 0.0
    hscale: float = 1.0
    leading: float = 0.0
    rise: float = 0.0
    render_mode: int = 0

    def copy(self) -> _State:
        return _State(**self.__dict__)


def _white(operands: list) -> bool:
    values = [float(v) for v in operands if isinstance(v, (int, float))]
    if len(values) == 4:  # CMYK
        return all(v <= 0.001 for v in values)
    return bool(values) and all(v >= 0.999 for v in values)


@dataclass
class _Interpreter:
    """Walks one page's content stream and collects its :class:`Mark` s."""

    reader: object
    marks: list[Mark] = field(default_factory=list)
    fonts: dict[int, _Font] = field(default_factory=dict)
    depth: int = 0

    def font(self, resources, name) -> _Font:
        fonts = resources.get("/Font", {}) if resources else {}
        fonts = fonts.get_object() if fonts else {}
        ref = fonts.get(name)
        key = id(ref.get_object()) if ref is not None else 0
        if key not in self.fonts:
            self.fonts[key] = _Font(ref)
        return self.fonts[key]

    def add(self, kind: str, box: Box | None, gs: _State) -> None:
        if box is None:
            return
        box = _intersect(box, gs.clip)
        if not _empty(box):
            self.marks.append(Mark(kind, box))

    def run(self, content, resources, gs: _State) -> None:  # noqa: C901 (one operator table)
        from pypdf.generic import ContentStream

        if content is None:
            return
        resources = resources.get_object() if resources is not None else {}
        stack: list[_State] = []
        path: list[tuple[float, float]] = []
        tm = lm = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
        for operands, op in ContentStream(content, self.reader).operations:
            if op == b"q":
                stack.append(gs.copy())
            elif op == b"Q":
                if stack:
                    gs = stack.pop()
            elif op == b"cm":
                gs.ctm = _mul(tuple(float(v) for v in operands), gs.ctm)
            elif op == b"w":
                gs.line_width = float(operands[0])
            elif op in (b"g", b"rg", b"k", b"sc", b"scn"):
                gs.fill_white = _white(operands)
            elif op in (b"G", b"RG", b"K", b"SC", b"SCN"):
                gs.stroke_white = _white(operands)
            elif op == b"m" or op == b"l":
                path.append(_apply(gs.ctm, float(operands[0]), float(operands[1])))
            elif op == b"c":
                for i in (0, 2, 4):
                    path.append(_apply(gs.ctm, float(operands[i]), float(operands[i + 1])))
            elif op in (b"v", b"y"):
                for i in (0, 2):
                    path.append(_apply(gs.ctm, float(operands[i]), float(operands[i + 1])))
            elif op == b"re":
                x, y, w, h = (float(v) for v in operands)
                path += [_apply(gs.ctm, x, y), _apply(gs.ctm, x + w, y), _apply(gs.ctm, x, y + h),
                         _apply(gs.ctm, x + w, y + h)]
            elif op in (b"W", b"W*"):
                gs.clip = _intersect(gs.clip, _box_of(path))
            elif op in (b"S", b"s", b"f", b"F", b"f*", b"B", b"B*", b"b", b"b*", b"n"):
                stroke = op in (b"S", b"s", b"B", b"B*", b"b", b"b*")
                fill = op not in (b"S", b"s", b"n")
                visible = (stroke and not gs.stroke_white) or (fill and not gs.fill_white)
                box = _box_of(path)
                if visible and box is not None and op != b"n":
                    if stroke:
                        a, b, c, d = gs.ctm[:4]
                        half = gs.line_width * max((a * a + b * b) ** 0.5, (c * c + d * d) ** 0.5) / 2
                        box = box[0] - half, box[1] - half, box[2] + half, box[3] + half
                    self.add("path", box, gs)
                path = []
            elif op == b"sh":
                self.add("path", gs.clip or (0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT), gs)
            elif op == b"BT":
                tm = lm = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
            elif op == b"Tf":
                gs.font = self.font(resources, operands[0])
                gs.size = float(operands[1])
            elif op == b"Tc":
                gs.char_space = float(operands[0])
            elif op == b"Tw":
                gs.word_space = float(operands[0])
            elif op == b"Tz":
                gs.hscale = float(operands[0]) / 100.0
            elif op == b"TL":
                gs.leading = float(operands[0])
            elif op == b"Ts":
                gs.rise = float(operands[0])
            elif op == b"Tr":
                gs.render_mode = int(operands[0])
            elif op == b"Tm":
                tm = lm = tuple(float(v) for v in operands)
            elif op in (b"Td", b"TD"):
                tx, ty = float(operands[0]), float(operands[1])
                if op == b"TD":
                    gs.leading = -ty
                tm = lm = _mul((1, 0, 0, 1, tx, ty), lm)
            elif op == b"T*":
                tm = lm = _mul((1, 0, 0, 1, 0, -gs.leading), lm)
            elif op in (b"Tj", b"TJ", b"'", b'"'):
                if op in (b"'", b'"'):
                    if op == b'"':
                        gs.word_space, gs.char_space = float(operands[0]), float(operands[1])
                    tm = lm = _mul((1, 0, 0, 1, 0, -gs.leading), lm)
                items = operands[0] if op == b"TJ" else [operands[-1]]
                tm = self.show(items, tm, gs)
            elif op == b"Do":
                self.do(resources, operands[0], gs)
            elif op == b"INLINE IMAGE":
                self.add("image", _box_of([_apply(gs.ctm, x, y) for x in (0, 1) for y in (0, 1)]), gs)

    def show(self, items, tm: tuple, gs: _State) -> tuple:
        font = gs.font or _Font(None)
        start = 0.0
        advance = 0.0
        for item in items:
            if isinstance(item, (int, float)):
                advance -= float(item) / 1000.0 * gs.size * gs.hscale
                continue
            raw = item.original_bytes if hasattr(item, "original_bytes") else bytes(item)
            for code in font.codes(raw):
                w = font.widths.get(code, font.default) * font.scale * gs.size + gs.char_space
                if code == 32 and not font.two_byte:
                    w += gs.word_space
                advance += w * gs.hscale
        if gs.render_mode not in (3, 7) and gs.size:
            lo, hi = font.descent * gs.size + gs.rise, font.ascent * gs.size + gs.rise
            trm = _mul(tm, gs.ctm)
            corners = [_apply(trm, x, y) for x in (start, advance) for y in (lo, hi)]
            self.add("text", _box_of(corners), gs)
        return _mul((1, 0, 0, 1, advance, 0), tm)

    def do(self, resources, name, gs: _State) -> None:
        xobjects = resources.get("/XObject", {}) if resources else {}
        xobjects = xobjects.get_object() if xobjects else {}
        ref = xobjects.get(name)
        if ref is None:
            return
        xobj = ref.get_object()
        kind = xobj.get("/Subtype")
        if kind == "/Image":
            self.add("image", _box_of([_apply(gs.ctm, x, y) for x in (0, 1) for y in (0, 1)]), gs)
        elif kind == "/Form" and self.depth < 12:
            inner = gs.copy()
            if "/Matrix" in xobj:
                inner.ctm = _mul(tuple(float(v) for v in xobj["/Matrix"]), inner.ctm)
            if "/BBox" in xobj:
                x0, y0, x1, y1 = (float(v) for v in xobj["/BBox"])
                inner.clip = _intersect(inner.clip, _box_of(
                    [_apply(inner.ctm, x, y) for x in (x0, x1) for y in (y0, y1)]))
            self.depth += 1
            self.run(xobj, xobj.get("/Resources", resources), inner)
            self.depth -= 1


def page_marks(reader, page) -> list[Mark]:
    """Everything that prints on ``page``, in the page's visible coordinates (rotation applied)."""
    x0, y0, x1, y1 = (float(v) for v in page.cropbox)
    base = (1.0, 0.0, 0.0, 1.0, -x0, -y0)
    w, h = x1 - x0, y1 - y0
    rotate = int(page.get("/Rotate", 0) or 0) % 360
    if rotate == 90:
        base = _mul(base, (0, -1, 1, 0, 0, w))
    elif rotate == 180:
        base = _mul(base, (-1, 0, 0, -1, w, h))
    elif rotate == 270:
        base = _mul(base, (0, 1, -1, 0, h, 0))
    interpreter = _Interpreter(reader)
    vw, vh = (h, w) if rotate in (90, 270) else (w, h)
    interpreter.run(page.get_contents(), page.get("/Resources"), _State(ctm=base, clip=(0.0, 0.0, vw, vh)))
    return interpreter.marks


def _inside(box: Box, area: Box, slack: float = _INSIDE_SLACK) -> bool:
    return (box[0] >= area[0] - slack and box[1] >= area[1] - slack
            and box[2] <= area[2] + slack and box[3] <= area[3] + slack)


def _overlaps(box: Box, area: Box) -> bool:
    return box[0] < area[2] and box[2] > area[0] and box[1] < area[3] and box[3] > area[1]


def _grow(rect: Rect, by: float) -> Rect:
    return Rect(rect.left - by, rect.top - by, rect.width + 2 * by, rect.height + 2 * by)


def check_print_ready(pdf: bytes, layout: PageLayout | None = None, max_pages: int | None = None) -> list[PrintIssue]:
    """Every broken print rule of a supplied PDF (empty list: it can be printed and posted as is)."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    layout = layout or PageLayout()
    max_pages = max_pages if max_pages is not None else layout.max_pages
    try:
        reader = PdfReader(io.BytesIO(pdf), strict=False)
        if reader.is_encrypted:
            return [PrintIssue("print.encrypted", "The PDF is password protected; the print shop cannot open it.")]
        pages = list(reader.pages)
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        return [PrintIssue("print.unreadable", f"The file is not a readable PDF ({type(exc).__name__}).")]
    if not pages:
        return [PrintIssue("print.empty", "The PDF has no pages.")]
    issues: list[PrintIssue] = []
    if len(pages) > max_pages:
        issues.append(PrintIssue(
            "print.too-many-pages",
            f"The letter has {len(pages)} pages; at most {max_pages} pages fit the envelope. "
            "Send the rest digitally or split the letter.",
        ))
    window = layout.address_field.to_pdf()
    near_window = _grow(layout.address_field, layout.window_clearance).to_pdf()
    safe = layout.safe_margin * mm
    for number, page in enumerate(pages, start=1):
        try:  # a damaged page dictionary (a /Rotate that is no number, a box that is no box)
            x0, y0, x1, y1 = (float(v) for v in page.cropbox)
            rotate = int(page.get("/Rotate", 0) or 0)
        except (ValueError, TypeError, KeyError) as exc:
            issues.append(PrintIssue("print.unreadable", f"The page's size or rotation cannot be read ({type(exc).__name__}).",
                                     page=number))
            continue
        w, h = x1 - x0, y1 - y0
        if rotate % 180 == 90:
            w, h = h, w
        portrait_a4 = abs(w - PAGE_WIDTH) <= A4_TOLERANCE and abs(h - PAGE_HEIGHT) <= A4_TOLERANCE
        landscape_a4 = abs(w - PAGE_HEIGHT) <= A4_TOLERANCE and abs(h - PAGE_WIDTH) <= A4_TOLERANCE
        if landscape_a4:
            issues.append(PrintIssue("print.landscape", "The page is landscape; letters must be A4 portrait.",
                                     page=number))
            continue
        if not portrait_a4:
            issues.append(PrintIssue(
                "print.not-a4",
                f"The page is {w / mm:.0f} x {h / mm:.0f} mm; letters must be A4 portrait (210 x 297 mm).",
                page=number,
            ))
            continue
        try:
            marks = page_marks(reader, page)
        except Exception as exc:  # a content stream pypdf cannot parse: report it, do not crash the run
            issues.append(PrintIssue("print.unreadable", f"The page's content cannot be read ({type(exc).__name__}).",
                                     page=number))
            continue
        printable = (safe, safe, PAGE_WIDTH - safe, PAGE_HEIGHT - safe)
        if any(not _inside(m.box, printable, slack=0.0) for m in marks):
            issues.append(PrintIssue(
                "print.margin",
                f"Content comes closer than {layout.safe_margin:g} mm to the edge of the paper and would be cut "
                "off by the printer; keep a blank border.",
                page=number,
            ))
        if layout.omr_zone is not None:
            omr = layout.omr_zone.to_pdf()
            if any(_overlaps(m.box, omr) for m in marks):
                issues.append(PrintIssue(
                    "print.omr-zone",
                    f"Content lies in the strip {layout.omr_zone.left:g}-{layout.omr_zone.right:g} mm from the "
                    "left edge, where the print shop prints its barcode; move it to the right.",
                    page=number,
                ))
        if number == 1:
            issues += _window_issues(marks, window, near_window, layout)
    return issues


def _window_issues(marks: list[Mark], window: Box, near_window: Box, layout: PageLayout) -> list[PrintIssue]:
    field_ = layout.address_field
    where = f"{field_.width:g} x {field_.height:g} mm, {field_.left:g} mm from the left and {field_.top:g} mm from the top"
    out: list[PrintIssue] = []
    inside = [m for m in marks if _inside(m.box, window)]
    others = [m for m in marks if not _inside(m.box, window) and _overlaps(m.box, near_window)]
    if others:
        out.append(PrintIssue(
            "print.content-in-address-window",
            f"Text or graphics cross the edge of the envelope window ({where}) or come within "
            f"{layout.window_clearance:g} mm of it; only the recipient's address may be there.",
            page=1,
        ))
    if any(m.kind != "text" for m in inside):
        out.append(PrintIssue(
            "print.content-in-address-window",
            f"The envelope window ({where}) contains an image or a drawing; only the address (text) may be there.",
            page=1,
        ))
    if not any(m.kind == "text" for m in inside):
        out.append(PrintIssue(
            "print.no-address",
            f"No address in the envelope window ({where}) on page 1; the letter cannot be posted.",
            page=1,
        ))
    return out


def ensure_print_ready(pdf: bytes, layout: PageLayout | None = None, max_pages: int | None = None) -> None:
    """Raise :class:`NotPrintReady` listing every broken rule, or return quietly."""
    issues = check_print_ready(pdf, layout, max_pages)
    if issues:
        raise NotPrintReady(issues)
