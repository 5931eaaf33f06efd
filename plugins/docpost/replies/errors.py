"""Errors of reply routing: one root, specific subclasses, each with a stable reason code."""

from __future__ import annotations


class ReplyError(Exception):
    """Root of reply-routing errors. ``reason`` is a stable code; the message is plain language."""

    reason = "replies"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} [{self.reason}]"


class InboundRejected(ReplyError):
    """An inbound message that cannot be read; it goes to the manual queue with this reason."""

    reason = "inbound.rejected"


class InboundMalformed(InboundRejected):
    """Not well-formed XML, not UTF-8, or not a valid MeMo message."""

    reason = "inbound.malformed"


class InboundHostile(InboundRejected):
    """A DTD (XXE, billion laughs), XInclude or an oversized/overdeep document: never parsed."""

    reason = "inbound.hostile"


class UnknownInbound(ReplyError):
    """No inbound message has this id."""

    reason = "replies.unknown-inbound"


class AssignRefused(ReplyError):
    """A manual assignment that cannot be done (unknown or closed Emne, already mailed)."""

    reason = "replies.assign-refused"


class MailError(ReplyError):
    """A mail to a functional mailbox could not be sent."""

    reason = "mail.failed"


class MailUnavailable(MailError):
    """The SMTP server could not be reached or refused temporarily; retried on the next pass."""

    reason = "mail.unavailable"


class MailRefused(MailError):
    """The SMTP server refused the mail permanently (e.g. unknown recipient)."""

    reason = "mail.refused"
