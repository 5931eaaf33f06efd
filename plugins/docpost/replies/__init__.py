"""Reply routing: citizens' replies and new messages to the right functional mailbox.

Pull inbound MeMo messages (:mod:`docpost.channels.inbound`), read them safely
(:mod:`.parsing`), route them by contactPointID, original letter and legacy number
(:mod:`.routing`), record every decision (:mod:`.store`, tables in :mod:`.schema`) and mail them
to the functional mailbox over SMTP (:mod:`.mail`). One pass: :func:`process_inbound`; manual
distribution: :func:`manual_queue`, :func:`assign`, :func:`why`. See docs/reply-routing.md.

Attributes are imported lazily, so ``docpost.replies.schema`` (used by the migrations) stays light.
"""

from __future__ import annotations

_EXPORTS = {
    "process_inbound": "docpost.replies.service",
    "assign": "docpost.replies.service",
    "manual_queue": "docpost.replies.service",
    "why": "docpost.replies.service",
    "default_ledger": "docpost.replies.service",
    "parse_inbound": "docpost.replies.parsing",
    "InboundMessage": "docpost.replies.parsing",
    "route": "docpost.replies.routing",
    "Routing": "docpost.replies.routing",
    "Decision": "docpost.replies.routing",
    "Original": "docpost.replies.routing",
    "ReplyStore": "docpost.replies.store",
    "ReplyError": "docpost.replies.errors",
    "InboundRejected": "docpost.replies.errors",
    "InboundMalformed": "docpost.replies.errors",
    "InboundHostile": "docpost.replies.errors",
    "AssignRefused": "docpost.replies.errors",
    "UnknownInbound": "docpost.replies.errors",
    "MailError": "docpost.replies.errors",
    "MailUnavailable": "docpost.replies.errors",
    "MailRefused": "docpost.replies.errors",
    "MailUnsafe": "docpost.replies.errors",
    "MailTooLarge": "docpost.replies.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'docpost.replies' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
