"""Delivery receipts: ``PKO_PostStatus`` events from SF1601, parsed, classified and built.

A receipt arrives either as a bare ``PKO_PostStatus`` document (namespace
:data:`NS_POST_STATUS`) or wrapped in a Beskedfordeler envelope (``ModtagBeskedInput`` with the
receipt base64-encoded in ``Beskeddata/Base64``); :func:`parse_post_status` takes both.
:func:`outcome` maps a receipt to the ledger's final state, or None for an intermediate one
(:class:`UnknownStatus` for a status docpost does not know).
:func:`build_post_status` writes receipts shaped like the real samples (the simulator uses it).

:func:`fetch_and_settle` is the receipt feed: it pages through the feed after the stored cursor,
settles the ledger, and sets aside (to S3, with its reason code) every receipt that cannot be
read or applied, so that one odd receipt never stops the feed. Only infrastructure trouble
(S3, SF1601, the database) stops it, before the cursor moves.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from lxml.builder import ElementMaker

from docpost import xmlsafe
from docpost.errors import DocpostError, internal_code, is_infrastructure

NS_POST_STATUS = "http://serviceplatformen.dk/xml/print/PKO_PostStatus/1/types"
NS_KUVERT = "urn:oio:besked:kuvert:1.0"  # the Beskedfordeler envelope elements
NS_BASE64 = "urn:besked:kuvert:1.0"  # the Base64 payload element (sic: a different URN)
NS_SAGDOK = "urn:oio:sagdok:3.0.0"
NS_STS = "urn:oio:sts:1.0.0"

CHANNEL_DIGITAL = "Digital Post"
CHANNEL_PHYSICAL = "Fysisk Post"

STATUS_DELIVERED_DIGITAL = "Afleveret Digital Post"
STATUS_DELIVERED_PHYSICAL = "Afleveret Fysisk Post"
STATUS_FAILED = "Fejlet"
STATUS_RECEIVED = "Modtaget"  # intermediate: accepted by the platform, not yet delivered
STATUS_IN_PROGRESS = "Under behandling"  # intermediate

#: The print stages of a physical letter (ready for print, handed to the print provider, printed,
#: posted). ASSUMED codes: no real sample of them is at hand; they are recorded on the letter's
#: history like the other intermediate statuses. Replace them with the real codes once seen (an
#: unknown code is set aside as ``receipt.unknown-status``, never lost).
PRINT_STAGE_STATUSES = ("Klar til print", "Overgivet til print", "Printet", "Postlagt")

#: Status codes known to be intermediate (compared case-insensitively, before the ``Fejl...`` and
#: ``Afleveret ...`` prefixes). Any other code that is neither ``Fejl...`` nor ``Afleveret ...``
#: is unknown: the feed sets such a receipt aside (``receipt.unknown-status``) instead of
#: guessing; add a code here once it is known. An intermediate receipt moves no state; it is
#: recorded as an event on its letter's history (``Ledger.apply_receipts(progress=...)``).
INTERMEDIATE_STATUSES = frozenset({STATUS_RECEIVED.lower(), STATUS_IN_PROGRESS.lower(),
                                   *(code.lower() for code in PRINT_STAGE_STATUSES)})

DELIVERED_DIGITAL = "DELIVERED_DIGITAL"
DELIVERED_PHYSICAL = "DELIVERED_PHYSICAL"
FAILED = "FAILED"

_MAX_RECEIPT_BYTES = 5 * 1024 * 1024


class ReceiptError(DocpostError):
    """A receipt that cannot be read. ``code`` is stable, ``message`` plain language."""

    code = "receipt.unreadable"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=f"receipt.{code}")


class MalformedReceipt(ReceiptError):
    """Not well-formed XML, unsafe XML (DTD/entities), or a bad base64 payload."""


class NotAReceipt(ReceiptError):
    """Well-formed XML, but neither ``PKO_PostStatus`` nor a Beskedfordeler envelope of one."""


class IncompleteReceipt(ReceiptError):
    """A ``PKO_PostStatus`` without a field every receipt has."""


class UnknownStatus(ReceiptError):
    """A status code (or, for a delivery, a channel) docpost does not know how to settle."""


class OddReceipt(ReceiptError):
    """A readable receipt the ledger cannot take: for no message of ours, or one never sent."""


@dataclass(frozen=True)
class PostStatus:
    """One ``PKO_PostStatus`` event. ``event_id`` is the envelope's BeskedId when enveloped."""

    transmission_id: str
    message_uuid: str
    status_code: str  # TransaktionsStatusKode
    channel: str | None = None  # KanalKode: "Digital Post" | "Fysisk Post"
    message_id: str | None = None
    transaction_time: dt.datetime | None = None  # TransaktionsDatoTid (aware, UTC)
    correlation_id: str | None = None
    error_code: str | None = None  # FejlDetaljer/FejlKode
    error_text: str | None = None  # FejlDetaljer/FejlTekst
    event_id: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes two receipts the same event (for idempotent processing)."""
        return (self.message_uuid.lower(), self.transmission_id.lower(), self.status_code)


def _safe_parse(xml: bytes) -> etree._Element:
    """Parse untrusted XML: no DTDs, no entity expansion, no network, bounded size."""
    if isinstance(xml, str):
        xml = xml.encode("utf-8")
    if len(xml) > _MAX_RECEIPT_BYTES:
        raise MalformedReceipt("too-large", f"receipt larger than {_MAX_RECEIPT_BYTES} bytes")
    try:
        root = etree.fromstring(xml, xmlsafe.parser(remove_comments=True, remove_pis=True))
    except etree.XMLSyntaxError as exc:
        raise MalformedReceipt("xml-invalid", f"receipt is not well-formed XML ({exc.msg})") from exc
    if root.getroottree().docinfo.doctype:
        raise MalformedReceipt("xml-unsafe", "receipt carries a DOCTYPE; refused")
    return root


def _text(parent: etree._Element, name: str) -> str | None:
    el = parent.find(f"{{{NS_POST_STATUS}}}{name}")
    if el is None or el.text is None:
        return None
    return el.text.strip() or None


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise IncompleteReceipt("bad-time", "TransaktionsDatoTid is not an ISO date-time") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


def _from_post_status(root: etree._Element, event_id: str | None) -> PostStatus:
    transmission_id = _text(root, "TransmissionId")
    message_uuid = _text(root, "MessageUUID")
    status_code = _text(root, "TransaktionsStatusKode")
    for name, value in (("TransmissionId", transmission_id), ("MessageUUID", message_uuid),
                        ("TransaktionsStatusKode", status_code)):
        if value is None:
            raise IncompleteReceipt("missing-field", f"PKO_PostStatus has no {name}")
    errors = root.find(f"{{{NS_POST_STATUS}}}FejlDetaljer")
    return PostStatus(
        transmission_id=transmission_id,
        message_uuid=message_uuid,
        status_code=status_code,
        channel=_text(root, "KanalKode"),
        message_id=_text(root, "MessageId"),
        transaction_time=_parse_time(_text(root, "TransaktionsDatoTid")),
        correlation_id=_text(root, "CorrelationId"),
        error_code=_text(errors, "FejlKode") if errors is not None else None,
        error_text=_text(errors, "FejlTekst") if errors is not None else None,
        event_id=event_id,
    )


def parse_post_status(xml: bytes) -> PostStatus:
    """Parse a ``PKO_PostStatus`` receipt, bare or in a Beskedfordeler envelope."""
    root = _safe_parse(xml)
    if root.tag == f"{{{NS_POST_STATUS}}}PKO_PostStatus":
        return _from_post_status(root, None)
    payload = root.find(f".//{{{NS_KUVERT}}}Beskeddata/{{{NS_BASE64}}}Base64")
    if payload is None:
        raise NotAReceipt("not-post-status", f"unexpected root element {etree.QName(root).localname!r}")
    try:
        inner_xml = base64.b64decode("".join((payload.text or "").split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedReceipt("bad-base64", "envelope payload is not valid base64") from exc
    inner = _safe_parse(inner_xml)
    if inner.tag != f"{{{NS_POST_STATUS}}}PKO_PostStatus":
        raise NotAReceipt("not-post-status", "envelope payload is not a PKO_PostStatus")
    event = root.find(f".//{{{NS_KUVERT}}}BeskedId/{{{NS_SAGDOK}}}UUIDIdentifikator")
    event_id = event.text.strip() if event is not None and event.text else None
    return _from_post_status(inner, event_id)


def outcome(status: PostStatus) -> str | None:
    """The final ledger state a receipt means, or None for an intermediate state.

    ``Fejlet`` (and any ``Fejl...`` code) is FAILED; ``Afleveret ...`` is delivered, by the
    channel in KanalKode (or named in the status code); the codes in
    :data:`INTERMEDIATE_STATUSES` are intermediate. Anything else raises :class:`UnknownStatus`
    (``receipt.unknown-status``; ``receipt.unknown-channel`` for a delivery on no known channel).
    """
    code = (status.status_code or "").strip().lower()
    if code in INTERMEDIATE_STATUSES:
        return None
    if code.startswith("fejl"):
        return FAILED
    if code.startswith("afleveret"):
        channel = (status.channel or "").strip().lower()
        if "fysisk" in code or channel == CHANNEL_PHYSICAL.lower():
            return DELIVERED_PHYSICAL
        if "digital" in code or channel == CHANNEL_DIGITAL.lower():
            return DELIVERED_DIGITAL
        raise UnknownStatus("unknown-channel", "a delivery receipt names no channel docpost knows")
    raise UnknownStatus("unknown-status", "the receipt's status code is not known to docpost")


def format_utc(moment: dt.datetime) -> str:
    """``2023-02-13T11:22:05.154Z``: UTC with milliseconds and ``Z``, as in the real receipts."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: give an aware UTC time")
    moment = moment.astimezone(dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def build_post_status(
    *,
    transmission_id: str,
    message_uuid: str,
    status_code: str,
    channel: str,
    transaction_time: dt.datetime,
    message_id: str | None = None,
    correlation_id: str | None = None,
    error_code: str | None = None,
    error_text: str | None = None,
) -> bytes:
    """A ``PKO_PostStatus`` document like the real samples (no XML declaration, one line)."""
    E = ElementMaker(namespace=NS_POST_STATUS, nsmap={None: NS_POST_STATUS})
    errors = E.FejlDetaljer()
    if error_code or error_text:
        errors.append(E.FejlKode(error_code or ""))
        errors.append(E.FejlTekst(error_text or ""))
    root = E.PKO_PostStatus(
        E.TransmissionId(transmission_id),
        E.MessageUUID(message_uuid),
        E.MessageId(message_id or str(uuid.uuid4())),
        E.KanalKode(channel),
        E.TransaktionsDatoTid(format_utc(transaction_time)),
        E.TransaktionsStatusKode(status_code),
        E.CorrelationId(correlation_id or transmission_id),
        errors,
    )
    return etree.tostring(root, encoding="utf-8")


def wrap_in_envelope(
    post_status_xml: bytes, *, event_id: str, sender_cvr: str, created: dt.datetime
) -> bytes:
    """A Beskedfordeler ``ModtagBeskedInput`` carrying the receipt base64-encoded.

    Only the elements docpost reads (BeskedId, TilladtModtager, Dannelsestidspunkt and the
    payload) are filled in; the real envelope carries more routing data.
    """
    K, S = f"{{{NS_KUVERT}}}", f"{{{NS_SAGDOK}}}"
    root = etree.Element(f"{{{NS_STS}}}ModtagBeskedInput",
                         nsmap={None: NS_SAGDOK, "ns2": NS_KUVERT, "ns4": NS_STS})
    event = etree.SubElement(root, K + "Haendelsesbesked")
    etree.SubElement(etree.SubElement(event, K + "BeskedId"), S + "UUIDIdentifikator").text = event_id
    etree.SubElement(event, K + "BeskedVersion").text = "1.0"
    envelope = etree.SubElement(event, K + "Beskedkuvert")
    filtering = etree.SubElement(envelope, K + "Filtreringsdata")
    receiver = etree.SubElement(filtering, K + "TilladtModtager")
    etree.SubElement(receiver, S + "URNIdentifikator").text = f"urn:oio:cvr:{sender_cvr}"
    delivery = etree.SubElement(envelope, K + "Leveranceinformation")
    created_el = etree.SubElement(delivery, K + "Dannelsestidspunkt")
    etree.SubElement(created_el, S + "TidsstempelDatoTid").text = format_utc(created)
    data = etree.SubElement(event, K + "Beskeddata")
    payload = etree.SubElement(data, f"{{{NS_BASE64}}}Base64", nsmap={None: NS_BASE64})
    payload.set("content-type", "application/xml")
    payload.set("encoding", "UTF-8")
    payload.set("file-type", ".xml")
    payload.text = base64.b64encode(post_status_xml).decode("ascii")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


# --------------------------------------------------------------------------- the feed

RECEIPTS_CURSOR_KEY = "state/receipts-cursor.json"  # {"cursor": <the feed's cursor>}
SET_ASIDE_PREFIX = "receipts/set-aside/"  # <YYYY-MM-DD (UTC)>/<cursor | event id | sha256>.json

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_COUNTS = ("applied", "duplicates", "stale", "pending", "intermediate", "set_aside")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedEntry:
    """One entry of the receipt feed: its cursor, its raw text, and the receipt or why it is unreadable."""

    cursor: int | None
    raw: bytes = field(repr=False)
    status: PostStatus | None = None
    error: Exception | None = None  # set when the entry could not be read (``status`` is then None)

    @property
    def event_id(self) -> str | None:
        """The envelope's BeskedId, when it is a UUID (anything else may be any text)."""
        event = self.status.event_id if self.status is not None else None
        return event.lower() if event and _UUID.match(event) else None

    @property
    def ident(self) -> str:
        """Names the entry in logs and S3 keys: its cursor, else its event id, else a hash of it."""
        if self.cursor is not None:
            return str(self.cursor)
        return self.event_id or "sha256-" + hashlib.sha256(self.raw).hexdigest()[:32]


@dataclass(frozen=True)
class ReceiptPage:
    """One page of the feed: every entry (read or not) and the cursor to ask for next.

    Unpacks as ``statuses, next_cursor`` like the earlier ``(list[PostStatus], cursor)``.
    """

    entries: list[FeedEntry]
    next_cursor: int | None

    @property
    def statuses(self) -> list[PostStatus]:
        return [e.status for e in self.entries if e.status is not None]

    @property
    def unreadable(self) -> list[FeedEntry]:
        return [e for e in self.entries if e.error is not None]

    def __iter__(self) -> Iterator[Any]:
        return iter((self.statuses, self.next_cursor))


def read_feed_entry(entry: Any) -> FeedEntry:
    """A feed entry (``{"cursor": 17, "xml": "<PKO_PostStatus ...>"}``) parsed; never raises.

    A receipt that cannot be read keeps its raw text and the error, for the feed to set aside.
    """
    cursor = entry.get("cursor") if isinstance(entry, dict) else None
    if isinstance(cursor, bool) or not isinstance(cursor, int):
        cursor = None
    xml = entry.get("xml") if isinstance(entry, dict) else None
    if not isinstance(xml, str):
        raw = json.dumps(entry, default=str, ensure_ascii=False).encode("utf-8", "surrogatepass")
        return FeedEntry(cursor, raw, error=ReceiptError("entry-invalid", "the feed entry carries no receipt text"))
    raw = xml.encode("utf-8", "surrogatepass")
    try:
        return FeedEntry(cursor, raw, status=parse_post_status(raw))
    except Exception as exc:  # noqa: BLE001 - this receipt's own problem: the feed sets it aside
        return FeedEntry(cursor, raw, error=exc)


def read_message(raw: bytes) -> FeedEntry:
    """A receipt as delivered by the Beskedfordeler (an AMQP message body: the envelope, or a bare
    ``PKO_PostStatus``), parsed; never raises (an unreadable one keeps its error, for quarantine)."""
    raw = bytes(raw)
    try:
        return FeedEntry(None, raw, status=parse_post_status(raw))
    except Exception as exc:  # noqa: BLE001 - this message's own problem: it is quarantined
        return FeedEntry(None, raw, error=exc)


def reason_of(exc: BaseException) -> tuple[str, str]:
    """(code, plain message) of why a receipt is set aside; a foreign exception by its type only."""
    if isinstance(exc, DocpostError):
        from docpost.privacy import scrub

        return exc.code, scrub(exc.message) or exc.code
    return internal_code(exc), f"unexpected {type(exc).__name__} while handling the receipt"


def set_aside(store: Any, entry: FeedEntry, code: str, message: str, *, actor: str,
              now: dt.datetime | None = None) -> str:
    """Write the receipt and why to ``receipts/set-aside/<date>/<ident>.json``; returns the key.

    An entry already set aside (the same cursor, a page fetched again) is left as first written.
    The raw receipt (it may carry a CPR number) is only ever stored here, base64, never logged.
    S3 trouble raises: a receipt that is neither applied nor set aside must stop the feed.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    key = f"{SET_ASIDE_PREFIX}{now.astimezone(dt.timezone.utc).date().isoformat()}/{entry.ident}.json"
    if store.exists(key):
        return key
    message_uuid = entry.status.message_uuid if entry.status is not None else None
    store.put_json(key, {
        "code": code,
        "message": message,
        "cursor": entry.cursor,
        "event_id": entry.event_id,
        "message_uuid": message_uuid.lower() if message_uuid and _UUID.match(message_uuid) else None,
        "actor": actor,
        "set_aside_at": format_utc(now),
        "raw_sha256": hashlib.sha256(entry.raw).hexdigest(),
        "raw_base64": base64.b64encode(entry.raw).decode("ascii"),
    })
    return key


def load_cursor(store: Any) -> int | None:
    """The stored feed cursor; None (after the feed's acknowledged cursor) when there is none yet."""
    from docpost.storage import ObjectNotFound

    try:
        data = json.loads(store.get_bytes(RECEIPTS_CURSOR_KEY))
    except ObjectNotFound:
        return None
    except ValueError:
        log.warning("receipts: %s is not JSON; starting after the feed's acknowledged cursor",
                    RECEIPTS_CURSOR_KEY)
        return None
    cursor = data.get("cursor") if isinstance(data, dict) else None
    return cursor if isinstance(cursor, int) and not isinstance(cursor, bool) else None


class _Feed:
    """One run of :func:`fetch_and_settle`: the counts, and what one page is turned into."""

    def __init__(self, store: Any, ledger: Any, actor: str) -> None:
        self.store, self.ledger, self.actor = store, ledger, actor
        self.counts: Counter[str] = Counter({name: 0 for name in _COUNTS})
        self.by_code: Counter[str] = Counter()
        self.pending: int | None = None
        self.progress: list[tuple[str, str, str | None, dt.datetime | None]] = []  # intermediate receipts

    def set_aside(self, entry: FeedEntry, exc: BaseException) -> None:
        code, message = reason_of(exc)
        set_aside(self.store, entry, code, message, actor=self.actor)
        self.counts["set_aside"] += 1
        self.by_code[code] += 1
        log.warning("receipts: receipt %s set aside: %s", entry.ident, code)  # code only, never text

    def prepare(self, status: PostStatus) -> Any:
        """The ledger receipt for a readable entry; None if intermediate; raises if odd."""
        from docpost.ledger import MessageState, Receipt

        state = outcome(status)
        if state is None:
            return None
        receipt = Receipt.of(status, state)
        message = self.ledger.get(status.message_uuid)
        key = status.message_uuid.strip().lower()
        # a requeued message was sent before under an earlier generation's messageUUID: its receipt
        # is still the message's (the ledger records it; see Ledger.apply_receipts)
        earlier = message is not None and message.message_uuid != key and any(
            g.message_uuid == key for g in self.ledger.generations(message.id))
        if message is None or (message.message_uuid != key and not earlier):
            raise OddReceipt("unknown-message", "the receipt is for no message in the ledger")
        current = MessageState(message.state)
        if not earlier and current in (MessageState.CANCELLED, MessageState.REJECTED):
            raise OddReceipt("not-sent", f"the receipt is for message {message.message_uuid}, "
                                         f"which docpost never sent ({current.value})")
        return receipt

    def add(self, result: Any) -> None:
        self.counts.update(applied=result.applied, duplicates=result.duplicates, stale=result.stale)
        self.pending = result.pending

    def apply(self, batch: list[tuple[FeedEntry, Any]]) -> None:
        """Apply the page's receipts together (and record its intermediate ones on the letters'
        histories); if the ledger refuses that, one by one."""
        progress, self.progress = self.progress, []
        if not batch and not progress:
            return
        try:
            if progress:
                self.add(self.ledger.apply_receipts([r for _, r in batch], self.actor, progress=progress))
            else:
                self.add(self.ledger.apply_receipts([r for _, r in batch], self.actor))
            return
        except Exception as exc:
            if is_infrastructure(exc):
                raise
            log.warning("receipts: the ledger refused %d receipts together (%s); applying them one by one",
                        len(batch), reason_of(exc)[0])
            if progress:  # the intermediate ones alone (they only add events)
                try:
                    self.add(self.ledger.apply_receipts([], self.actor, progress=progress))
                except Exception as again:
                    if is_infrastructure(again):
                        raise
                    log.warning("receipts: %d intermediate receipts not recorded (%s)", len(progress),
                                reason_of(again)[0])
        for entry, receipt in batch:
            try:
                self.add(self.ledger.apply_receipts([receipt], self.actor))
            except Exception as exc:
                if is_infrastructure(exc):
                    raise
                self.set_aside(entry, exc)

    def settle(self, entries: list[FeedEntry]) -> None:
        """Every entry applied, counted as intermediate, or set aside; raises on infrastructure."""
        batch: list[tuple[FeedEntry, Any]] = []
        for entry in entries:
            if entry.status is None:
                self.set_aside(entry, entry.error or ReceiptError("unreadable", "the receipt cannot be read"))
                continue
            try:
                receipt = self.prepare(entry.status)
            except Exception as exc:
                if is_infrastructure(exc):
                    raise
                self.set_aside(entry, exc)
                continue
            if receipt is None:
                self.counts["intermediate"] += 1
                s = entry.status
                self.progress.append((s.message_uuid, s.status_code, s.channel, s.transaction_time))
            else:
                batch.append((entry, receipt))
        self.apply(batch)


def fetch_and_settle(client: Any, store: Any, ledger: Any, *, actor: str, max_pages: int = 200,
                     page_size: int | None = None) -> dict:
    """Fetch receipts after the stored cursor, settle the ledger, set odd ones aside; move the cursor.

    ``client`` is an :class:`~docpost.channels.sf1601.SF1601Client` (``fetch_receipts`` returns a
    :class:`ReceiptPage`), ``store`` an :class:`~docpost.storage.ObjectStore` (the cursor is kept
    at :data:`RECEIPTS_CURSOR_KEY`), ``ledger`` a :class:`~docpost.ledger.Ledger`.

    Every receipt of a page is applied to the ledger, counted as intermediate, or set aside with
    its reason code (:func:`set_aside`): unreadable (``receipt.xml-invalid``, ...), an unknown
    status (``receipt.unknown-status``), for no message in the ledger
    (``receipt.unknown-message``) or one never sent (``receipt.not-sent``), refused by the ledger
    (its code), or any other exception for that one receipt (``internal.<ExceptionType>``). Only
    then is the cursor stored and acknowledged. Infrastructure trouble (:func:`is_infrastructure`)
    raises before the cursor moves: the next run fetches the page again (applying is idempotent
    and a receipt is set aside once).

    Returns ``pages``, ``receipts`` (entries seen), ``applied``, ``duplicates``, ``stale``,
    ``intermediate``, ``set_aside``, ``set_aside_by_code`` ({code: n}), ``pending`` (receipts in
    the ledger still waiting for their message, after the last page) and ``cursor``.
    """
    ledger.upgrade()
    cursor = load_cursor(store)
    feed = _Feed(store, ledger, actor)
    pages = seen = 0
    for _ in range(max_pages):
        page = client.fetch_receipts(cursor) if page_size is None else client.fetch_receipts(cursor, limit=page_size)
        entries, next_cursor = list(page.entries), page.next_cursor
        if not entries and next_cursor == cursor:
            break
        feed.settle(entries)
        # every receipt of the page is applied or set aside: only now may the cursor pass them
        store.put_json(RECEIPTS_CURSOR_KEY, {"cursor": next_cursor})
        pages, seen = pages + 1, seen + len(entries)
        if next_cursor is not None:
            try:
                client.ack_receipts(next_cursor)
            except Exception as exc:  # noqa: BLE001 - acking is an optimisation; the stored cursor is ours
                log.info("receipts: acknowledging cursor %s failed (%s)", next_cursor, reason_of(exc)[0])
        if next_cursor == cursor or not entries:
            cursor = next_cursor
            break
        cursor = next_cursor
    out: dict[str, Any] = {"pages": pages, "receipts": seen, **feed.counts}
    out["pending"] = feed.pending if feed.pending is not None else 0
    out["set_aside_by_code"] = dict(sorted(feed.by_code.items()))
    out["cursor"] = cursor
    return out
