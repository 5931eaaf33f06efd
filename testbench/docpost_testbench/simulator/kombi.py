"""What the simulator reads from a ``kombi_request``: shape, schema checks, the letter's facts.

The shape and schema checks are docpost's own (``docpost.fjernprint.parse_kombi_request``,
``docpost.memo.validate_memo``, ``docpost.fjernprint.validate_forsendelse``): the simulator
judges a request by the same schemas the real service enforces.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from lxml import etree

from docpost import xmlsafe

NS_MEMO = "https://DigitalPost.dk/MeMo-1"
NS_FJERNPRINT = "urn:oio:fjernprint:1.0.0"
NS_DKAL = "urn:oio:dkal:1.0.0"
KOMBI_VALG = ("Automatisk Valg", "Digital Post", "Fysisk Post", "NemSMS")


class KombiRejected(Exception):
    """The request is refused synchronously (HTTP 400). ``code`` is the service's FejlKode."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


@dataclass(frozen=True)
class Letter:
    """The facts the simulator needs from an accepted request."""

    kombi_valg: str
    message_uuid: str
    message_id: str | None
    recipient_id: str | None
    label: str | None
    filename: str | None
    pdf: bytes | None  # MeMo main document (digital) or ForsendelseI content (physical)
    physical_pdf: bytes | None


def _as_bytes(part: object) -> bytes | None:
    if part is None:
        return None
    if isinstance(part, bytes):
        return part
    if isinstance(part, str):
        return part.encode("utf-8")
    return etree.tostring(part)  # an lxml element


def _parser() -> etree.XMLParser:
    # docpost's hardened parser; huge_tree: a request embeds whole PDFs as base64
    return xmlsafe.parser(huge_tree=True)


def _text(root: etree._Element, path: str) -> str | None:
    el = root.find(path)
    return el.text.strip() if el is not None and el.text and el.text.strip() else None


def _b64(text: str | None) -> bytes | None:
    if not text:
        return None
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _issues_text(issues: list) -> str:
    head = "; ".join(str(i) for i in issues[:10])
    return head + (f" (and {len(issues) - 10} more)" if len(issues) > 10 else "")


def read_kombi_request(body: bytes) -> Letter:
    """Check a ``kombi_request`` like the service does; :class:`KombiRejected` if refused."""
    from docpost.fjernprint import KombiRequestError, parse_kombi_request, validate_forsendelse
    from docpost.memo import validate_memo

    try:
        request = parse_kombi_request(body)
    except KombiRequestError as exc:
        raise KombiRejected("kombi.invalid", str(exc)[:2000]) from exc
    valg = (request.kombi_valg or "").strip()
    if valg not in KOMBI_VALG:
        raise KombiRejected("kombi.invalid", f"KombiValgKode {valg!r} is not one of {', '.join(KOMBI_VALG)}")
    memo = _as_bytes(request.memo)
    forsendelse = _as_bytes(request.forsendelse)
    if memo is None and valg != "Fysisk Post":
        raise KombiRejected("kombi.invalid", f"KombiValgKode {valg!r} needs a memo:Message")
    if forsendelse is None and valg == "Fysisk Post":
        raise KombiRejected("kombi.invalid", "KombiValgKode 'Fysisk Post' needs a ForsendelseI")
    if memo is not None:
        issues = validate_memo(memo)
        if issues:
            raise KombiRejected("memo.invalid", _issues_text(issues))
    if forsendelse is not None:
        issues = validate_forsendelse(forsendelse)
        if issues:
            raise KombiRejected("forsendelse.invalid", _issues_text(issues))

    m, f, d = f"{{{NS_MEMO}}}", f"{{{NS_FJERNPRINT}}}", f"{{{NS_DKAL}}}"
    message_uuid = message_id = recipient_id = label = filename = pdf = physical_pdf = None
    if memo is not None:
        root = etree.fromstring(memo, _parser())
        header = root.find(f"{m}MessageHeader")
        message_uuid = _text(header, f"{m}messageUUID")
        message_id = _text(header, f"{m}messageID")
        label = _text(header, f"{m}label")
        recipient_id = _text(header, f"{m}Recipient/{m}recipientID")
        for file in root.iterfind(f"{m}MessageBody/{m}MainDocument/{m}File"):
            if _text(file, f"{m}encodingFormat") == "application/pdf" or pdf is None:
                filename = _text(file, f"{m}filename")
                pdf = _b64(_text(file, f"{m}content"))
    if forsendelse is not None:
        root = etree.fromstring(forsendelse, _parser())
        sending = root if root.tag == f"{f}ForsendelseI" else root.find(f".//{f}ForsendelseI")
        if sending is not None:
            physical_pdf = _b64(_text(sending, f"{d}MeddelelseIndholdData"))
            if message_uuid is None:
                message_uuid = _text(sending, f"{f}AfsendelseIdentifikator")
            if recipient_id is None:  # CPR recipients carry 0000000000 here
                ids = sending.xpath(".//*[local-name()='AfsendelseModtager']/*[local-name()="
                                    "'CPRnummerIdentifikator' or local-name()='CVRnummerIdentifikator']")
                recipient_id = ids[0].text.strip() if ids and ids[0].text else None
    if not message_uuid:
        raise KombiRejected("kombi.invalid", "no messageUUID (MeMo) or AfsendelseIdentifikator")
    return Letter(valg, message_uuid.lower(), message_id, recipient_id, label, filename, pdf,
                  physical_pdf)
