"""Page geometry of a letter: A4 with the address field of a window envelope (DIN 5008 form B)."""

from __future__ import annotations

from dataclasses import dataclass

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm

PAGE_WIDTH, PAGE_HEIGHT = A4  # points (595.28 x 841.89)


@dataclass(frozen=True)
class Rect:
    """A rectangle in millimetres measured from the page's TOP-left corner (as printers specify it)."""

    left: float
    top: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height

    def to_pdf(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) in PDF points with the origin at the bottom-left corner."""
        return (self.left * mm, PAGE_HEIGHT - self.bottom * mm, self.right * mm, PAGE_HEIGHT - self.top * mm)


@dataclass(frozen=True)
class PageLayout:
    """Where things go on the page, in millimetres. Defaults: DIN 5008 form B, C5/C4 window envelope.

    ``address_field`` is the envelope window; its top ``return_zone`` millimetres carry the small
    return line, the recipient address sits below it, ``address_indent`` in from the field's edge.
    ``safe_margin`` is kept free on every edge; ``omr_zone`` is the strip on the left where the
    print shop prints its barcode / OMR marks (kept free on every page).
    """

    address_field: Rect = Rect(left=20.0, top=45.0, width=85.0, height=45.0)
    address_indent: float = 5.0
    return_zone: float = 5.0
    window_clearance: float = 2.0  # free band around the window (the sheet moves in the envelope)
    margin_left: float = 25.0
    margin_right: float = 20.0
    margin_top: float = 20.0
    first_body_top: float = 100.0  # title/body start on page 1, below the window and info block
    body_bottom: float = 27.0  # body ends this far above the bottom edge; the footer lives below
    footer_baseline: float = 12.0  # footer text baseline above the bottom edge
    info_left: float = 125.0  # the right-hand column: letterhead, date, references
    info_top: float = 50.0
    safe_margin: float = 5.0
    omr_zone: Rect | None = Rect(left=0.0, top=20.0, width=12.0, height=257.0)
    max_pages: int = 10
