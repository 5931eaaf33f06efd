"""Rendering: structured letters to print-ready, deterministic PDFs; joining and checking PDFs.

Public API::

    render_letter(submission, letterhead, reply_line, reference, created, layout=None) -> bytes
    assemble(main_pdf, attachments) -> bytes
    check_print_ready(pdf, layout=None, max_pages=None) -> list[PrintIssue]
    ensure_print_ready(pdf, layout=None, max_pages=None) -> None   # raises NotPrintReady

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

__all__ = [
    "AddressDoesNotFit", "AssembleError", "LogoUnreadable", "NoLetterText", "NotPrintReady", "PageLayout", "PrintIssue",
    "Rect", "RenderError", "address_lines", "assemble", "check_print_ready", "ensure_print_ready",
    "render_letter",
]
