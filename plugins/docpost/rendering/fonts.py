"""The embedded fonts: DejaVu Sans regular and bold, shipped in ``docpost/fonts`` (Bitstream Vera licence),
prepared once per process.

reportlab subsets a TrueType font anew for every document and measures every word glyph by glyph
in Python. A letter uses one of a few dozen subsets (ASCII plus the letters of its text: æ ø å
first, taken from the letterhead), so :class:`PreparedTTFont` keeps what a subset becomes in a PDF
(the font program, compressed, and its ToUnicode map, formatted) and the widths of words already
measured, for the life of the process. The objects written are the ones reportlab writes, in the
same order with the same names: the bytes of a letter do not depend on what was rendered before.
"""

from __future__ import annotations

from pathlib import Path

from reportlab.pdfbase import pdfdoc
from reportlab.pdfbase.ttfonts import FF_NONSYMBOLIC, FF_SYMBOLIC, SUBSETN, TTFont, makeToUnicodeCMap

FONT_DIR = Path(__file__).resolve().parent.parent / "fonts"
REGULAR = "DocpostSans"
BOLD = "DocpostSans-Bold"
_FILES = {REGULAR: "DejaVuSans.ttf", BOLD: "DejaVuSans-Bold.ttf"}
SUBSETS_KEPT = 256  # formatted subsets per face (~40 KiB each); a letter's subset is one of a few dozen
WIDTHS_KEPT = 100_000  # measured words per face (~10 MiB); emptied when full
_registered = False


class _Formatted(pdfdoc.PDFObject):
    """A PDF object whose bytes were formatted once (it refers to no other object; no document
    of docpost's is encrypted)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def format(self, document) -> bytes:
        return self.data


class PreparedTTFont(TTFont):
    """reportlab's TrueType font, keeping formatted subsets and word widths across documents."""

    def __init__(self, name: str, filename: str) -> None:
        super().__init__(name, filename)
        self._subsets: dict[tuple, tuple[bytes, bytes]] = {}
        self._widths: dict[str, float] = {}

    def stringWidth(self, text, size, encoding="utf8"):  # noqa: N802 - reportlab's name
        """As reportlab computes it (``0.001 * size * sum of glyph widths``), each text measured once."""
        units = self._widths.get(text)
        if units is None:
            if not isinstance(text, str):
                text = text.decode(encoding or "utf8")
            width, default = self.face.charWidths.get, self.face.defaultWidth
            units = sum(width(ord(u), default) for u in text)
            if len(self._widths) >= WIDTHS_KEPT:
                self._widths.clear()
            self._widths[text] = units
        return 0.001 * size * units

    def splitString(self, text, doc, encoding="utf-8"):  # noqa: N802 - reportlab's name
        """reportlab's result; a text whose characters all have their code in the first subset
        already (the usual case after a letter's first lines) is encoded in one step."""
        if isinstance(text, str) and text:
            assigned = self._assignState(doc).assignments
            try:
                return [(0, bytes([assigned[c] for c in map(ord, text)]))]
            except (KeyError, ValueError):  # a character new to this document, or beyond the first subset
                pass
        return super().splitString(text, doc, encoding)

    def _formatted(self, doc, base_name: str, subset: list[int]) -> tuple[bytes, bytes, bytes]:
        """The subset's widths, ToUnicode map and font program, formatted (made on first use)."""
        key = (base_name, tuple(subset))
        found = self._subsets.get(key)
        if found is None:
            widths = pdfdoc.PDFArray(list(map(self.face.getCharWidth, subset)))
            cmap = pdfdoc.PDFStream(content=makeToUnicodeCMap(base_name, subset), filters=[pdfdoc.PDFZCompress])
            program = pdfdoc.PDFStream(content=self.face.makeSubset(subset), filters=[pdfdoc.PDFZCompress])
            program.dictionary["Length1"] = len(program.content)
            found = (widths.format(doc), cmap.format(doc), program.format(doc))
            if len(self._subsets) >= SUBSETS_KEPT:
                self._subsets.clear()
            self._subsets[key] = found
        return found

    def addObjects(self, doc):  # noqa: N802 - reportlab's name
        """reportlab's ``TTFont.addObjects`` (4.5), the streams taken from the process's cache."""
        if not doc.compression or not isinstance(doc.encrypt, pdfdoc.NoEncryption):
            return super().addObjects(doc)
        state = self._assignState(doc)
        state.frozen = 1
        face = self.face
        for n, subset in enumerate(state.subsets):
            internal_name = self.getSubsetInternalName(n, doc)[1:]
            base_name = b"".join((SUBSETN(n), b"+", face.name, face.subfontNameX)).decode("pdfdoc")
            widths, cmap, program = self._formatted(doc, base_name, subset)

            font = pdfdoc.PDFTrueTypeFont()
            font.__Comment__ = f"Font {self.fontName} subset {n}"
            font.Name = internal_name
            font.BaseFont = base_name
            font.FirstChar = 0
            font.LastChar = len(subset) - 1
            font.Widths = _Formatted(widths)
            font.ToUnicode = doc.Reference(_Formatted(cmap), "toUnicodeCMap:" + base_name)
            program_ref = doc.Reference(_Formatted(program), f"fontFile:{face.filename}({base_name})")
            descriptor = pdfdoc.PDFDictionary({
                "Type": "/FontDescriptor",
                "Ascent": face.ascent,
                "CapHeight": face.capHeight,
                "Descent": face.descent,
                "Flags": (face.flags & ~FF_NONSYMBOLIC) | FF_SYMBOLIC,
                "FontBBox": pdfdoc.PDFArray(face.bbox),
                "FontName": pdfdoc.PDFName(base_name),
                "ItalicAngle": face.italicAngle,
                "StemV": face.stemV,
                "FontFile2": program_ref,
                "MissingWidth": face.defaultWidth,
            })
            font.FontDescriptor = doc.Reference(descriptor, "fontDescriptor:" + base_name)
            doc.Reference(font, internal_name)
            doc.idToObject["BasicFonts"].dict[internal_name] = font
        del self.state[doc]


def register_fonts() -> tuple[str, str]:
    """Register regular and bold (and the family mapping, so <b> never falls back to Helvetica).

    Put in reportlab's table directly: ``registerFont`` makes a name an alias of any font already
    registered for the same face (DejaVu Sans registered by other code in the process), which
    would bypass these caches - and registered here, such later fonts would become aliases of these.
    """
    global _registered
    if not _registered:
        from reportlab.lib.fonts import addMapping
        from reportlab.pdfbase import pdfmetrics

        for name, file in _FILES.items():
            pdfmetrics._fonts[name] = PreparedTTFont(name, str(FONT_DIR / file))
        pdfmetrics.registerFontFamily(REGULAR, normal=REGULAR, bold=BOLD, italic=REGULAR, boldItalic=BOLD)
        for bold in (0, 1):
            for italic in (0, 1):
                addMapping(REGULAR, bold, italic, BOLD if bold else REGULAR)
                addMapping(BOLD, bold, italic, BOLD)
        _registered = True
    return REGULAR, BOLD
