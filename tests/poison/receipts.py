"""Odd receipts for the receipt feed, each with what docpost must make of it.

Every case is a raw receipt (what the feed carries) and the result expected of
:func:`docpost.receipts.fetch_and_settle`: set aside with ``code``, or counted as ``duplicates``
or ``intermediate`` (``code`` None). Build the list with :func:`odd_receipts`, publish it in a
running SF1601 simulator's feed with :func:`inject`, then compare with :func:`expected_set_aside`
and :func:`expected_counts`::

    cases = odd_receipts(known_uuid=m.message_uuid, duplicate_of=good, not_sent=[cancelled_uuid])
    by_cursor = inject(sim, cases)            # sim: SimulatorHandle, httpx.Client or a base URL
    counts = receipts.fetch_and_settle(client, store, ledger, actor="test")
    assert counts["set_aside_by_code"] == expected_set_aside(cases)

The set-aside objects are ``receipts/set-aside/<UTC date>/<cursor>.json`` (see :func:`set_aside_key`).
The cases that need a message of the ledger are only built when given one.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from docpost import receipts as rc

#: A CPR-shaped number some cases carry: it must never reach a log line, a message or a key.
CPR = "0101901234"
AT = dt.datetime(2026, 11, 28, 22, 30, tzinfo=dt.timezone.utc)
SENDER_CVR = "29189846"


@dataclass(frozen=True)
class PoisonReceipt:
    """One odd receipt: ``xml`` as the feed carries it, and what the feed must make of it."""

    name: str
    xml: bytes
    code: str | None  # the set-aside code expected; None when it is not set aside
    counted_as: str = "set_aside"  # the count of fetch_and_settle it lands in

    def __post_init__(self) -> None:
        assert (self.code is None) == (self.counted_as != "set_aside"), self


def _uuid(seed: str, name: str) -> str:
    return str(uuid.UUID(int=uuid.uuid5(uuid.NAMESPACE_URL, f"docpost-poison/{seed}/{name}").int, version=4))


def good_receipt(message_uuid: str, *, state: str = rc.DELIVERED_DIGITAL, at: dt.datetime = AT,
                 transmission_id: str | None = None, envelope: bool = False,
                 error: tuple[str, str] | None = None) -> bytes:
    """A receipt like the simulator's for ``message_uuid``: delivered digitally or physically, or failed."""
    channel = rc.CHANNEL_PHYSICAL if state == rc.DELIVERED_PHYSICAL else rc.CHANNEL_DIGITAL
    code = {rc.DELIVERED_DIGITAL: rc.STATUS_DELIVERED_DIGITAL, rc.DELIVERED_PHYSICAL: rc.STATUS_DELIVERED_PHYSICAL,
            rc.FAILED: rc.STATUS_FAILED}[state]
    if state == rc.FAILED and error is None:
        error = ("recipient.unknown", "Modtageren findes ikke eller kan ikke modtage post")
    tid = transmission_id or _uuid("good", message_uuid)
    xml = rc.build_post_status(transmission_id=tid, message_uuid=message_uuid, status_code=code, channel=channel,
                               transaction_time=at, correlation_id=tid,
                               error_code=error[0] if error else None, error_text=error[1] if error else None)
    if envelope:
        xml = rc.wrap_in_envelope(xml, event_id=_uuid("event", message_uuid + code), sender_cvr=SENDER_CVR, created=at)
    return xml


def _status(message_uuid: str, status_code: str, channel: str, *, seed: str, name: str,
            error: tuple[str, str] | None = None) -> bytes:
    tid = _uuid(seed, name + "/transmission")
    return rc.build_post_status(transmission_id=tid, message_uuid=message_uuid, status_code=status_code,
                                channel=channel, transaction_time=AT, correlation_id=tid,
                                error_code=error[0] if error else None, error_text=error[1] if error else None)


def _envelope_with(payload_b64: bytes, seed: str, name: str) -> bytes:
    inner = _status(_uuid(seed, name), rc.STATUS_DELIVERED_DIGITAL, rc.CHANNEL_DIGITAL, seed=seed, name=name)
    wrapped = rc.wrap_in_envelope(inner, event_id=_uuid(seed, name + "/event"), sender_cvr=SENDER_CVR, created=AT)
    good = base64.b64encode(inner)
    assert wrapped.count(good) == 1
    return wrapped.replace(good, payload_b64)


def odd_receipts(*, known_uuid: str | None = None, duplicate_of: bytes | None = None,
                 not_sent: Sequence[str] = (), seed: str = "poison") -> list[PoisonReceipt]:
    """The corpus. Message UUIDs are derived from ``seed`` (unknown to any ledger).

    ``known_uuid``: a message of the ledger (submitted or delivered) for the case the ledger
    itself refuses; ``duplicate_of``: a good receipt of the same run, published again;
    ``not_sent``: UUIDs of CANCELLED or REJECTED messages, one case each.
    """
    ns = f'xmlns="{rc.NS_POST_STATUS}"'
    u = lambda name: _uuid(seed, name)  # noqa: E731
    cases = [
        PoisonReceipt("not-xml", b"this is not a receipt at all", "receipt.xml-invalid"),
        PoisonReceipt("empty", b"", "receipt.xml-invalid"),
        PoisonReceipt("truncated", _status(u("truncated"), rc.STATUS_DELIVERED_DIGITAL, rc.CHANNEL_DIGITAL,
                                           seed=seed, name="truncated")[:60], "receipt.xml-invalid"),
        PoisonReceipt("doctype-xxe", (
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<PKO_PostStatus " + ns.encode() + b"><TransmissionId>&x;</TransmissionId></PKO_PostStatus>"),
            "receipt.xml-unsafe"),
        PoisonReceipt("billion-laughs", (
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
            b"<PKO_PostStatus " + ns.encode() + b"><TransmissionId>&c;</TransmissionId></PKO_PostStatus>"),
            "receipt.xml-unsafe"),
        PoisonReceipt("bad-base64-envelope", _envelope_with(b"!!not base64!!", seed, "bad-base64"),
                      "receipt.bad-base64"),
        PoisonReceipt("envelope-of-something-else", _envelope_with(base64.b64encode(b"<Other/>"), seed, "other"),
                      "receipt.not-post-status"),
        PoisonReceipt("wrong-root", b"<Kvittering xmlns='urn:x'><Status>ok</Status></Kvittering>",
                      "receipt.not-post-status"),
        PoisonReceipt("wrong-namespace", _status(u("wrong-ns"), rc.STATUS_DELIVERED_DIGITAL, rc.CHANNEL_DIGITAL,
                                                 seed=seed, name="wrong-ns").replace(
                                                     rc.NS_POST_STATUS.encode(), b"urn:not:post-status"),
                      "receipt.not-post-status"),
        PoisonReceipt("missing-message-uuid", (
            f"<PKO_PostStatus {ns}><TransmissionId>{u('missing')}</TransmissionId>"
            "<TransaktionsStatusKode>Afleveret Digital Post</TransaktionsStatusKode></PKO_PostStatus>").encode(),
            "receipt.missing-field"),
        PoisonReceipt("bad-time", _status(u("bad-time"), rc.STATUS_DELIVERED_DIGITAL, rc.CHANNEL_DIGITAL,
                                          seed=seed, name="bad-time").replace(
                                              rc.format_utc(AT).encode(), b"i morgen tidlig"),
                      "receipt.bad-time"),
        PoisonReceipt("unknown-status", _status(known_uuid or u("unknown-status"), "Sendt til Mars", rc.CHANNEL_DIGITAL,
                                                seed=seed, name="unknown-status"), "receipt.unknown-status"),
        PoisonReceipt("delivered-on-no-channel", _status(known_uuid or u("no-channel"), "Afleveret", "Brevdue",
                                                         seed=seed, name="no-channel"), "receipt.unknown-channel"),
        PoisonReceipt("unknown-transaction", _status(u("unknown-transaction"), rc.STATUS_DELIVERED_DIGITAL,
                                                     rc.CHANNEL_DIGITAL, seed=seed, name="unknown-transaction"),
                      "receipt.unknown-message"),
        PoisonReceipt("unknown-transaction-in-envelope", good_receipt(u("unknown-enveloped"), envelope=True),
                      "receipt.unknown-message"),
        PoisonReceipt("cpr-as-message-uuid", _status(CPR, rc.STATUS_FAILED, rc.CHANNEL_DIGITAL, seed=seed,
                                                     name="cpr-uuid"), "receipt.unknown-message"),
        PoisonReceipt("cpr-in-error-text", _status(u("cpr-text"), rc.STATUS_FAILED, rc.CHANNEL_DIGITAL, seed=seed,
                                                   name="cpr-text",
                                                   error=("recipient.unknown", f"Modtager {CPR} findes ikke")),
                      "receipt.unknown-message"),
        PoisonReceipt("intermediate-for-anyone", _status(u("intermediate"), rc.STATUS_RECEIVED, rc.CHANNEL_DIGITAL,
                                                         seed=seed, name="intermediate"), None, "intermediate"),
    ]
    if known_uuid:
        # the status says digital, the channel is nothing the ledger knows: the ledger refuses it
        cases.append(PoisonReceipt("ledger-refuses-channel", _status(
            known_uuid, rc.STATUS_DELIVERED_DIGITAL, "Brevdue", seed=seed, name="ledger-refuses"),
            "ledger.invalid-field"))
    if duplicate_of is not None:
        cases.append(PoisonReceipt("duplicate", duplicate_of, None, "duplicates"))
    for i, message_uuid in enumerate(not_sent):
        cases.append(PoisonReceipt(f"not-sent-{i}", good_receipt(message_uuid, transmission_id=u(f"not-sent-{i}")),
                                   "receipt.not-sent"))
    return cases


def inject(sim: Any, cases: Iterable[PoisonReceipt | bytes]) -> dict[int, PoisonReceipt | bytes]:
    """Publish receipts at the end of a running simulator's feed; returns {cursor: case}.

    ``sim``: a :class:`~docpost_testbench.simulator.runner.SimulatorHandle`, an ``httpx.Client`` (or a
    FastAPI ``TestClient``) whose base URL is the simulator, or the simulator's base URL (plain
    HTTP; with mutual TLS pass the handle or a client carrying the certificate). Good receipts
    (bytes) can be mixed in, in the order given.
    """
    items = list(cases)
    body = {"receipts": [{"xml": (c.xml if isinstance(c, PoisonReceipt) else c).decode("utf-8")} for c in items]}
    if hasattr(sim, "http"):  # SimulatorHandle
        with sim.http() as client:
            response = client.post("/sim/receipts/inject", json=body)
    elif isinstance(sim, str):
        import httpx

        response = httpx.post(sim.rstrip("/") + "/sim/receipts/inject", json=body, timeout=30)
    else:
        response = sim.post("/sim/receipts/inject", json=body)
    response.raise_for_status()
    cursors = response.json()["cursors"]
    assert len(cursors) == len(items)
    return dict(zip(cursors, items))


def expected_set_aside(cases: Iterable[PoisonReceipt | bytes]) -> Counter[str]:
    """{code: n} of the cases that must be set aside (``set_aside_by_code`` of the feed)."""
    return Counter(c.code for c in cases if isinstance(c, PoisonReceipt) and c.code)


def expected_counts(cases: Iterable[PoisonReceipt | bytes]) -> Counter[str]:
    """{count: n}: how many cases land in ``set_aside``, ``duplicates`` and ``intermediate``."""
    return Counter(c.counted_as for c in cases if isinstance(c, PoisonReceipt))


def set_aside_key(cursor: int, day: dt.date | None = None) -> str:
    """Where the feed sets aside the receipt at ``cursor`` (the UTC date of the run)."""
    day = day or dt.datetime.now(dt.timezone.utc).date()
    return f"{rc.SET_ASIDE_PREFIX}{day.isoformat()}/{cursor}.json"
