"""Safe reading of an inbound MeMo message: refuse hostile XML, check the schema, take the facts.

Parsing goes through :func:`docpost.xmlsafe.parse` (no DTD, no entities, no network, limits on
size and depth) and :func:`docpost.memo.validate_tree` (docpost's MeMo schema). A hostile
document raises :class:`InboundHostile`, anything else unreadable :class:`InboundMalformed`;
neither message quotes the document (it may hold personal data).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from docpost.replies.errors import InboundHostile, InboundMalformed

NS_MEMO = "https://DigitalPost.dk/MeMo-1"
_M = f"{{{NS_MEMO}}}"
MAX_INBOUND_BYTES = 64 * 1024 * 1024
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_LEGACY = re.compile(r"^\s*(?:(\d{3})\s*[/.-]\s*)?(\d{4})\s*$")
_HOSTILE_CODES = frozenset({"xml.dtd-forbidden", "xml.xinclude-forbidden", "xml.too-deep",
                            "xml.too-many-elements", "xml.too-large"})


@dataclass(frozen=True)
class Attachment:
    """A document of the message: file name, MIME type, bytes, and its label."""

    filename: str
    mime: str
    content: bytes = field(repr=False)
    label: str | None = None


@dataclass(frozen=True)
class InboundMessage:
    """The facts routing and mailing need from one inbound MeMo message.

    ``sender_id`` is the clear CPR/CVR: it is never stored or logged (see ``sender_masked``).
    """

    message_uuid: str
    label: str = field(repr=False)
    sender_id: str = field(repr=False)
    sender_id_type: str
    contact_point_id: str | None
    reply_to: str | None
    reply_case_id: str | None
    legacy: tuple[int | None, int] | None  # (Postkasse, Emne) numbers from an old address
    text: str = field(repr=False)
    attachments: tuple[Attachment, ...] = field(repr=False, default=())
    created: str | None = None

    @property
    def is_reply(self) -> bool:
        return self.reply_to is not None

    @property
    def sender_masked(self) -> str:
        from docpost.privacy import mask_identifier

        return mask_identifier(self.sender_id)


def _text(el, path: str) -> str | None:
    if el is None:
        return None
    found = el.find(path)
    return found.text.strip() if found is not None and found.text and found.text.strip() else None


def legacy_number(value: str | None) -> tuple[int | None, int] | None:
    """``"1001"`` or ``"100/1001"`` (an old Emne or Postkasse/Emne number), else None."""
    if not value:
        return None
    match = _LEGACY.match(value)
    if not match:
        return None
    return (int(match.group(1)) if match.group(1) else None, int(match.group(2)))


def is_contact_point(value: str | None) -> bool:
    """True for what is shaped like an NgDP contactPointID (a UUID) rather than a legacy number."""
    return bool(value) and legacy_number(value) is None


def _files(container) -> list[Attachment]:
    out = []
    label = _text(container, f"{_M}label")
    for f in container.iterfind(f"{_M}File"):
        try:
            content = base64.b64decode("".join((_text(f, f"{_M}content") or "").split()), validate=True)
        except (binascii.Error, ValueError):
            raise InboundMalformed("a document's content is not valid base64") from None
        out.append(Attachment(_text(f, f"{_M}filename") or "dokument",
                              _text(f, f"{_M}encodingFormat") or "application/octet-stream",
                              content, label))
    return out


def parse_inbound(data: bytes) -> InboundMessage:
    """Read an inbound MeMo message safely, or raise :class:`InboundHostile` / :class:`InboundMalformed`."""
    from docpost import xmlsafe
    from docpost.memo import validate_tree

    try:
        # huge_tree: up to 64 MB, attachments are base64 text nodes beyond libxml2's 10 MB limit
        tree = xmlsafe.parse(data, max_bytes=MAX_INBOUND_BYTES, huge_tree=True)
    except xmlsafe.XMLSafetyError as exc:
        where = f" (line {exc.line})" if exc.line else ""
        if exc.code in _HOSTILE_CODES:
            raise InboundHostile(f"refused before parsing: {exc.code}{where}") from None
        raise InboundMalformed(f"not readable XML: {exc.code}{where}") from None
    issues = validate_tree(tree)
    if issues:
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        raise InboundMalformed(f"not a valid MeMo message: {issues[0]}{more}")
    root = tree.getroot()
    header = root.find(f"{_M}MessageHeader")
    sender_id = _text(header, f"{_M}Sender/{_M}senderID")
    if not sender_id:
        raise InboundMalformed("the message names no sender")
    reply = header.find(f"{_M}ReplyData")
    reply_to = _text(reply, f"{_M}messageUUID")
    contact_point = (_text(header, f"{_M}Recipient/{_M}ContactPoint/{_M}contactPointID")
                     or _text(reply, f"{_M}contactPointID"))
    legacy = legacy_number(contact_point)
    if legacy is None and reply is not None:  # AdditionalReplyData label Emne / Postkasse
        extra = {(_text(a, f"{_M}label") or "").lower(): _text(a, f"{_M}value")
                 for a in reply.iterfind(f"{_M}AdditionalReplyData")}
        emne = legacy_number(extra.get("emne"))
        postkasse = extra.get("postkasse")
        if emne is not None:
            legacy = (int(postkasse) if postkasse and len(postkasse) <= 9 and postkasse.isascii()
                      and postkasse.isdigit() else None,
                      emne[1])
    body = root.find(f"{_M}MessageBody")
    documents: list[Attachment] = []
    text = ""
    if body is not None:
        main = body.find(f"{_M}MainDocument")
        for att in _files(main) if main is not None else []:
            if not text and att.mime.split(";")[0].strip().lower() == "text/plain":
                text = att.content.decode("utf-8", errors="replace")
            else:
                documents.append(att)
        for tag in ("AdditionalDocument", "TechnicalDocument"):
            for el in body.iterfind(f"{_M}{tag}"):
                documents.extend(_files(el))
    return InboundMessage(
        message_uuid=(_text(header, f"{_M}messageUUID") or "").lower(),
        label=_text(header, f"{_M}label") or "",
        sender_id=sender_id,
        sender_id_type=(_text(header, f"{_M}Sender/{_M}idType") or "").upper()[:3],
        contact_point_id=contact_point.lower() if contact_point and legacy is None else contact_point,
        reply_to=reply_to.lower() if reply_to else None,
        reply_case_id=_text(reply, f"{_M}caseID"),
        legacy=legacy,
        text=text,
        attachments=tuple(documents),
        created=_text(body, f"{_M}createdDateTime"),
    )
