"""Odd inbound messages for reply routing, each with what docpost must make of it.

Every :class:`PoisonInbound` is the raw MeMo a citizen's system could put in the inbound feed and
its expected outcome after a ``docpost_replies`` pass (:func:`docpost.replies.process_inbound`):

- ``MAILED``: mailed safely to ``emne_id``'s functional mailbox, once; the mail's Subject shows
  ``subject_has`` (the title as made safe: one line, no header of its own), its documents are
  offered as ``attachments`` (safe file names, ``types``), its body shows ``body_has``;
- ``MANUAL``: in the manual-distribution queue with reason ``code`` (``inbound.malformed``,
  ``inbound.hostile``, ``mail.too-large``, ...), never mailed.

Either way the message is acknowledged to the inbound service; nothing else is. No mail may carry
an injected header (``Bcc`` or ``X-Poison-Injected``) anywhere. Use with a running SF1601
simulator and whatever runs the pass (the function directly, or the Airflow DAG)::

    from poison.inbound import check, corpus, inject, raw_mail_problems
    injected = inject(sim)                    # SimulatorHandle, httpx.Client or base URL
    ... run docpost_replies ...
    problems = check(injected, ledger=led, mails=sink.messages())
    problems += raw_mail_problems(sink.directory)  # the stored .eml files, byte by byte
    assert not problems, problems
    # acknowledged: acked_ids(sim, "poison:") == set(injected)

``inject(sim, prefix="night-2-")`` injects the corpus again under other ids; ``large=False`` leaves
out the 12 MB message (``too-large-mail``). Routable messages go to Emne 1001 (an open Emne of
config/hierarchy.xml) by its contactPointID, or by a legacy number.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

MAILED, MANUAL = "MAILED", "MANUAL"
KIND_PREFIX = "poison:"  # the simulator kind of every injected message: "poison:<name>"
INJECTED_HEADERS = ("bcc", "x-poison-injected")  # a mail carrying one of these was injected into
EVIL = "poison@example.invalid"
CPR = "2512489996"  # the sender's CPR-shaped number: never in a header, a log line or the tables
MUNICIPALITY_CVR = "29189846"
EMNE_ID = 1001
CREATED = dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.timezone.utc)
NS = "https://DigitalPost.dk/MeMo-1"
_M = f"{{{NS}}}"
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
ZWSP = "\u200b"  # what docpost puts between "=" and "?" of an RFC 2047 look-alike


@dataclass(frozen=True)
class PoisonInbound:
    """One odd inbound message and the outcome a routing pass must give it."""

    name: str
    what: str  # one line: what is odd about it
    memo: bytes = field(repr=False)
    outcome: str  # MAILED | MANUAL
    code: str | None = None  # MANUAL: the manual queue's reason code
    emne_id: int | None = None  # MAILED: the Emne whose mailbox gets it
    subject_has: tuple[str, ...] = ()  # MAILED: substrings of the decoded Subject (ZWSP removed)
    attachments: tuple[str, ...] | None = None  # MAILED: the documents' file names (memo.xml aside)
    types: Mapping[str, str] = field(default_factory=dict)  # file name -> Content-Type
    body_has: tuple[str, ...] = ()  # MAILED: substrings of the plain-text body
    service_id: str | None = None  # an odd id of its own in the inbound feed (else prefix + name)

    def __post_init__(self) -> None:
        assert self.outcome in (MAILED, MANUAL), self.outcome
        assert (self.outcome == MANUAL) == (self.code is not None), self.name
        assert (self.outcome == MAILED) == (self.emne_id is not None), self.name


# --------------------------------------------------------------------------- building MeMo


def _uuid(name: str) -> str:
    digest = hashlib.sha256(f"docpost-poison-inbound/{name}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _contact_point(emne_id: int) -> str:
    from docpost.hierarchy import load_hierarchy

    emne = load_hierarchy().emne(emne_id)
    assert emne is not None, f"Emne {emne_id} is not in the hierarchy"
    return emne.contact_point_id


def memo(name: str, *, label: str = "Henvendelse", text: str | bytes = "Hej kommune.",
         attachments: Iterable[tuple[str, str, bytes]] = (("bilag.pdf", "application/pdf", PDF),),
         contact_point_id: str | None = None, sender_label: str | None = None,
         reply_to: str | None = None, additional: Mapping[str, str] | None = None,
         emne_id: int = EMNE_ID) -> bytes:
    """A valid inbound MeMo (a new message to ``emne_id`` by its contactPointID unless given
    otherwise), with the odd parts given: ``text`` may be raw bytes (any encoding), each
    attachment is (file name, MIME type, bytes), ``additional`` is ReplyData/AdditionalReplyData."""
    from docpost_testbench.simulator.inbound import build_inbound_memo

    raw = build_inbound_memo(
        message_uuid=_uuid(name), sender_id=CPR, sender_id_type="CPR", municipality_cvr=MUNICIPALITY_CVR,
        label="PLACEHOLDER", text="PLACEHOLDER", created=CREATED,
        contact_point_id=_contact_point(emne_id) if contact_point_id is None else (contact_point_id or None),
        reply_to=reply_to)
    root = etree.fromstring(raw)
    root.find(f"{_M}MessageHeader/{_M}label").text = label
    if sender_label is not None:
        root.find(f"{_M}MessageHeader/{_M}Sender/{_M}label").text = sender_label
    if additional:
        reply = root.find(f"{_M}MessageHeader/{_M}ReplyData")
        for key, value in additional.items():
            extra = etree.SubElement(reply, f"{_M}AdditionalReplyData")
            etree.SubElement(extra, f"{_M}label").text = key
            etree.SubElement(extra, f"{_M}value").text = value
    content = root.find(f"{_M}MessageBody/{_M}MainDocument/{_M}File/{_M}content")
    content.text = base64.b64encode(text if isinstance(text, bytes) else text.encode("utf-8")).decode("ascii")
    body = root.find(f"{_M}MessageBody")
    for filename, mime, data in attachments:
        doc = etree.SubElement(body, f"{_M}AdditionalDocument")
        etree.SubElement(doc, f"{_M}label").text = "Bilag"
        f = etree.SubElement(doc, f"{_M}File")
        etree.SubElement(f, f"{_M}encodingFormat").text = mime
        etree.SubElement(f, f"{_M}filename").text = filename
        etree.SubElement(f, f"{_M}language").text = "da"
        etree.SubElement(f, f"{_M}content").text = base64.b64encode(data).decode("ascii")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _raw_label(name: str, raw: bytes, **kw: Any) -> bytes:
    """A MeMo whose title is ``raw`` bytes as they are (what lxml would never write)."""
    return memo(name, label="RAWLABEL", **kw).replace(b"RAWLABEL", raw, 1)


def good(name: str, *, emne_id: int = EMNE_ID, label: str = "Spørgsmål om min sag") -> bytes:
    """An ordinary new message to ``emne_id`` (to mix with the poison)."""
    return memo(name, label=label, text=f"Hej. Et almindeligt spørgsmål ({name}).", emne_id=emne_id)


# --------------------------------------------------------------------------- the corpus


def corpus(*, large: bool = True) -> list[PoisonInbound]:
    """The odd inbound messages (``large``: with the 12 MB one whose mail is too large)."""
    crlf_title = f"Klage\r\nBcc: {EVIL}\r\nX-Poison-Injected: yes"
    ew_title = f"Hej =?utf-8?q?=0D=0ABcc:_{EVIL}=0D=0AX-Poison-Injected:_yes?= slut"
    ew_b = base64.b64encode(f"\r\nBcc: {EVIL}\r\nX-Poison-Injected: yes".encode()).decode()
    spoof_title = f"=?utf-8?b?W1NhZyA5OTktOTk5XQ==?= og =?utf-8?b?{ew_b}?= og =?utf-8?q?nul=00?="
    controls = "Svar\x85NEL\u2028LS\u2029PS\x7fDEL\x9bCSI\u202eRLO\ufeffBOM\tTAB\u200bZW"
    long_title = ("Æblegrød med 😀 og ø " * 20)[:256]
    big_text = ("Linje med æøå.\r\n.\r\nFrom nogen\r\n" + "x" * (2 * 1024 * 1024) + "\x00\x1b[31m\rSLUT")
    long_filename = "A" * 250 + ".pdf"
    nested_mime = (b"Content-Type: text/plain\r\nX-Poison-Injected: yes\r\n\r\n--x--\r\n")
    odd_id = "poison odd id ? # % & " + "x" * 120
    cases = [
        PoisonInbound("title-crlf-injection", "CR LF and a Bcc header in the title",
                      memo("title-crlf-injection", label=crlf_title), MAILED, emne_id=EMNE_ID,
                      subject_has=(f"Klage Bcc: {EVIL} X-Poison-Injected: yes",)),
        PoisonInbound("title-encoded-word-crlf", "an RFC 2047 encoded word in the title that decodes to CR LF + headers",
                      memo("title-encoded-word-crlf", label=ew_title), MAILED, emne_id=EMNE_ID,
                      subject_has=(ew_title,)),
        PoisonInbound("title-encoded-word-spoof", "encoded words: a fake [Sag ...], a base64 CR LF Bcc, a NUL",
                      memo("title-encoded-word-spoof", label=spoof_title), MAILED, emne_id=EMNE_ID,
                      subject_has=(spoof_title,)),
        PoisonInbound("title-control-chars", "C1 controls, NEL, line/paragraph separators, DEL, bidi override, BOM, TAB",
                      memo("title-control-chars", label=controls), MAILED, emne_id=EMNE_ID,
                      subject_has=("Svar NEL LS PS DEL CSI RLO BOM TAB ZW",)),
        PoisonInbound("title-long-non-ascii", "a 256-character title of non-ASCII letters and an emoji",
                      memo("title-long-non-ascii", label=long_title), MAILED, emne_id=EMNE_ID,
                      subject_has=("Æblegrød med 😀 og ø Æblegrød",)),
        PoisonInbound("sender-label-injection", "CR LF and a Bcc header in the sender's name",
                      memo("sender-label-injection", sender_label=f"Borger\r\nBcc: {EVIL}"), MAILED,
                      emne_id=EMNE_ID),
        PoisonInbound("body-2mb", "a 2 MB text of one line, SMTP dot and From lines, NUL, ESC and a lone CR",
                      memo("body-2mb", text=big_text), MAILED, emne_id=EMNE_ID,
                      body_has=("Linje med æøå.", "From nogen", "SLUT")),
        PoisonInbound("body-latin1", "the text document in ISO-8859-1, not UTF-8",
                      memo("body-latin1", text="Hilsen fra Ærø".encode("latin-1")), MAILED, emne_id=EMNE_ID,
                      body_has=("Hilsen fra",)),
        PoisonInbound("attachment-dots-filename", "a document named '..'",
                      memo("attachment-dots-filename", attachments=[("..", "application/pdf", PDF)]),
                      MAILED, emne_id=EMNE_ID, attachments=("dokument",)),
        PoisonInbound("attachment-long-filename", "a document name of 254 characters",
                      memo("attachment-long-filename", attachments=[(long_filename, "application/pdf", PDF)]),
                      MAILED, emne_id=EMNE_ID, attachments=("A" * 116 + ".pdf",)),
        PoisonInbound("attachment-reserved-names", "documents named memo.xml (docpost's own) and CON.txt",
                      memo("attachment-reserved-names", attachments=[("memo.xml", "application/xml", b"<x/>"),
                                                                     ("CON.txt", "text/plain", b"con")]),
                      MAILED, emne_id=EMNE_ID, attachments=("bilag-memo.xml", "_CON.txt")),
        PoisonInbound("attachment-multipart-mime", "a document declared multipart/mixed holding a header",
                      memo("attachment-multipart-mime", attachments=[("bilag.eml", "multipart/mixed", nested_mime)]),
                      MAILED, emne_id=EMNE_ID, attachments=("bilag.eml",),
                      types={"bilag.eml": "application/octet-stream"}),
        PoisonInbound("legacy-superscript-postkasse", "AdditionalReplyData Postkasse '²' (isdigit, not a number)",
                      memo("legacy-superscript-postkasse", contact_point_id="", reply_to=_uuid("unknown-letter"),
                           additional={"Emne": "1001", "Postkasse": "²"}),
                      MAILED, emne_id=EMNE_ID),
        PoisonInbound("odd-service-id", "an inbound id of 140 characters with spaces, ?, # and %",
                      memo("odd-service-id"), MAILED, emne_id=EMNE_ID, service_id=odd_id),
        PoisonInbound("title-nul", "a NUL byte in the title", _raw_label("title-nul", b"Klage\x00Bcc"),
                      MANUAL, code="inbound.malformed"),
        PoisonInbound("title-nul-reference", "&#0; in the title", _raw_label("title-nul-reference", b"Klage&#0;x"),
                      MANUAL, code="inbound.malformed"),
        PoisonInbound("title-c0-controls", "ESC and BS bytes in the title",
                      _raw_label("title-c0-controls", b"Klage\x1b[2J\x08x"), MANUAL, code="inbound.malformed"),
        PoisonInbound("title-2mb", "a 2 MB title", memo("title-2mb", label="T" * (2 * 1024 * 1024)),
                      MANUAL, code="inbound.malformed"),
        PoisonInbound("attachment-path-traversal", "a document named ../../../etc/passwd",
                      memo("attachment-path-traversal", attachments=[("../../../etc/passwd", "text/plain", b"x")]),
                      MANUAL, code="inbound.malformed"),
        PoisonInbound("attachment-crlf-filename", "a document name with CR LF and a header",
                      memo("attachment-crlf-filename",
                           attachments=[("bilag.pdf\r\nX-Poison-Injected: yes", "application/pdf", PDF)]),
                      MANUAL, code="inbound.malformed"),
        PoisonInbound("attachment-mime-injection", "a MIME type with CR LF and a header",
                      memo("attachment-mime-injection",
                           attachments=[("bilag.pdf", "application/pdf\r\nX-Poison-Injected: yes", PDF)]),
                      MANUAL, code="inbound.malformed"),
        PoisonInbound("declared-latin1", "declared ISO-8859-1, in ISO-8859-1",
                      memo("declared-latin1", label="Ærø").decode("utf-8")
                      .replace("encoding='UTF-8'", "encoding='ISO-8859-1'").encode("latin-1"),
                      MANUAL, code="inbound.malformed"),
        PoisonInbound("lying-utf8", "declared UTF-8, in ISO-8859-1",
                      memo("lying-utf8", label="Ærø").decode("utf-8").encode("latin-1"),
                      MANUAL, code="inbound.malformed"),
        PoisonInbound("utf16", "UTF-16 with a byte-order mark",
                      memo("utf16").decode("utf-8").replace("encoding='UTF-8'", "encoding='UTF-16'").encode("utf-16"),
                      MANUAL, code="inbound.malformed"),
        PoisonInbound("xinclude", "an XInclude of /etc/passwd in the title",
                      _raw_label("xinclude", b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
                                             b'href="file:///etc/passwd" parse="text"/>'),
                      MANUAL, code="inbound.hostile"),
    ]
    if large:  # passes parsing; its mail would be ~28 MB, more than the 25 MB a mail server takes
        chunks = [(f"scan-{i}.pdf", "application/pdf", PDF + bytes(3 * 1024 * 1024)) for i in range(3)]
        cases.append(PoisonInbound("too-large-mail", "three 3 MB documents: the mail would be too large",
                                   memo("too-large-mail", attachments=chunks), MANUAL, code="mail.too-large"))
    names = [c.name for c in cases]
    assert len(names) == len(set(names))
    return cases


# --------------------------------------------------------------------------- injecting


def service_id(case: PoisonInbound, prefix: str = "poison-") -> str:
    """The id ``case`` has in the inbound feed."""
    return f"{prefix}{case.service_id}" if case.service_id else f"{prefix}{case.name}"


def _post(sim: Any, path: str, body: dict):  # noqa: ANN202
    if hasattr(sim, "http"):  # SimulatorHandle
        with sim.http(timeout=120) as client:
            return client.post(path, json=body)
    if isinstance(sim, str):
        import httpx

        return httpx.post(sim.rstrip("/") + path, json=body, timeout=120)
    return sim.post(path, json=body)


def _get(sim: Any, path: str, params: dict):  # noqa: ANN202
    if hasattr(sim, "http"):
        with sim.http(timeout=60) as client:
            return client.get(path, params=params)
    if isinstance(sim, str):
        import httpx

        return httpx.get(sim.rstrip("/") + path, params=params, timeout=60)
    return sim.get(path, params=params)


def inject(sim: Any, cases: Iterable[PoisonInbound | tuple[str, bytes]] | None = None, *,
           prefix: str = "poison-", large: bool = True) -> dict[str, PoisonInbound | bytes]:
    """Queue messages in a running simulator's inbound feed; returns {service id: case}.

    ``sim``: a :class:`~docpost_testbench.simulator.runner.SimulatorHandle`, an ``httpx.Client`` whose base
    URL is the simulator, or its base URL (plain HTTP; with mutual TLS pass the handle or a client
    carrying the certificate). ``cases`` defaults to :func:`corpus` (``large``); plain
    ``(id, memo)`` pairs (good messages, say from :func:`good`) can be mixed in, injected under
    ``prefix + id`` with kind ``poison:good``. Each message goes in its own request (the large one
    is 16 MB of JSON). Injecting an id again keeps the first.
    """
    items = list(corpus(large=large) if cases is None else cases)
    out: dict[str, PoisonInbound | bytes] = {}
    for case in items:
        if isinstance(case, PoisonInbound):
            sid, kind, data = service_id(case, prefix), f"{KIND_PREFIX}{case.name}", case.memo
        else:
            sid, kind, data = f"{prefix}{case[0]}", f"{KIND_PREFIX}good", case[1]
        response = _post(sim, "/sim/inbound/inject", {"messages": [
            {"id": sid, "kind": kind, "memo": base64.b64encode(data).decode("ascii")}]})
        response.raise_for_status()
        out[sid] = case if isinstance(case, PoisonInbound) else data
    return out


def acked_ids(sim: Any, kind_prefix: str = KIND_PREFIX) -> dict[str, bool]:
    """{service id: acknowledged} of the feed's messages whose kind starts with ``kind_prefix``."""
    response = _get(sim, "/sim/inbound/status", {"kind_prefix": kind_prefix})
    response.raise_for_status()
    return {m["id"]: m["acked"] for m in response.json()["messages"]}


# --------------------------------------------------------------------------- checking


def header_problems(message) -> list[str]:  # noqa: ANN001 - email.message.EmailMessage
    """Injected headers (Bcc, X-Poison-Injected) or line breaks / NUL in header values, any part."""
    problems = []
    for part in message.walk():
        for name, value in part.items():
            if name.lower() in INJECTED_HEADERS:
                problems.append(f"header {name!r} injected")
            if any(ch in str(value) for ch in "\r\n\x00"):
                problems.append(f"header {name!r} carries a line break or NUL")
    return problems


_HEADER_LINE = re.compile(rb"^(?:bcc|x-poison-injected)[ \t]*:", re.IGNORECASE | re.MULTILINE)


def raw_problems(data: bytes) -> list[str]:
    """A raw header line ``Bcc:`` or ``X-Poison-Injected:``, or a bare CR or NUL, in the mail's
    header block or in the header block of any of its parts (found by the boundaries it declares)."""
    import email
    import email.policy

    data = data.replace(b"\r\n", b"\n")
    parsed = email.message_from_bytes(data, policy=email.policy.compat32)
    boundaries = {part.get_boundary() for part in parsed.walk() if part.is_multipart()} - {None}
    blocks = [data.split(b"\n\n", 1)[0]]
    for boundary in boundaries:
        delimiter = re.compile(rb"\n--" + re.escape(boundary.encode()) + rb"[ \t]*\n")
        blocks += [seg.split(b"\n\n", 1)[0] for seg in delimiter.split(data)[1:]]
    problems = []
    for block in blocks:
        if _HEADER_LINE.search(block):
            problems.append("an injected header line")
        if b"\r" in block or b"\x00" in block:
            problems.append("a bare CR or NUL in a header block")
        if any(len(line) > 998 for line in block.split(b"\n")):
            problems.append("a header line longer than 998 bytes")
    return problems


def raw_mail_problems(directory: str | Path) -> list[str]:
    """:func:`raw_problems` of every stored mail (the loopback sink's ``.eml`` files, its
    duplicates included), byte by byte: what a mail server and a mail reader would see."""
    return [f"{path.name}: {p}" for path in sorted(Path(directory).rglob("*.eml"))
            for p in raw_problems(path.read_bytes())]


def _messages(mails: Iterable) -> list:  # noqa: ANN001
    return [getattr(m, "message", m) for m in mails]


def check(injected: Mapping[str, PoisonInbound | bytes], *, mails: Iterable, ledger=None,  # noqa: ANN001, C901
          store=None) -> list[str]:  # noqa: ANN001
    """What is wrong after a pass: each case's record, reason code and mail against its outcome,
    the good ones (bytes) mailed once, and no injected header in any of ``mails`` (SinkMail or
    EmailMessage). ``ledger`` (a docpost Ledger) or ``store`` (a ReplyStore) reads the records."""
    from docpost.replies.errors import UnknownInbound
    from docpost.replies.service import inbound_key
    from docpost.replies.store import ReplyStore

    store = store or ReplyStore(ledger)
    messages = _messages(mails)
    by_id: dict[str, list] = {}
    for m in messages:
        by_id.setdefault(str(m["X-Docpost-Inbound-Id"]).strip(), []).append(m)
    problems = [f"{m['X-Docpost-Inbound-Id']}: {p}" for m in messages for p in header_problems(m)]
    for sid, case in injected.items():
        key = inbound_key(sid)
        name = case.name if isinstance(case, PoisonInbound) else f"good {sid}"
        try:
            record = store.get(key)
        except UnknownInbound:
            problems.append(f"{name}: never recorded")
            continue
        got = by_id.get(key, [])
        if isinstance(case, PoisonInbound) and case.outcome == MANUAL:
            if (record.state, record.reason_code) != (MANUAL, case.code):
                problems.append(f"{name}: {record.state} {record.reason_code}, expected MANUAL {case.code}")
            if got:
                problems.append(f"{name}: mailed although it must wait in the manual queue")
            continue
        emne_id = case.emne_id if isinstance(case, PoisonInbound) else None
        if record.state != MAILED or (emne_id is not None and record.emne_id != emne_id):
            problems.append(f"{name}: {record.state} to Emne {record.emne_id} ({record.reason_code}), "
                            f"expected MAILED to Emne {emne_id or 'any'}")
        if len(got) != 1:
            problems.append(f"{name}: {len(got)} mails, expected 1")
            continue
        if not isinstance(case, PoisonInbound):
            continue
        mail = got[0]
        subject = str(mail["Subject"]).replace(ZWSP, "")
        problems += [f"{name}: Subject lacks {s!r}" for s in case.subject_has if s not in subject]
        body = mail.get_body(preferencelist=("plain",)).get_content()
        problems += [f"{name}: body lacks {s!r}" for s in case.body_has if s not in body]
        parts = {a.get_filename(): a.get_content_type() for a in mail.iter_attachments()}
        if "memo.xml" not in parts:
            problems.append(f"{name}: no memo.xml")
        names = sorted(n for n in parts if n != "memo.xml")
        if case.attachments is not None and names != sorted(case.attachments):
            problems.append(f"{name}: documents {names}, expected {sorted(case.attachments)}")
        for filename, ctype in case.types.items():
            if parts.get(filename) != ctype:
                problems.append(f"{name}: {filename} is {parts.get(filename)}, expected {ctype}")
        if CPR in str(mail["Subject"]) or CPR in body:
            problems.append(f"{name}: the sender's CPR in the mail's Subject or text")
    return problems


__all__ = ["CPR", "EMNE_ID", "KIND_PREFIX", "MAILED", "MANUAL", "PoisonInbound", "acked_ids", "check",
           "corpus", "good", "header_problems", "inject", "memo", "raw_mail_problems", "raw_problems",
           "service_id"]


# --------------------------------------------------------------------------- through the endpoint


def push_state(sim: Any, ids: Iterable[str] | None = None) -> dict[str, dict | None]:
    """{service id: the simulator's push state} (result, reason_code, message_uuid, ...; None
    while never pushed) of its inbound messages, all or ``ids``."""
    response = _get(sim, "/sim/inbound/status", {})
    response.raise_for_status()
    wanted = None if ids is None else set(ids)
    return {m["id"]: m["push"] for m in response.json()["messages"] if wanted is None or m["id"] in wanted}


def wait_pushed(sim: Any, ids: Iterable[str], timeout: float = 90.0) -> dict[str, dict]:
    """Wait until the PostModtag endpoint answered every one of ``ids``; their push states."""
    ids = set(ids)
    deadline = time.monotonic() + timeout
    while True:
        state = push_state(sim, ids)
        if len(state) == len(ids) and all(p and p["result"] for p in state.values()):
            return state
        assert time.monotonic() < deadline, Counter((p or {}).get("result") for p in state.values())
        time.sleep(0.05)


def check_pushed(cases: Mapping[str, PoisonInbound], state: Mapping[str, dict], *, mails: Iterable,
                 ledger=None, store=None) -> list[str]:  # noqa: ANN001
    """What is wrong after the endpoint answered ``cases`` ({service id: case}; ``state`` from
    :func:`wait_pushed`) and a routing pass ran: a case the contract refuses (``inbound.*``) is
    refused at the door with its code; every other one is accepted, stored under its messageUUID,
    then queued with its code or mailed once to its Emne; no injected header in any mail."""
    from docpost.replies.store import ReplyStore

    store = store or ReplyStore(ledger)
    by_id: dict[str, list] = {}
    for m in _messages(mails):
        by_id.setdefault(str(m["X-Docpost-Inbound-Id"]).strip(), []).append(m)
    problems = [f"{m['X-Docpost-Inbound-Id']}: {p}" for m in _messages(mails) for p in header_problems(m)]
    for sid, case in cases.items():
        push = state[sid]
        if case.outcome == MANUAL and case.code.startswith("inbound."):
            if (push["result"], push["reason_code"]) != ("refused", case.code):
                problems.append(f"{case.name}: {push['result']} {push['reason_code']}, expected refused {case.code}")
            continue
        if push["result"] != "accepted":
            problems.append(f"{case.name}: {push['result']} {push['reason_code']}, expected accepted")
            continue
        record, got = store.get(push["message_uuid"]), by_id.get(push["message_uuid"], [])
        if case.outcome == MANUAL:
            if (record.state, record.reason_code) != (MANUAL, case.code) or got:
                problems.append(f"{case.name}: {record.state} {record.reason_code} ({len(got)} mails), "
                                f"expected MANUAL {case.code} and no mail")
        elif (record.state, record.emne_id, len(got)) != (MAILED, case.emne_id, 1):
            problems.append(f"{case.name}: {record.state} to Emne {record.emne_id} ({len(got)} mails), "
                            f"expected MAILED to Emne {case.emne_id} once")
    return problems
