"""Errors of reply routing: one root, specific subclasses, each with a stable reason code."""

from __future__ import annotations

from docpost.errors import DocpostError, Unavailable


class ReplyError(DocpostError):
    """Root of reply-routing errors. ``code`` is stable; the message is plain language."""

    code = "replies.error"


class InboundRejected(ReplyError):
    """An inbound message that cannot be read; it goes to the manual queue with this reason."""

    code = "inbound.rejected"


class InboundMalformed(InboundRejected):
    """Not well-formed XML, not UTF-8, or not a valid MeMo message."""

    code = "inbound.malformed"


class InboundHostile(InboundRejected):
    """A DTD (XXE, billion laughs), XInclude or an oversized/overdeep document: never parsed."""

    code = "inbound.hostile"


class UnknownInbound(ReplyError):
    """No inbound message has this id."""

    code = "replies.unknown-inbound"


class AssignRefused(ReplyError):
    """A manual assignment that cannot be done (unknown or closed Emne, already mailed)."""

    code = "replies.assign-refused"


class MailError(ReplyError):
    """A mail to a functional mailbox could not be sent."""

    code = "mail.failed"


class MailUnavailable(MailError, Unavailable):
    """The SMTP server could not be reached or refused temporarily; retried on the next pass."""

    code = "mail.unavailable"


class MailRefused(MailError):
    """The SMTP server refused the mail permanently (e.g. unknown recipient)."""

    code = "mail.refused"


class MailUnsafe(MailError):
    """A value of the mail (a header, a file name, an address) that cannot be made safe: refused,
    never sent. The message goes to the manual queue with this code."""

    code = "mail.unsafe-header"


class MailTooLarge(MailError):
    """The mail would be larger than the mail server takes (``DOCPOST_MAIL_MAX_BYTES``)."""

    code = "mail.too-large"
