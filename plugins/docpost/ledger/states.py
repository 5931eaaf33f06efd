"""The message state machine: states, legal moves, and what counts as final.

Re-entering the current state is always allowed and is a no-op (idempotent reruns). The only
backwards move is :func:`requeue_target` (an operator's requeue of a FAILED message).
"""

from __future__ import annotations

from enum import StrEnum


class MessageState(StrEnum):
    """Where a message is, from drop to receipt."""

    RECEIVED = "RECEIVED"  # collected from the inbox, identity registered
    REJECTED = "REJECTED"  # invalid submission: reported to the source system, never sent
    VALIDATED = "VALIDATED"  # metadata valid against the XSDs
    STAMPED = "STAMPED"  # reply Postkasse/Emne chosen
    RENDERED = "RENDERED"  # PDF ready, can be sent
    SUBMITTED = "SUBMITTED"  # accepted by SF1601, waiting for a PKO_PostStatus receipt
    RETRYING = "RETRYING"  # a send failed transiently; will be sent again (same transaction id)
    DELIVERED_DIGITAL = "DELIVERED_DIGITAL"  # receipt: in the recipient's Digital Post
    DELIVERED_PHYSICAL = "DELIVERED_PHYSICAL"  # receipt: handed to print (fjernprint)
    FAILED = "FAILED"  # gave up; final until an operator requeues it
    CANCELLED = "CANCELLED"  # stopped by an operator before submission


S = MessageState

#: States nothing moves out of.
FINAL: frozenset[MessageState] = frozenset(
    {S.REJECTED, S.DELIVERED_DIGITAL, S.DELIVERED_PHYSICAL, S.CANCELLED}
)
#: States whose personal data retention may purge (final, and FAILED which is final until requeued).
SETTLED: frozenset[MessageState] = FINAL | {S.FAILED}
#: States before the message left docpost: the only ones an operator may cancel.
BEFORE_SUBMISSION: frozenset[MessageState] = frozenset({S.RECEIVED, S.VALIDATED, S.STAMPED, S.RENDERED})
#: States a delivery receipt (PKO_PostStatus) applies to.
AWAITING_RECEIPT: frozenset[MessageState] = frozenset({S.SUBMITTED, S.RETRYING})
#: Outcomes a receipt can carry.
RECEIPT_OUTCOMES: frozenset[MessageState] = frozenset({S.DELIVERED_DIGITAL, S.DELIVERED_PHYSICAL, S.FAILED})

TRANSITIONS: dict[MessageState, frozenset[MessageState]] = {
    S.RECEIVED: frozenset({S.VALIDATED, S.REJECTED, S.FAILED, S.CANCELLED}),
    S.VALIDATED: frozenset({S.STAMPED, S.REJECTED, S.FAILED, S.CANCELLED}),
    S.STAMPED: frozenset({S.RENDERED, S.REJECTED, S.FAILED, S.CANCELLED}),
    S.RENDERED: frozenset({S.SUBMITTED, S.RETRYING, S.REJECTED, S.FAILED, S.CANCELLED}),
    S.SUBMITTED: frozenset({S.DELIVERED_DIGITAL, S.DELIVERED_PHYSICAL, S.RETRYING, S.FAILED}),
    S.RETRYING: frozenset({S.SUBMITTED, S.DELIVERED_DIGITAL, S.DELIVERED_PHYSICAL, S.FAILED}),
    S.FAILED: frozenset(),  # only requeue leaves FAILED
    S.REJECTED: frozenset(),
    S.DELIVERED_DIGITAL: frozenset(),
    S.DELIVERED_PHYSICAL: frozenset(),
    S.CANCELLED: frozenset(),
}


def is_legal(from_state: MessageState | str, to_state: MessageState | str) -> bool:
    """Whether a message in ``from_state`` may move to ``to_state`` (same state: a no-op, legal)."""
    src, dst = MessageState(from_state), MessageState(to_state)
    return src is dst or dst in TRANSITIONS[src]


def requeue_target(failed_from: MessageState | str | None) -> MessageState:
    """The state a requeued FAILED message goes back to: where it can be resent from.

    A message that failed during or after sending goes back to RENDERED (its PDF is ready and the
    same transaction id is reused); one that failed earlier goes back to where it failed.
    """
    if failed_from is None:
        return S.RENDERED
    src = MessageState(failed_from)
    if src in (S.RECEIVED, S.VALIDATED, S.STAMPED):
        return src
    return S.RENDERED
