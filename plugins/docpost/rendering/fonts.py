"""The embedded fonts: DejaVu Sans regular and bold, shipped in ``docpost/fonts`` (Bitstream Vera licence)."""

from __future__ import annotations

from pathlib import Path

FONT_DIR = Path(__file__).resolve().parent.parent / "fonts"
REGULAR = "DocpostSans"
BOLD = "DocpostSans-Bold"
_FILES = {REGULAR: "DejaVuSans.ttf", BOLD: "DejaVuSans-Bold.ttf"}
_registered = False


def register_fonts() -> tuple[str, str]:
    """Register regular and bold (and the family mapping, so <b> never falls back to Helvetica)."""
    global _registered
    if not _registered:
        from reportlab.lib.fonts import addMapping
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.ttfonts import TTFont

        for name, file in _FILES.items():
            pdfmetrics.registerFont(TTFont(name, str(FONT_DIR / file)))
        pdfmetrics.registerFontFamily(REGULAR, normal=REGULAR, bold=BOLD, italic=REGULAR, boldItalic=BOLD)
        for bold in (0, 1):
            for italic in (0, 1):
                addMapping(REGULAR, bold, italic, BOLD if bold else REGULAR)
                addMapping(BOLD, bold, italic, BOLD)
        _registered = True
    return REGULAR, BOLD
