"""A SUPPLIED main PDF (manifest role ``main``): which print rules block it, and the copy that goes to print.

* :func:`check_supplied` - the print check applies only where paper is possible (channel wish
  ``auto`` or ``physical``); a digital-only letter is never rejected for print rules.
* :func:`printed_copy` - the one PDF for the print shop. As print services do, a supplied PDF whose
  envelope window on page 1 is not usable as is (other content in or near the window, or no address
  there) gets an **address cover page** in front: the recipient's address in the window exactly
  where rendered letters put it, the return line above it, the letterhead and the letter's title.
  The ``window_policy`` ``"reject"`` turns this off: such PDFs are refused instead
  (``DOCPOST_WINDOW_CONTENT`` = ``cover`` | ``reject``).

Messages and exceptions never carry personal data (names, addresses, CPR/CVR numbers).
"""

from __future__ import annotations

import io

from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit

from docpost import model
from docpost.config import WINDOW_POLICIES
from docpost.model import ChannelWish
from docpost.rendering.assemble import assemble
from docpost.rendering.errors import NotPrintReady, PrintIssue, RenderError
from docpost.rendering.layout import PAGE_HEIGHT, PAGE_WIDTH, PageLayout
from docpost.rendering.letter import BODY_SIZE, _Renderer, plain
from docpost.rendering.printready import check_print_ready

DEFAULT_WINDOW_POLICY = WINDOW_POLICIES[0]
#: Issue codes meaning "there is content in (or crossing / too close to) the address window" on page 1.
WINDOW_CONTENT_CODES = frozenset({"print.content-in-address-window"})
#: Every page-1 window issue an address cover page resolves (the supplied page 1 is no longer in the window).
COVER_RESOLVES = WINDOW_CONTENT_CODES | {"print.no-address"}
PRINTABLE_WISHES = frozenset({ChannelWish.AUTO, ChannelWish.PHYSICAL})
ADDRESS_MISSING = "render.address-missing"

TITLE_SIZE, TITLE_LEADING = 12.5, 16.0
COVER_NOTE = "Adresseside til brevet. Brevet begynder på næste side."


def window_policy_of(value: str | None) -> str:
    """``value`` checked and normalised (None or blank: the default, ``cover``); raises ValueError."""
    policy = (value or DEFAULT_WINDOW_POLICY).strip().lower()
    if policy not in WINDOW_POLICIES:
        raise ValueError(f"window_policy must be one of {', '.join(WINDOW_POLICIES)}, not {value!r}")
    return policy


def may_be_printed(wish: ChannelWish | str) -> bool:
    """True if a letter with this channel wish can end up on paper (``auto`` or ``physical``)."""
    return ChannelWish(wish) in PRINTABLE_WISHES


def _page_count(pdf: bytes) -> int:
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(pdf), strict=False).pages)


def check_supplied(pdf: bytes, wish: ChannelWish | str, *, window_policy: str = DEFAULT_WINDOW_POLICY,
                   layout: PageLayout | None = None, issues: list[PrintIssue] | None = None) -> list[PrintIssue]:
    """The print issues that block a supplied main PDF; an empty list lets it through.

    * ``wish`` ``digital``: always ``[]`` (it is never printed, so print rules do not apply).
    * ``auto`` / ``physical``: every issue of :func:`check_print_ready`, except, with
      ``window_policy="cover"``, the page-1 window issues (:data:`COVER_RESOLVES`:
      ``print.content-in-address-window`` and ``print.no-address``), which the address cover page of
      :func:`printed_copy` resolves. The cover page is one more page in the envelope, so a letter that
      needs one and already has ``max_pages`` pages gets ``print.too-many-pages``.
      With ``window_policy="reject"`` every issue blocks (the PDF must be printable as it is).
    """
    policy = window_policy_of(window_policy)
    if not may_be_printed(wish):
        return []
    layout = layout or PageLayout()
    issues = check_print_ready(pdf, layout) if issues is None else issues  # given: checked once already
    if policy == "reject" or not any(i.code in COVER_RESOLVES for i in issues):
        return issues
    blocking = [i for i in issues if i.code not in COVER_RESOLVES]
    pages = _page_count(pdf)  # readable: check_print_ready found a page 1 to look at
    if pages + 1 > layout.max_pages and not any(i.code == "print.too-many-pages" for i in blocking):
        blocking.append(PrintIssue(
            "print.too-many-pages",
            f"The letter has {pages} pages and its envelope window on page 1 is not free, so it needs an "
            f"address cover page: {pages + 1} pages, but at most {layout.max_pages} fit the envelope. "
            "Send it digitally, split it, or leave the window free for the address.",
        ))
    return blocking


def window_issues(pdf: bytes, layout: PageLayout | None = None) -> list[PrintIssue]:
    """The page-1 window issues of ``pdf`` (:data:`COVER_RESOLVES`); empty if its window can be used as is."""
    layout = layout or PageLayout()
    return [i for i in check_print_ready(pdf, layout, max_pages=10**9) if i.code in COVER_RESOLVES]


def address_cover(submission: model.Submission, letterhead: model.Letterhead,
                  layout: PageLayout | None = None) -> bytes:
    """A one-page A4 PDF: letterhead, return line and the recipient's address in the window (as on a
    rendered letter's page 1), then the letter's title and a note that the letter follows.

    Deterministic (same arguments, same bytes). Raises ``RenderError`` (``render.address-missing``)
    when the recipient has no postal address, :class:`AddressDoesNotFit` or :class:`LogoUnreadable`.
    """
    from reportlab.pdfgen.canvas import Canvas

    layout = layout or PageLayout()
    if submission.manifest.recipient.address is None:
        raise RenderError("The supplied PDF needs an address cover page for print, but the manifest gives "
                          "the recipient no postal address.", code=ADDRESS_MISSING)
    r = _Renderer(submission, letterhead, None, "", None, layout)
    r.load_logo()
    r.fitted_address(r.address_width())  # raises before anything is drawn
    manifest = submission.manifest
    buf = io.BytesIO()
    canv = Canvas(buf, pagesize=(PAGE_WIDTH, PAGE_HEIGHT), invariant=1, pageCompression=1, lang="da",
                  initialFontName=r.regular)
    canv.setTitle(plain(manifest.title))
    canv.setAuthor(plain(letterhead.municipality))
    canv.setSubject(f"Adresseside: {plain(manifest.title)}")
    canv.setCreator("docpost")
    canv.saveState()
    r.draw_letterhead(canv)
    r.draw_window(canv)
    left = layout.margin_left * mm
    width = (PAGE_WIDTH / mm - layout.margin_left - layout.margin_right) * mm
    y = layout.first_body_top * mm + TITLE_SIZE
    canv.setFont(r.bold, TITLE_SIZE)
    for line in simpleSplit(plain(manifest.title), r.bold, TITLE_SIZE, width):
        canv.drawString(left, PAGE_HEIGHT - y, line)
        y += TITLE_LEADING
    canv.setFont(r.regular, BODY_SIZE)
    canv.drawString(left, PAGE_HEIGHT - y - 4, COVER_NOTE)
    canv.restoreState()
    canv.showPage()
    canv.save()
    return buf.getvalue()


def printed_copy(submission: model.Submission, letterhead: model.Letterhead, main_pdf: bytes,
                 attachments: list[bytes], *, window_policy: str = DEFAULT_WINDOW_POLICY,
                 layout: PageLayout | None = None, issues: list[PrintIssue] | None = None) -> bytes:
    """The one PDF that goes to print: [address cover page,] the main PDF, then the attachments.

    The cover page is added only when page 1 of ``main_pdf`` has window issues (:func:`window_issues`)
    and ``window_policy`` is ``cover``; otherwise this is ``assemble(main_pdf, attachments)`` (the
    main PDF unchanged when there are no attachments). With ``window_policy="reject"`` a main PDF with
    window issues raises :class:`NotPrintReady` (:func:`check_supplied` should have refused it).
    Works for rendered letters too: their window is always usable, so they never get a cover.
    Raises ``RenderError`` subclasses (never with personal data): see :func:`address_cover` and
    :func:`assemble`.
    """
    policy = window_policy_of(window_policy)
    layout = layout or PageLayout()
    issues = (window_issues(main_pdf, layout) if issues is None  # given: check_print_ready's, once
              else [i for i in issues if i.code in COVER_RESOLVES])
    if not issues:
        return assemble(main_pdf, list(attachments))
    if policy == "reject":
        raise NotPrintReady(issues)
    return assemble(address_cover(submission, letterhead, layout), [main_pdf, *attachments])
