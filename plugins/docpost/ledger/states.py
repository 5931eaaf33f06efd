"""The message state machine: states, legal moves, and what counts as final.

Re-entering the current state is always allowed and is a no-op (idempotent reruns). The only
backwards move is :func:`requeue_target` (an operator's requeue of a FAILED message, which starts
a new generation: new transaction id and messageUUID). Receipts move messages by their own table,
:data:`RECEIPT_MOVES` (see :func:`receipt_move`): a DELIVERED receipt is evidence the letter
arrived, so it also settles a FAILED message that may have reached SF1601, and a receipt for an
earlier generation settles a message whose resend has not left docpost yet.
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
#: Outcomes saying the letter arrived.
DELIVERED: frozenset[MessageState] = frozenset({S.DELIVERED_DIGITAL, S.DELIVERED_PHYSICAL})
#: States the delivery stage (or a receipt) works from: a message FAILED from one of these may have
#: reached SF1601 (gave up after max attempts, a refusal, a FAILED receipt), so a DELIVERED receipt
#: for it overrides the FAILED. A FAILED from before (RECEIVED, VALIDATED, STAMPED) never left docpost.
HANDED_OVER: frozenset[MessageState] = frozenset({S.RENDERED, S.SUBMITTED, S.RETRYING})

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


#: Whose receipt it is: the message's current generation, or an earlier one (before a requeue).
CURRENT, EARLIER = "current", "earlier"

#: The moves a receipt makes, as data: (whose receipt, the message's state) -> the outcomes that
#: move it (to that outcome). Anything else is recorded only: ``duplicate`` when the message is in
#: that outcome already, ``pending`` (applied later) for a current-generation receipt on a message
#: not submitted yet, ``stale`` otherwise (the state is never moved backwards).
#:
#: - current generation, SUBMITTED / RETRYING: any outcome (the ordinary receipt);
#: - current generation, FAILED: a DELIVERED receipt overrides the FAILED if it failed from
#:   :data:`HANDED_OVER` (checked by :func:`receipt_move`), since it says the letter arrived;
#: - earlier generation, a resend that has not left docpost (RECEIVED .. RENDERED, RETRYING) or a
#:   FAILED one: a DELIVERED receipt settles it as delivered: the earlier letter did arrive, the
#:   resend is not needed. Once the new generation is SUBMITTED its own receipt decides.
RECEIPT_MOVES: dict[tuple[str, MessageState], frozenset[MessageState]] = {
    (CURRENT, S.SUBMITTED): RECEIPT_OUTCOMES,
    (CURRENT, S.RETRYING): RECEIPT_OUTCOMES,
    (CURRENT, S.FAILED): DELIVERED,
    **{(EARLIER, state): DELIVERED
       for state in (S.RECEIVED, S.VALIDATED, S.STAMPED, S.RENDERED, S.RETRYING, S.FAILED)},
}


def receipt_move(
    state: MessageState | str,
    outcome: MessageState | str,
    *,
    earlier: bool = False,
    failed_from: MessageState | str | None = None,
) -> tuple[str | None, MessageState | None]:
    """What a receipt with ``outcome`` does to a message in ``state``: ``(disposition, move to)``.

    ``earlier``: the receipt is for an earlier generation's messageUUID. ``failed_from``: where a
    FAILED message failed. Dispositions: ``applied`` (moves to the returned state),
    ``duplicate``, ``stale`` (recorded, state kept) or None (pending: applied when the message
    is submitted).
    """
    src, out = MessageState(state), MessageState(outcome)
    whose = EARLIER if earlier else CURRENT
    if out in RECEIPT_MOVES.get((whose, src), frozenset()):
        if src is S.FAILED and whose == CURRENT and (failed_from is None or MessageState(failed_from) not in HANDED_OVER):
            return "stale", None
        return "applied", out
    if src is out:
        return "duplicate", None
    if whose == CURRENT and src in BEFORE_SUBMISSION:
        return None, None
    return "stale", None


def is_legal(from_state: MessageState | str, to_state: MessageState | str) -> bool:
    """Whether a message in ``from_state`` may move to ``to_state`` (same state: a no-op, legal)."""
    src, dst = MessageState(from_state), MessageState(to_state)
    return src is dst or dst in TRANSITIONS[src]


def requeue_target(failed_from: MessageState | str | None) -> MessageState:
    """The state a requeued FAILED message goes back to: where its new generation starts.

    A requeue starts a new generation (new transaction id and messageUUID), and the letter's PDF
    carries its messageUUID (the short reference, under ``rendered/<messageUUID>.pdf``). So a
    message that failed at or after rendering goes back to STAMPED: the render stage renders the
    new generation's letter, and the delivery stage sends it as a new transaction. One that failed
    earlier goes back to where it failed.
    """
    if failed_from is None:
        return S.STAMPED
    src = MessageState(failed_from)
    if src in (S.RECEIVED, S.VALIDATED, S.STAMPED):
        return src
    return S.STAMPED
