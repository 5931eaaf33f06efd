"""What goes into the ledger and what comes out of it: plain frozen dataclasses."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from docpost.ledger.states import MessageState
from docpost.model import IdType, Submission
from docpost.privacy import mask_identifier


@dataclass(frozen=True)
class Registration:
    """A submission to register as a message (state RECEIVED).

    ``recipient_identifier`` is the clear CPR/CVR: the ledger stores only its mask and keyed
    hash. It may be left out when the manifest is not parsed yet and set later with the
    ``recipient`` field of a transition.
    """

    source_system: str
    submission_id: str
    submission_date: dt.date
    content_hash: str
    s3_prefix: str
    recipient_id_type: IdType | str | None = None
    recipient_identifier: str | None = field(default=None, repr=False)
    case_number: str | None = None
    case_uuid: str | None = None
    document_number: str | None = None
    document_uuid: str | None = None
    document_type: str | None = None
    title: str | None = field(default=None, repr=False)
    listing: dict[str, tuple[int, str]] | None = field(default=None, repr=False)  # name -> (size, ETag)

    @classmethod
    def from_submission(cls, submission: Submission) -> Registration:
        """The registration of a parsed submission (recipient, case and document refs included)."""
        key, manifest, case = submission.key, submission.manifest, submission.case
        return cls(
            source_system=key.source_system,
            submission_id=key.submission_id,
            submission_date=key.date,
            content_hash=submission.content_hash,
            s3_prefix=key.prefix,
            recipient_id_type=manifest.recipient.id_type,
            recipient_identifier=manifest.recipient.identifier,
            case_number=(case.case_number if case else None) or manifest.case_reference,
            case_uuid=case.case_uuid if case else None,
            document_number=case.document_number if case else None,
            document_uuid=case.document_uuid if case else None,
            document_type=manifest.document_type,
            title=manifest.title,
        )

    @property
    def recipient_masked(self) -> str | None:
        return mask_identifier(self.recipient_identifier) if self.recipient_identifier else None


@dataclass(frozen=True)
class RegisteredMessage:
    """A registered message: new (``created``) or the one already there for this identity."""

    id: int
    message_uuid: str
    transaction_id: str
    source_system: str
    submission_id: str
    state: MessageState
    created: bool


@dataclass(frozen=True)
class Conflict:
    """A submission id seen again with different content: recorded, never registered."""

    id: int
    message_id: int
    source_system: str
    submission_id: str
    submission_date: dt.date
    existing_content_hash: str
    conflicting_content_hash: str
    s3_prefix: str
    detected_at: dt.datetime
    actor: str


@dataclass(frozen=True)
class RegisterResult:
    """Outcome of :meth:`Ledger.register`: messages in input order, and the conflicts."""

    messages: list[RegisteredMessage]
    conflicts: list[Conflict]

    @property
    def created(self) -> list[RegisteredMessage]:
        return [m for m in self.messages if m.created]

    @property
    def existing(self) -> list[RegisteredMessage]:
        return [m for m in self.messages if not m.created]

    @property
    def ids(self) -> list[int]:
        return [m.id for m in self.messages]


@dataclass(frozen=True)
class MessageRef:
    """The keys a stage needs to work on a message (what ``claim`` hands out)."""

    id: int
    message_uuid: str
    transaction_id: str
    source_system: str
    submission_id: str
    submission_date: dt.date
    s3_prefix: str
    state: MessageState
    attempts: int
    faults: int = 0  # unexpected failures while working on it (see Ledger.hold)
    claim_token: str | None = field(default=None, compare=False)  # the fence a claim hands out (Ledger.claim)


@dataclass(frozen=True)
class Message:
    """A message row as stored (recipient only masked and hashed)."""

    id: int
    message_uuid: str
    transaction_id: str
    source_system: str
    submission_id: str
    submission_date: dt.date
    content_hash: str
    s3_prefix: str
    state: MessageState
    channel: str | None
    attempts: int
    recipient_id_type: str | None
    recipient_masked: str | None
    recipient_hash: str | None = field(repr=False)
    title: str | None = field(repr=False)
    document_type: str | None
    case_number: str | None
    case_uuid: str | None
    document_number: str | None
    document_uuid: str | None
    reason_code: str | None
    reason_text: str | None
    reply_type: str | None
    reply_postkasse_id: int | None
    reply_emne_id: int | None
    reply_contact_point_id: str | None
    pdf_sha256: str | None
    receipt_status: str | None
    failed_from: str | None
    claimed_by: str | None
    claim_token: str | None
    claim_expires_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    state_changed_at: dt.datetime
    submitted_at: dt.datetime | None
    purged_at: dt.datetime | None
    listing: dict[str, tuple[int, str]] | None = field(default=None, repr=False)  # as registered
    faults: int = 0
    generation: int = 0  # 0 until an operator requeues it; its ids are the current generation's

    @property
    def ref(self) -> MessageRef:
        return MessageRef(
            self.id, self.message_uuid, self.transaction_id, self.source_system, self.submission_id,
            self.submission_date, self.s3_prefix, self.state, self.attempts, self.faults,
        )


@dataclass(frozen=True)
class Generation:
    """An earlier generation of a requeued message: the ids it was sent with, and how it ended.

    The message row carries the current generation's ids; a lookup or a receipt by one of these
    still finds the message.
    """

    message_id: int
    generation: int
    message_uuid: str
    transaction_id: str
    ended_at: dt.datetime
    ended_state: MessageState
    failed_from: str | None
    reason_code: str | None
    ended_by: str


@dataclass(frozen=True)
class Event:
    """One transition in a message's history."""

    id: int
    message_id: int
    from_state: MessageState | None
    to_state: MessageState
    at: dt.datetime
    actor: str
    detail: str | None


@dataclass(frozen=True)
class Move:
    """One message's transition with its own detail and column values (bulk per-message moves)."""

    message_id: int
    detail: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TransitionResult:
    """Which messages moved and which already were in the target state (no-op)."""

    moved: list[int]
    unchanged: list[int]
    #: fenced writes only (``fence=``): rows whose claim was lost (another worker holds them now, or
    #: nobody): skipped, never written
    lost: list[int] = field(default_factory=list)
    #: fenced writes only: rows moved meanwhile by someone else (a receipt, an operator) to a state
    #: this move does not apply to: a no-op for them
    settled: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Receipt:
    """A delivery outcome (PKO_PostStatus) for a message, by its MeMo messageUUID."""

    message_uuid: str
    state: MessageState  # DELIVERED_DIGITAL | DELIVERED_PHYSICAL | FAILED
    channel: str | None = None  # digital | physical (KanalKode "Digital Post" / "Fysisk Post" accepted)
    status_code: str | None = None  # TransaktionsStatusKode, e.g. "Afleveret Digital Post"
    error_code: str | None = None  # FejlKode
    error_text: str | None = field(default=None, repr=False)  # FejlTekst; scrubbed before storage
    at: dt.datetime | None = None  # TransaktionsDatoTid (UTC)

    @classmethod
    def of(cls, status: Any, state: MessageState | str) -> Receipt:
        """A receipt from a parsed PKO_PostStatus (``docpost.receipts.PostStatus``) and its outcome."""
        return cls(
            message_uuid=status.message_uuid, state=MessageState(state), channel=getattr(status, "channel", None),
            status_code=getattr(status, "status_code", None), error_code=getattr(status, "error_code", None),
            error_text=getattr(status, "error_text", None), at=getattr(status, "transaction_time", None),
        )


@dataclass(frozen=True)
class ReceiptResult:
    """What :meth:`Ledger.apply_receipts` did.

    ``applied``: moved a message; ``duplicates``: seen before, or the message already had that
    outcome; ``stale``: the message had already settled differently (kept, not applied);
    ``pending``: the message is unknown or not yet submitted (applied later).
    """

    applied: int
    duplicates: int
    stale: int
    pending: int


@dataclass(frozen=True)
class Report:
    """Counts for one submission date (``docpost report``)."""

    date: dt.date
    total: int
    by_state: dict[str, int]
    by_channel: dict[str, int]
    by_source_system: dict[str, dict[str, int]]
    conflicts: list[Conflict]
    pending_receipts: int
    awaiting_receipt_overdue: int
    #: letters kept in their state after unexpected failures (``internal.*``), by code: tried again
    held: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "date": self.date.isoformat(),
            "total": self.total,
            "by_state": self.by_state,
            "by_channel": self.by_channel,
            "by_source_system": self.by_source_system,
            "conflicts": [
                {k: (v.isoformat() if isinstance(v, dt.date | dt.datetime) else v) for k, v in asdict(c).items()}
                for c in self.conflicts
            ],
            "pending_receipts": self.pending_receipts,
            "awaiting_receipt_overdue": self.awaiting_receipt_overdue,
            "held": self.held,
        }
