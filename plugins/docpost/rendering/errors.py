"""The rendering concern's one root exception and the print-readiness finding type."""

from __future__ import annotations

from dataclasses import dataclass

from docpost.errors import ConfigurationError, DocpostError


class RenderError(DocpostError):
    """Rendering or assembling a letter failed. ``code`` is stable, ``message`` is plain Danish/English.

    Messages never carry personal data (names, addresses, CPR/CVR numbers).
    """

    code = "render.failed"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message, code=code)


class NoLetterText(RenderError):
    """The submission has no structured letter text to render."""

    code = "render.no-letter"


class AddressDoesNotFit(RenderError):
    """The recipient's address block does not fit the envelope window."""

    code = "render.address-too-long"


class LogoUnreadable(RenderError, ConfigurationError):
    """The letterhead logo named by the sending profile cannot be read."""

    code = "render.logo-unreadable"


class AssembleError(RenderError):
    """A PDF to be joined (main document or attachment) cannot be read."""

    code = "render.unreadable-pdf"


class NotPrintReady(RenderError):
    """A supplied PDF breaks one or more print rules; ``issues`` lists them all."""

    code = "print.not-ready"

    def __init__(self, issues: list[PrintIssue]) -> None:
        self.issues = list(issues)
        text = "; ".join(f"{i.code}: {i.message}" for i in self.issues)
        super().__init__(f"The PDF cannot be printed and posted as it is: {text}")


@dataclass(frozen=True)
class PrintIssue:
    """One broken print rule in a supplied PDF: a stable ``code`` and a message for the source owner."""

    code: str
    message: str
    page: int | None = None  # 1-based page number, None for the whole document

    def __str__(self) -> str:
        where = f" (side {self.page})" if self.page else ""
        return f"{self.code}{where}: {self.message}"
