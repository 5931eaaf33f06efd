"""Inbound messages in the SF1601 simulator: what citizens and companies send the municipality.

The simulator remembers, for every letter it accepts with a MeMo, the facts a reply needs (the
recipient, the contactPointID the letter carried, its case id, whether a reply was possible).
``POST /sim/inbound/generate`` turns delivered letters into inbound MeMo messages, seeded and
deterministic:

- ``reply``: a reply to a letter (``ReplyData`` with its messageUUID and contactPointID)
- ``new``: a new message written through the contact hierarchy (a contactPointID, no ReplyData)
- ``legacy``: a new message naming an old Emne number instead of a contactPointID
- ``closed_contact_point``: a reply naming a contact point that has since been closed
- ``unknown_contact_point``: a new message to a contactPointID the hierarchy does not know
- ``unknown_original``: a reply to a message docpost never sent (no contactPointID)
- ``reply_not_possible``: a reply to a letter sent with ``ikkeMuligt`` (it carried no ContactPoint)
- ``malformed``: not well-formed XML; ``hostile``: XXE or billion laughs

``POST /sim/inbound/inject`` queues given MeMo bytes as they are (``{"messages": [{"id": ...,
"kind": ..., "memo": "<base64>"}]}``): the test bench's odd messages (see tests/poison/inbound.py),
which no generator should make. Injecting an id twice keeps the first.
``GET /sim/inbound/status?kind_prefix=...`` lists id, kind, pulls and acked of each message.

The Postkomponent's side (SF1606 "Modtag post"): with ``SimulatorConfig.postmodtag_url`` set
(or ``POST /sim/inbound/push {"url": ..., "cert": ..., "key": ..., "ca": ...}``), a background
thread PUSHES every queued message, oldest first, to that PostModtag endpoint in the wire format
of :mod:`docpost.postmodtag.wire`, as the real one calls the case system: a connection error, a
timeout or a 5xx is retried with exponential backoff (capped; ``Retry-After`` honoured up to the
cap) until the endpoint answers; the answer (``accepted``, or ``refused`` with its reason code)
is recorded, and the message counts as acknowledged. ``GET /sim/inbound/status`` shows each
message's ``push`` (result, reason code, attempts), ``GET /sim/inbound/push`` the pusher's
state. With mutual TLS the pusher presents the client certificate given as ``cert``/``key``
(``SimulatorConfig.postmodtag_cert``/``postmodtag_key``/``postmodtag_ca``) and trusts ``ca``.

Without a PostModtag URL the older pull feed serves: ``GET /sim/inbound?limit=N`` lists pending
messages (oldest first, MeMo base64), ``POST /sim/inbound/{id}/ack`` acknowledges one after
processing. An unacknowledged message is delivered again on every pull, so nothing is lost when
the receiver dies halfway.
"""

from __future__ import annotations

import base64
import datetime as dt
import random
import re
import sqlite3
import time
import uuid
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from lxml import etree

from docpost import xmlsafe

NS_MEMO = "https://DigitalPost.dk/MeMo-1"
_M = f"{{{NS_MEMO}}}"

KINDS = ("reply", "new", "legacy", "closed_contact_point", "unknown_contact_point",
         "unknown_original", "reply_not_possible", "malformed", "hostile")
DEFAULT_CREATED = dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.timezone.utc)
MAX_GENERATE = 10_000
MAX_INJECT = 1_000
# an injected id: up to 200 characters, any but "/", "\\" and control characters (odd on purpose,
# but it must still name one path segment of the ack endpoint)
_INJECT_ID = re.compile(r"^[^/\\\x00-\x1f\x7f]{1,200}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS inbound_letters (
    message_uuid TEXT PRIMARY KEY,
    recipient_id TEXT,
    id_type TEXT,
    contact_point_id TEXT,      -- NULL: the letter carried no ContactPoint (ikkeMuligt)
    case_id TEXT,
    label TEXT,
    reply_allowed INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS inbound_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    memo BLOB NOT NULL,
    created_at REAL NOT NULL,
    pulls INTEGER NOT NULL DEFAULT 0,
    acked_at REAL
);
CREATE INDEX IF NOT EXISTS inbound_pending ON inbound_messages (acked_at, seq);
CREATE TABLE IF NOT EXISTS inbound_push (
    id TEXT PRIMARY KEY,        -- inbound_messages.id
    attempts INTEGER NOT NULL DEFAULT 0,
    result TEXT,                -- accepted | refused | failed (NULL: not answered yet)
    status INTEGER,
    reason_code TEXT,
    reason_text TEXT,
    message_uuid TEXT,
    last_error TEXT,
    answered_at REAL
);
"""

PDF_ATTACHMENT = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
                  b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")

HOSTILE_XXE = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE memo:Message [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<memo:Message xmlns:memo="https://DigitalPost.dk/MeMo-1" memoVersion="1.2">
<memo:MessageHeader><memo:messageType>DIGITALPOST</memo:messageType>
<memo:messageUUID>%s</memo:messageUUID><memo:label>&xxe;</memo:label></memo:MessageHeader>
</memo:Message>
"""
HOSTILE_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>
<memo:Message xmlns:memo="https://DigitalPost.dk/MeMo-1" memoVersion="1.2"><memo:MessageHeader>
<memo:label>&lol9;</memo:label><memo:messageUUID>%s</memo:messageUUID></memo:MessageHeader></memo:Message>
"""


class InboundError(Exception):
    """A generate request the simulator cannot fulfil. ``code`` is stable."""

    code = "inbound.invalid-request"


def ensure_schema(db: sqlite3.Connection) -> None:
    db.executescript(SCHEMA)


# ------------------------------------------------------------------ remembering sent letters


def _parser() -> etree.XMLParser:
    # docpost's hardened parser; huge_tree: a request embeds whole PDFs as base64
    return xmlsafe.parser(huge_tree=True)


def _text(el, path: str) -> str | None:
    if el is None:
        return None
    found = el.find(path)
    return found.text.strip() if found is not None and found.text and found.text.strip() else None


def letter_facts(body: bytes) -> dict | None:
    """What a reply needs from an accepted ``kombi_request`` with a MeMo (None without one)."""
    root = etree.fromstring(body, _parser())
    memo = root if root.tag == f"{_M}Message" else root.find(f"{_M}Message")
    if memo is None:
        return None
    header = memo.find(f"{_M}MessageHeader")
    uuid_ = _text(header, f"{_M}messageUUID")
    if not uuid_:
        return None
    contact_point = _text(header, f"{_M}Sender/{_M}ContactPoint/{_M}contactPointID")
    reply = _text(header, f"{_M}reply")
    case_id = _text(header, f"{_M}ContentData/{_M}CaseID/{_M}caseID")
    return {
        "message_uuid": uuid_.lower(),
        "recipient_id": _text(header, f"{_M}Recipient/{_M}recipientID"),
        "id_type": _text(header, f"{_M}Recipient/{_M}idType"),
        "contact_point_id": contact_point.lower() if contact_point else None,
        "case_id": case_id,
        "label": _text(header, f"{_M}label"),
        "reply_allowed": 0 if reply == "false" or not contact_point else 1,
    }


def remember_letter(db: sqlite3.Connection, body: bytes) -> None:
    """Record the reply facts of an accepted letter (ignored when it has no MeMo)."""
    facts = letter_facts(body)
    if facts is None:
        return
    names = ", ".join(facts)
    marks = ", ".join("?" for _ in facts)
    db.execute(f"INSERT OR IGNORE INTO inbound_letters ({names}) VALUES ({marks})",
               tuple(facts.values()))


# ------------------------------------------------------------------ building inbound MeMo


def _sub(parent, tag: str, text: str | None = None):
    el = etree.SubElement(parent, f"{_M}{tag}")
    if text is not None:
        el.text = text
    return el


def _file(parent, mime: str, filename: str, content: bytes) -> None:
    f = _sub(parent, "File")
    _sub(f, "encodingFormat", mime)
    _sub(f, "filename", filename)
    _sub(f, "language", "da")
    _sub(f, "content", base64.b64encode(content).decode("ascii"))


def build_inbound_memo(*, message_uuid: str, sender_id: str, sender_id_type: str,
                       municipality_cvr: str, label: str, text: str, created: dt.datetime,
                       contact_point_id: str | None = None, reply_to: str | None = None,
                       reply_contact_point_id: str | None = None, case_id: str | None = None,
                       attachment: tuple[str, bytes] | None = None) -> bytes:
    """An inbound MeMo message from a citizen or company to the municipality."""
    root = etree.Element(f"{_M}Message", nsmap={"memo": NS_MEMO})
    root.set("memoVersion", "1.2")
    header = _sub(root, "MessageHeader")
    _sub(header, "messageType", "DIGITALPOST")
    _sub(header, "messageUUID", message_uuid)
    _sub(header, "label", label[:256])
    sender = _sub(header, "Sender")
    _sub(sender, "senderID", sender_id)
    _sub(sender, "idType", sender_id_type)
    _sub(sender, "label", "Borger" if sender_id_type == "CPR" else "Virksomhed")
    recipient = _sub(header, "Recipient")
    _sub(recipient, "recipientID", municipality_cvr)
    _sub(recipient, "idType", "CVR")
    _sub(recipient, "label", "Søby Kommune")
    if contact_point_id:
        cp = _sub(recipient, "ContactPoint")
        _sub(cp, "contactPointID", contact_point_id)
    if reply_to:
        rd = _sub(header, "ReplyData")
        _sub(rd, "messageUUID", reply_to)
        if case_id:
            _sub(rd, "caseID", case_id)
        if reply_contact_point_id:
            _sub(rd, "contactPointID", reply_contact_point_id)
    body = _sub(root, "MessageBody")
    _sub(body, "createdDateTime", created.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    main = _sub(body, "MainDocument")
    _sub(main, "label", "Besked")
    _file(main, "text/plain", "besked.txt", text.encode("utf-8"))
    if attachment:
        extra = _sub(body, "AdditionalDocument")
        _sub(extra, "label", "Bilag")
        _file(extra, "application/pdf", attachment[0], attachment[1])
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# ------------------------------------------------------------------ generation


def _counts(request: dict) -> dict[str, int]:
    counts = request.get("counts")
    shares = request.get("shares")
    if counts is None and shares is None:
        raise InboundError("give counts {kind: n} or shares {kind: share} with total")
    if counts is not None:
        out = {str(k): int(v) for k, v in counts.items()}
    else:
        total = int(request.get("total", 0))
        out = {str(k): int(round(float(v) * total)) for k, v in shares.items()}
    unknown = set(out) - set(KINDS)
    if unknown:
        raise InboundError(f"unknown kinds: {', '.join(sorted(unknown))} (known: {', '.join(KINDS)})")
    if any(v < 0 for v in out.values()) or sum(out.values()) > MAX_GENERATE:
        raise InboundError(f"counts must be between 0 and {MAX_GENERATE} in total")
    return out


def _delivered_letters(db: sqlite3.Connection) -> list[dict]:
    rows = db.execute(
        "SELECT f.message_uuid, f.recipient_id, f.id_type, f.contact_point_id, f.case_id, f.label,"
        " f.reply_allowed FROM inbound_letters f WHERE EXISTS (SELECT 1 FROM letters l WHERE"
        " l.message_uuid = f.message_uuid AND l.status = 'delivered') ORDER BY f.message_uuid"
    ).fetchall()
    keys = ("message_uuid", "recipient_id", "id_type", "contact_point_id", "case_id", "label",
            "reply_allowed")
    return [dict(zip(keys, r)) for r in rows]


def generate(db: sqlite3.Connection, request: dict, municipality_cvr: str) -> dict:
    """Generate inbound messages from the delivered letters (idempotent for a seed)."""
    from docpost.hierarchy import load_hierarchy

    counts = _counts(request)
    seed = int(request.get("seed", 0))
    rng = random.Random(seed)
    created0 = (dt.datetime.fromisoformat(request["created"].replace("Z", "+00:00"))
                if request.get("created") else DEFAULT_CREATED)
    hierarchy = load_hierarchy()
    today = created0.date()
    open_emner = [e for e in hierarchy.emner if not hierarchy.is_closed(e, today)]
    closed_emner = [e for e in hierarchy.emner if hierarchy.is_closed(e, today)]
    letters = _delivered_letters(db)
    answerable = [x for x in letters if x["reply_allowed"] and x["contact_point_id"]]
    no_reply = [x for x in letters if not x["reply_allowed"]]
    citizens = sorted({(x["recipient_id"], x["id_type"]) for x in letters if x["recipient_id"]})

    def new_uuid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    generated: list[dict] = []
    missing: dict[str, int] = {}
    index = hostile = 0
    for kind in KINDS:
        for _ in range(counts.get(kind, 0)):
            inbound_id = f"in-{new_uuid()}"
            message_uuid = new_uuid()
            created = created0 + dt.timedelta(seconds=37 * index)
            index += 1
            expect: dict = {"kind": kind}
            memo: bytes | None = None
            common = dict(message_uuid=message_uuid, municipality_cvr=municipality_cvr,
                          created=created, attachment=(f"bilag-{index}.pdf", PDF_ATTACHMENT))
            pool = {"reply": answerable, "closed_contact_point": answerable,
                    "reply_not_possible": no_reply}.get(kind, letters)
            if kind in ("malformed", "hostile"):
                pass
            elif not pool or not citizens:
                missing[kind] = missing.get(kind, 0) + 1
                continue
            if kind in ("reply", "closed_contact_point", "reply_not_possible"):
                letter = pool[rng.randrange(len(pool))]
                cp = letter["contact_point_id"]
                if kind == "closed_contact_point":
                    if not closed_emner:
                        missing[kind] = missing.get(kind, 0) + 1
                        continue
                    cp = closed_emner[rng.randrange(len(closed_emner))].contact_point_id
                text = (f"Hej. Jeg svarer på jeres brev \"{letter['label'] or ''}\". "
                        f"Venlig hilsen (svar nr. {index})")
                memo = build_inbound_memo(
                    **common, sender_id=letter["recipient_id"],
                    sender_id_type=letter["id_type"] or "CPR",
                    label=f"Svar: {letter['label'] or 'brev'}", text=text, contact_point_id=cp,
                    reply_to=letter["message_uuid"], reply_contact_point_id=cp,
                    case_id=letter["case_id"])
                expect.update(reply_to=letter["message_uuid"], contact_point_id=cp,
                              case_id=letter["case_id"])
            elif kind in ("new", "legacy", "unknown_contact_point", "unknown_original"):
                who, id_type = citizens[rng.randrange(len(citizens))]
                emne = open_emner[rng.randrange(len(open_emner))]
                cp = {"new": emne.contact_point_id, "legacy": str(emne.id),
                      "unknown_contact_point": new_uuid(), "unknown_original": None}[kind]
                reply_to = new_uuid() if kind == "unknown_original" else None
                memo = build_inbound_memo(
                    **common, sender_id=who, sender_id_type=id_type or "CPR",
                    label=f"Henvendelse om {emne.label}" if kind in ("new", "legacy") else "Henvendelse",
                    text=f"Hej. Jeg har et spørgsmål (henvendelse nr. {index}).",
                    contact_point_id=cp, reply_to=reply_to)
                expect.update(contact_point_id=cp, reply_to=reply_to)
                if kind in ("new", "legacy"):
                    expect["emne_id"] = emne.id
            elif kind == "malformed":
                memo = (b'<?xml version="1.0" encoding="UTF-8"?>\n<memo:Message xmlns:memo="'
                        + NS_MEMO.encode() + b'" memoVersion="1.2"><memo:MessageHeader>'
                        b"<memo:messageType>DIGITALPOST</memo:messageType><memo:label>afbrudt")
            else:  # hostile: XXE and billion laughs by turns
                template = HOSTILE_XXE if hostile % 2 == 0 else HOSTILE_LAUGHS
                hostile += 1
                memo = template % message_uuid.encode()
                expect["attack"] = "xxe" if template is HOSTILE_XXE else "billion-laughs"
            db.execute("INSERT OR IGNORE INTO inbound_messages (id, kind, memo, created_at)"
                       " VALUES (?, ?, ?, ?)", (inbound_id, kind, memo, time.time()))
            generated.append({"id": inbound_id, "message_uuid": message_uuid, **expect})
    return {"generated": generated, "missing": missing}


def inject(db: sqlite3.Connection, request: dict) -> dict:
    """Queue the given inbound messages as they are (ids and MeMo bytes chosen by the caller)."""
    messages = request.get("messages")
    if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_INJECT:
        raise InboundError(f"give messages: a list of 1 to {MAX_INJECT} {{id, kind, memo}}")
    rows = []
    for entry in messages:
        if not isinstance(entry, dict):
            raise InboundError("each message is an object {id, kind, memo}")
        inbound_id, kind = entry.get("id"), entry.get("kind") or "injected"
        if not isinstance(inbound_id, str) or not _INJECT_ID.match(inbound_id):
            raise InboundError("an id is 1 to 200 characters, without '/', '\\' or control characters")
        if not isinstance(kind, str) or len(kind) > 64:
            raise InboundError("a kind is a string of at most 64 characters")
        try:
            memo = base64.b64decode(entry.get("memo") or "", validate=True)
        except (ValueError, TypeError):
            raise InboundError(f"the memo of {inbound_id[:40]!r} is not base64") from None
        rows.append((inbound_id, kind, memo))
    injected, already = [], []
    for inbound_id, kind, memo in rows:
        done = db.execute("INSERT OR IGNORE INTO inbound_messages (id, kind, memo, created_at)"
                          " VALUES (?, ?, ?, ?)", (inbound_id, kind, memo, time.time())).rowcount
        (injected if done else already).append(inbound_id)
    return {"injected": injected, "already": already}


# ------------------------------------------------------------------ pulling and acknowledging


def pending(db: sqlite3.Connection, limit: int) -> list[tuple[str, bytes]]:
    """The oldest unacknowledged messages (each pull counts as a delivery)."""
    rows = db.execute("SELECT seq, id, memo FROM inbound_messages WHERE acked_at IS NULL"
                      " ORDER BY seq LIMIT ?", (limit,)).fetchall()
    db.executemany("UPDATE inbound_messages SET pulls = pulls + 1 WHERE seq = ?",
                   [(r[0],) for r in rows])
    return [(r[1], bytes(r[2])) for r in rows]


def ack(db: sqlite3.Connection, inbound_id: str) -> bool | None:
    """Acknowledge one message: True (now acked), False (already acked), None (unknown id)."""
    row = db.execute("SELECT acked_at FROM inbound_messages WHERE id = ?", (inbound_id,)).fetchone()
    if row is None:
        return None
    if row[0] is not None:
        return False
    db.execute("UPDATE inbound_messages SET acked_at = ? WHERE id = ?", (time.time(), inbound_id))
    return True


def status(db: sqlite3.Connection, kind_prefix: str = "") -> list[dict]:
    """Every inbound message (no MeMo): id, kind, pulls, acked and its push (None if never
    pushed: result, status, reason_code, reason_text, message_uuid, attempts, last_error);
    optionally of kinds with a prefix."""
    rows = db.execute(
        "SELECT m.id, m.kind, m.pulls, m.acked_at, p.attempts, p.result, p.status, p.reason_code,"
        " p.reason_text, p.message_uuid, p.last_error FROM inbound_messages m LEFT JOIN inbound_push p"
        " ON p.id = m.id WHERE substr(m.kind, 1, ?) = ? ORDER BY m.seq",
        (len(kind_prefix), kind_prefix)).fetchall()
    out = []
    for i, k, p, a, attempts, result, st, code, text, muuid, err in rows:
        push = None if attempts is None else {
            "result": result, "status": st, "reason_code": code, "reason_text": text,
            "message_uuid": muuid, "attempts": attempts, "last_error": err}
        out.append({"id": i, "kind": k, "pulls": p, "acked": a is not None, "push": push})
    return out


# ------------------------------------------------------------------ pushing (the Postkomponent)


class Pusher:
    """Pushes queued inbound messages to a PostModtag endpoint from a thread of its own.

    It works on a SQLite connection of its own to the simulator's file (WAL), so the event loop's
    connection is never shared. It stops when :meth:`stop` is called or the simulator's store is
    closed.
    """

    def __init__(self, sim, *, min_backoff: float = 0.1, max_backoff: float = 2.0,  # noqa: ANN001
                 timeout: float = 30.0) -> None:
        import threading

        self.sim = sim
        self.min_backoff, self.max_backoff, self.timeout = min_backoff, max_backoff, timeout
        self.url: str | None = None
        self.cert: tuple[str, str] | None = None
        self.ca: str | None = None
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = None
        self._lock = threading.Lock()
        self.state = {"pushes": 0, "retries": 0, "accepted": 0, "refused": 0, "failed": 0, "last_error": None}

    def configure(self, url: str | None, cert: tuple[str, str] | None = None, ca: str | None = None) -> None:
        """Push to ``url`` (None: stop pushing), with this client certificate and CA."""
        with self._lock:
            self.url = url.rstrip("/") if url else None
            self.cert = (str(cert[0]), str(cert[1])) if cert else None
            self.ca = str(ca) if ca else None
            self._drop_client()
            if self.url and (self._thread is None or not self._thread.is_alive()):
                import threading

                self._stop.clear()
                self._thread = threading.Thread(target=self._run, daemon=True, name="sim-postmodtag-push")
                self._thread.start()
        self.wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def describe(self) -> dict:
        return {"url": self.url, "tls_client_cert": self.cert is not None,
                "running": bool(self._thread and self._thread.is_alive()), **self.state}

    # -- the worker ----------------------------------------------------------------------

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _http(self):  # noqa: ANN202
        import httpx

        if self._client is None:
            verify = True
            if self.url and self.url.startswith("https"):
                from docpost.channels.sf1601 import tls_context

                verify = tls_context(self.cert, self.ca)
            self._client = httpx.Client(verify=verify, timeout=self.timeout)
        return self._client

    def _alive(self) -> bool:
        try:
            self.sim.store.db.execute("SELECT 1")
            return not self._stop.is_set()
        except sqlite3.ProgrammingError:  # the simulator was stopped: its store is closed
            return False

    def _run(self) -> None:
        db = sqlite3.connect(self.sim.store.path, isolation_level=None, timeout=30)
        db.execute("PRAGMA busy_timeout=30000")
        backoff = self.min_backoff
        try:
            while self._alive():
                with self._lock:
                    url = self.url
                if not url:
                    self.wake.wait(0.5)
                    self.wake.clear()
                    continue
                row = db.execute(
                    "SELECT m.id, m.memo FROM inbound_messages m LEFT JOIN inbound_push p ON p.id = m.id"
                    " WHERE p.result IS NULL AND m.acked_at IS NULL ORDER BY m.seq LIMIT 1").fetchone()
                if row is None:
                    self.wake.wait(0.2)
                    self.wake.clear()
                    continue
                wait = self._push(db, url, row[0], bytes(row[1]))
                if wait is None:
                    backoff = self.min_backoff
                    continue
                self.state["retries"] += 1
                self._stop.wait(min(max(wait, backoff), self.max_backoff))
                backoff = min(backoff * 2, self.max_backoff)
        finally:
            db.close()
            with self._lock:
                self._drop_client()

    def _push(self, db: sqlite3.Connection, url: str, inbound_id: str, memo: bytes) -> float | None:
        """Push one message; None when it was answered for good, else how long to wait."""
        import httpx

        from docpost.postmodtag import wire

        db.execute("INSERT OR IGNORE INTO inbound_push (id) VALUES (?)", (inbound_id,))
        db.execute("UPDATE inbound_push SET attempts = attempts + 1 WHERE id = ?", (inbound_id,))
        self.state["pushes"] += 1
        headers, body = wire.request(memo, transaction=f"sim-{uuid.uuid4()}")
        try:
            with self._lock:
                client = self._http()
            response = client.post(url + wire.PATH, content=body, headers=headers)
        except httpx.HTTPError as exc:  # connection refused or reset, TLS refused, timeout
            error = f"{type(exc).__name__}"
            db.execute("UPDATE inbound_push SET last_error = ? WHERE id = ?", (error, inbound_id))
            self.state["last_error"] = error
            with self._lock:
                self._drop_client()
            return self.min_backoff
        try:
            answer = wire.decode_answer(response.status_code, response.content)
        except wire.WireError as exc:
            self._record(db, inbound_id, "failed", response.status_code, exc.code, str(exc), None)
            return None
        if answer.retry:
            error = f"HTTP {response.status_code} {answer.reason_code}"
            db.execute("UPDATE inbound_push SET last_error = ? WHERE id = ?", (error, inbound_id))
            self.state["last_error"] = error
            try:
                return float(response.headers.get("retry-after") or 0)
            except ValueError:
                return 0.0
        self._record(db, inbound_id, answer.result, response.status_code, answer.reason_code,
                     answer.reason_text, answer.message_uuid)
        return None

    def _record(self, db: sqlite3.Connection, inbound_id: str, result: str, status_code: int,
                code: str | None, text: str | None, message_uuid: str | None) -> None:
        now = time.time()
        db.execute("UPDATE inbound_push SET result = ?, status = ?, reason_code = ?, reason_text = ?,"
                   " message_uuid = ?, answered_at = ? WHERE id = ?",
                   (result, status_code, code, (text or "")[:500] or None, message_uuid, now, inbound_id))
        db.execute("UPDATE inbound_messages SET acked_at = ? WHERE id = ? AND acked_at IS NULL", (now, inbound_id))
        self.state[result] = self.state.get(result, 0) + 1


def counts(db: sqlite3.Connection) -> dict:
    total, acked, pulls = db.execute(
        "SELECT COUNT(*), COUNT(acked_at), COALESCE(SUM(pulls), 0) FROM inbound_messages").fetchone()
    pushed = dict(db.execute("SELECT COALESCE(result, 'unanswered'), COUNT(*) FROM inbound_push"
                             " GROUP BY 1").fetchall())
    return {"total": total, "acked": acked, "pending": total - acked, "pulls": pulls, "pushed": pushed}


def mount(app: FastAPI, sim) -> None:  # noqa: ANN001 - the app's Simulator
    """Add the ``/sim/inbound`` endpoints to the simulator app."""
    db = sim.store.db
    ensure_schema(db)
    pusher = Pusher(sim)
    sim.inbound_pusher = pusher  # the test bench may stop or reconfigure it
    config = sim.config
    if config.postmodtag_url:
        cert, key = config.postmodtag_cert, config.postmodtag_key
        pusher.configure(config.postmodtag_url, (cert, key) if cert and key else None, config.postmodtag_ca)

    @app.get("/sim/inbound/push")
    async def inbound_push_state() -> dict:
        return pusher.describe()

    @app.post("/sim/inbound/push")
    async def inbound_push_configure(request: Request) -> Response:
        import json

        try:
            payload = json.loads(await request.body() or b"{}")
            if not isinstance(payload, dict):
                raise InboundError("body must be a JSON object")
            url, cert, key, ca = (payload.get(k) for k in ("url", "cert", "key", "ca"))
            if not all(v is None or isinstance(v, str) for v in (url, cert, key, ca)) or bool(cert) != bool(key):
                raise InboundError("give url, and cert with key, and ca as strings (or null)")
        except (InboundError, ValueError) as exc:
            return JSONResponse({"error": "inbound.invalid-request", "message": str(exc)}, 400)
        pusher.configure(url, (cert, key) if cert else None, ca)
        return JSONResponse(pusher.describe())

    @app.post("/sim/inbound/generate")
    async def inbound_generate(request: Request) -> Response:
        import json

        try:
            payload = json.loads(await request.body() or b"{}")
            if not isinstance(payload, dict):
                raise InboundError("body must be a JSON object")
            result = generate(db, payload, sim.config.sender_cvr)
        except (InboundError, ValueError, TypeError) as exc:
            return JSONResponse({"error": getattr(exc, "code", "inbound.invalid-request"),
                                 "message": str(exc)}, 400)
        pusher.wake.set()
        return JSONResponse(result)

    @app.post("/sim/inbound/inject")
    async def inbound_inject(request: Request) -> Response:
        import json

        try:
            payload = json.loads(await request.body() or b"{}")
            if not isinstance(payload, dict):
                raise InboundError("body must be a JSON object")
            result = inject(db, payload)
        except (InboundError, ValueError, TypeError) as exc:
            return JSONResponse({"error": getattr(exc, "code", "inbound.invalid-request"),
                                 "message": str(exc)}, 400)
        pusher.wake.set()
        return JSONResponse(result)

    @app.get("/sim/inbound")
    async def inbound_pull(limit: int = 50) -> dict:
        rows = pending(db, max(1, min(limit, 1000)))
        return {"messages": [{"id": i, "memo": base64.b64encode(m).decode("ascii")} for i, m in rows]}

    @app.post("/sim/inbound/{inbound_id}/ack")
    async def inbound_ack(inbound_id: str) -> Response:
        done = ack(db, inbound_id)
        if done is None:
            return JSONResponse({"error": "inbound.unknown-id", "message": "no such inbound message"}, 404)
        return JSONResponse({"id": inbound_id, "acked": True, "already": not done})

    @app.get("/sim/inbound/stats")
    async def inbound_stats() -> dict:
        return counts(db)

    @app.get("/sim/inbound/status")
    async def inbound_status(kind_prefix: str = "") -> dict:
        return {"messages": status(db, kind_prefix)}
