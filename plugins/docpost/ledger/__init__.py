"""The message ledger: one authoritative record per letter, from drop to receipt.

SQLAlchemy Core on SQLite (embedded default) or PostgreSQL, migrated by Alembic
(``docpost db upgrade``). Start with :class:`Ledger`::

    ledger = Ledger.from_settings()          # DOCPOST_DB_URL or the docpost_ledger connection
    ledger.upgrade()
    result = ledger.register([Registration(...)], actor="dag:nightly/run-1")
    ledger.transition(result.ids, MessageState.VALIDATED, actor="dag:nightly/run-1")

The recipient is stored only masked (``010190-****``) with an HMAC keyed hash
(``DOCPOST_PSEUDONYM_KEY``); free texts are scrubbed of CPR/CVR-shaped numbers.
"""

from docpost.ledger.errors import (
    ClaimedMessage,
    IllegalTransition,
    InvalidField,
    LedgerConfigError,
    LedgerError,
    UnexpectedState,
    UnknownMessage,
)
from docpost.ledger.identity import message_uuid, pseudonymise, recipient_hash, transaction_id
from docpost.ledger.records import (
    Conflict,
    Event,
    Generation,
    Message,
    MessageRef,
    Move,
    Receipt,
    ReceiptResult,
    RegisteredMessage,
    Registration,
    RegisterResult,
    Report,
    TransitionResult,
)
from docpost.ledger.repository import CHUNK, SETTABLE, Ledger, ledger_at, shared_ledger
from docpost.ledger.states import (
    AWAITING_RECEIPT,
    BEFORE_SUBMISSION,
    FINAL,
    SETTLED,
    TRANSITIONS,
    MessageState,
    is_legal,
    requeue_target,
)

__all__ = [
    "AWAITING_RECEIPT", "BEFORE_SUBMISSION", "CHUNK", "FINAL", "SETTABLE", "SETTLED", "TRANSITIONS",
    "ClaimedMessage", "Conflict", "Event", "Generation", "IllegalTransition", "InvalidField", "Ledger", "LedgerConfigError", "LedgerError",
    "Message", "MessageRef", "MessageState", "Move", "Receipt", "ReceiptResult", "RegisterResult",
    "RegisteredMessage", "Registration", "Report", "TransitionResult", "UnexpectedState", "UnknownMessage",
    "is_legal", "ledger_at", "message_uuid", "pseudonymise", "recipient_hash", "requeue_target", "shared_ledger", "transaction_id",
]
