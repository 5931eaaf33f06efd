"""Delivery receipts: ``PKO_PostStatus`` events from SF1601, parsed, classified and built.

A receipt arrives either as a bare ``PKO_PostStatus`` document (namespace
:data:`NS_POST_STATUS`) or wrapped in a Beskedfordeler envelope (``ModtagBeskedInput`` with the
receipt base64-encoded in ``Beskeddata/Base64``); :func:`parse_post_status` takes both.
:func:`outcome` maps a receipt to the ledger's final state, or None for an intermediate one.
:func:`build_post_status` writes receipts shaped like the real samples (the simulator uses it).
"""

from __future__ import annotations

from docpost.errors import DocpostError

import base64
import binascii
import datetime as dt
import uuid
from dataclasses import dataclass

from lxml import etree
from lxml.builder import ElementMaker

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


_PARSER_OPTIONS = dict(
    resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
    huge_tree=False, remove_comments=True, remove_pis=True,
)


def _safe_parse(xml: bytes) -> etree._Element:
    """Parse untrusted XML: no DTDs, no entity expansion, no network, bounded size."""
    if isinstance(xml, str):
        xml = xml.encode("utf-8")
    if len(xml) > _MAX_RECEIPT_BYTES:
        raise MalformedReceipt("too-large", f"receipt larger than {_MAX_RECEIPT_BYTES} bytes")
    parser = etree.XMLParser(**_PARSER_OPTIONS)
    try:
        root = etree.fromstring(xml, parser)
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
    channel in KanalKode (or named in the status code); anything else is intermediate.
    """
    code = status.status_code.strip()
    if code.lower().startswith("fejl"):
        return FAILED
    if code.lower().startswith("afleveret"):
        channel = (status.channel or "").lower()
        if "fysisk" in code.lower() or channel == CHANNEL_PHYSICAL.lower():
            return DELIVERED_PHYSICAL
        if "digital" in code.lower() or channel == CHANNEL_DIGITAL.lower():
            return DELIVERED_DIGITAL
    return None


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
