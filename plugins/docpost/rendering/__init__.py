"""Rendering: structured letters to print-ready, deterministic PDFs; joining and checking PDFs.

Public API::

    render_letter(submission, letterhead, reply_line, reference, created, layout=None) -> bytes
    assemble(main_pdf, attachments) -> bytes
    check_print_ready(pdf, layout=None, max_pages=None) -> list[PrintIssue]
    ensure_print_ready(pdf, layout=None, max_pages=None) -> None   # raises NotPrintReady
    check_supplied(pdf, wish, *, window_policy="cover", layout=None) -> list[PrintIssue]  # blocking only
    printed_copy(submission, letterhead, main_pdf, attachments, *, window_policy="cover", layout=None) -> bytes

Errors: :class:`RenderError` (root; ``.code``, ``.message``) and its subclasses.
"""

from docpost.rendering.assemble import assemble
from docpost.rendering.errors import (
    AddressDoesNotFit,
    AssembleError,
    LogoUnreadable,
    NoLetterText,
    NotPrintReady,
    PrintIssue,
    RenderError,
)
from docpost.rendering.layout import PageLayout, Rect
from docpost.rendering.letter import address_lines, render_letter
from docpost.rendering.printready import check_print_ready, ensure_print_ready
from docpost.rendering.supplied import (
    COVER_RESOLVES,
    WINDOW_CONTENT_CODES,
    WINDOW_POLICIES,
    address_cover,
    check_supplied,
    printed_copy,
)

__all__ = [
    "AddressDoesNotFit", "AssembleError", "LogoUnreadable", "NoLetterText", "NotPrintReady", "PageLayout", "PrintIssue",
    "Rect", "RenderError", "address_lines", "assemble", "check_print_ready", "ensure_print_ready",
    "render_letter",
    "COVER_RESOLVES", "WINDOW_CONTENT_CODES", "WINDOW_POLICIES", "address_cover", "check_supplied", "printed_copy",
]
