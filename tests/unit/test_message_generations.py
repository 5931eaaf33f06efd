"""Message generations without a database: the ids of each generation and what a receipt does."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from docpost.ledger import identity
from docpost.ledger.states import DELIVERED, HANDED_OVER, RECEIPT_MOVES, MessageState, receipt_move

S = MessageState
IDENTITIES = [
    ("sbsys", "SUB-000001", hashlib.sha256(b"one").hexdigest()),
    ("opus-debitor", "2026/11/27-17", hashlib.sha256(b"two").hexdigest().upper()),
    ("dubu", "x", "ab" * 32),
]


def _before(namespace: bytes, source_system: str, submission_id: str, content_hash: str) -> str:
    """The derivation as it was before generations (docpost 0004): generation 0 must give exactly this."""
    ident = "\x1f".join((source_system, submission_id, content_hash.lower())).encode()
    return str(uuid.UUID(bytes=hashlib.sha256(namespace + b"\x00" + ident).digest()[:16], version=4))


@pytest.mark.parametrize("ident", IDENTITIES)
def test_generation_zero_gives_the_ids_of_before(ident):
    assert identity.message_uuid(*ident) == identity.message_uuid(*ident, generation=0) == _before(
        b"docpost:message-uuid:1", *ident)
    assert identity.transaction_id(*ident) == identity.transaction_id(*ident, generation=0) == _before(
        b"docpost:transaction-id:1", *ident)


@pytest.mark.parametrize("ident", IDENTITIES)
def test_each_generation_has_its_own_ids(ident):
    ids = [identity.message_uuid(*ident, generation=g) for g in range(12)]
    ids += [identity.transaction_id(*ident, generation=g) for g in range(12)]
    assert len(set(ids)) == len(ids)
    for value in ids:
        parsed = uuid.UUID(value)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert identity.message_uuid(*ident, generation=3) == identity.message_uuid(*ident, generation=3)  # deterministic
    with pytest.raises(ValueError):
        identity.message_uuid(*ident, generation=-1)


def test_receipts_of_the_current_generation():
    for state in (S.SUBMITTED, S.RETRYING):
        for outcome in (S.DELIVERED_DIGITAL, S.DELIVERED_PHYSICAL, S.FAILED):
            assert receipt_move(state, outcome) == ("applied", outcome)
    assert receipt_move(S.DELIVERED_DIGITAL, S.DELIVERED_DIGITAL) == ("duplicate", None)
    assert receipt_move(S.DELIVERED_DIGITAL, S.FAILED) == ("stale", None)
    assert receipt_move(S.RENDERED, S.DELIVERED_DIGITAL) == (None, None)  # pending until submitted
    assert receipt_move(S.CANCELLED, S.DELIVERED_DIGITAL) == ("stale", None)
    # a DELIVERED receipt overrides a FAILED from where the letter may have reached SF1601
    for failed_from in HANDED_OVER:
        assert receipt_move(S.FAILED, S.DELIVERED_PHYSICAL, failed_from=failed_from) == (
            "applied", S.DELIVERED_PHYSICAL)
    for failed_from in (S.RECEIVED, S.VALIDATED, S.STAMPED, None):  # never left docpost
        assert receipt_move(S.FAILED, S.DELIVERED_DIGITAL, failed_from=failed_from) == ("stale", None)
    assert receipt_move(S.FAILED, S.FAILED, failed_from=S.SUBMITTED) == ("duplicate", None)


def test_receipts_of_an_earlier_generation():
    for state in (S.RECEIVED, S.VALIDATED, S.STAMPED, S.RENDERED, S.RETRYING, S.FAILED):
        assert receipt_move(state, S.DELIVERED_DIGITAL, earlier=True, failed_from=S.STAMPED) == (
            "applied", S.DELIVERED_DIGITAL)
        assert receipt_move(state, S.FAILED, earlier=True) == (
            ("duplicate", None) if state is S.FAILED else ("stale", None))  # never pending, never backwards
    # once the new generation is submitted, its own receipt decides
    assert receipt_move(S.SUBMITTED, S.DELIVERED_DIGITAL, earlier=True) == ("stale", None)
    assert receipt_move(S.DELIVERED_DIGITAL, S.DELIVERED_DIGITAL, earlier=True) == ("duplicate", None)
    assert receipt_move(S.CANCELLED, S.DELIVERED_DIGITAL, earlier=True) == ("stale", None)
    # the table only ever moves to a receipt outcome, and only forwards to a delivery from FAILED
    assert all(outcomes <= {S.DELIVERED_DIGITAL, S.DELIVERED_PHYSICAL, S.FAILED} for outcomes in RECEIPT_MOVES.values())
    assert {k: v for k, v in RECEIPT_MOVES.items() if k[1] is S.FAILED} == {
        ("current", S.FAILED): DELIVERED, ("earlier", S.FAILED): DELIVERED}
