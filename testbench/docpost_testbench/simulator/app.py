"""The SF1601 simulator as a FastAPI app: the real endpoints plus ``/sim/*`` for tests and demo.

Real shapes: SAML token, access token, ``POST /service/KombiPostAfsend_1/kombi`` (headers,
``kombi_request`` checked against docpost's schemas, synchronous XML answer), PostForespoerg.
Simulator extras: the recipients' mailboxes, delivery statistics, the receipt feed with cursor
paging and acknowledgement, and switchable faults. Request handling runs on the event loop
without awaiting between the duplicate check and the record, so deduplication is race-free.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import random
import re
import secrets
import tempfile
import time
import urllib.parse
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from lxml import etree

from docpost import receipts as rc
from docpost.privacy import mask_identifier, scrub  # the service's texts never echo CPR/CVR numbers
from docpost_testbench.simulator import inbound
from docpost_testbench.simulator.kombi import KombiRejected, read_kombi_request
from docpost_testbench.simulator.store import Store

log = logging.getLogger(__name__)

ENTITY_KOMBIPOSTAFSEND = "http://entityid.kombit.dk/service/kombipostafsend/1"
ENTITY_POSTFORESPOERG = "http://entityid.kombit.dk/service/postforespoerg/1"
TOKEN_TYPE_SAML2 = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV2.0"
NS_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
REGISTER_VALUES = ("digital", "physical", "unknown")
CPR_PLACEHOLDER = "0000000000"  # a CPR recipient's number in a ForsendelseI
_UTC_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")


@dataclass
class Faults:
    """Switchable faults: shares of /kombi requests (0..1) and receipts, and their timings."""

    error_5xx: float = 0.0  # 503 before anything is recorded
    rate_limit: float = 0.0  # 429 with Retry-After before anything is recorded
    timeout: float = 0.0  # recorded, then no answer for timeout_seconds (unknown outcome)
    drop: float = 0.0  # socket closed without an answer (half before, half after recording)
    slow: float = 0.0  # recorded, answered after slow_seconds
    duplicate_receipts: float = 0.0  # the final receipt is published twice
    out_of_order_receipts: float = 0.0  # an intermediate receipt arrives after the final one
    timeout_seconds: float = 5.0
    slow_seconds: float = 0.3
    retry_after: int = 1
    seed: int = 0

    @classmethod
    def from_dict(cls, data: dict) -> Faults:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        return cls(**data)


# Faults field -> the `docpost simulator` flag that sets it (the runner passes faults to a subprocess)
FAULT_FLAGS = {
    "error_5xx": "--fault-5xx",
    "rate_limit": "--fault-429",
    "timeout": "--fault-timeout",
    "drop": "--fault-drop",
    "slow": "--fault-slow",
    "duplicate_receipts": "--fault-duplicate-receipts",
    "out_of_order_receipts": "--fault-out-of-order-receipts",
    "timeout_seconds": "--fault-timeout-seconds",
    "slow_seconds": "--fault-slow-seconds",
    "retry_after": "--fault-retry-after",
}


@dataclass
class SimulatorConfig:
    """Everything besides faults: register default, receipts, token lifetimes."""

    default_recipient: str = "digital"  # for recipients not in the register
    receipt_delay: float = 0.2  # seconds until a receipt is published (jittered 0.5x..1.5x)
    receipt_envelope: bool = False  # publish receipts in Beskedfordeler envelopes
    saml_lifetime: float = 8 * 3600.0
    access_lifetime: float = 3600.0
    sender_cvr: str = "29189846"
    # the Beskedfordeler's side: receipts published as PostStatusBeskedModtag envelopes to this
    # AMQP broker and queue (None: only the /sim/receipts feed)
    amqp_url: str | None = None
    amqp_queue: str = "docpost.receipts"
    # the Postkomponent's side: inbound messages pushed to this PostModtag endpoint (None: only
    # the /sim/inbound pull), with this client certificate and CA when it has mutual TLS
    postmodtag_url: str | None = None
    postmodtag_cert: str | None = None
    postmodtag_key: str | None = None
    postmodtag_ca: str | None = None


@dataclass
class _Counters:
    requests: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    unauthorized: int = 0
    token_calls: dict = field(default_factory=lambda: {"saml": 0, "access": 0})
    faults: dict = field(default_factory=lambda: {"5xx": 0, "429": 0, "timeout": 0, "drop": 0,
                                                  "slow": 0})


def load_register(path: Path | None) -> dict[str, str]:
    """The generator's ``recipients.json``: {"<CPR/CVR>": "digital" | "physical" | "unknown"}."""
    if path is None:
        return {}
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    bad = {v for v in data.values() if v not in REGISTER_VALUES}
    if bad:
        raise ValueError(f"register values must be one of {REGISTER_VALUES}, found {sorted(bad)}")
    return {str(k): v for k, v in data.items()}


def _answer(result: bool, transaction_id: str | None, transmission_id: str | None = None,
            error_code: str | None = None, error_text: str | None = None) -> bytes:
    root = etree.Element("kombi_response")
    etree.SubElement(root, "Resultat").text = "true" if result else "false"
    if transaction_id:
        etree.SubElement(root, "TransaktionsId").text = transaction_id
    if transmission_id:
        etree.SubElement(root, "TransmissionId").text = transmission_id
    errors = etree.SubElement(root, "FejlDetaljer")
    if error_code:
        etree.SubElement(errors, "FejlKode").text = error_code
        etree.SubElement(errors, "FejlTekst").text = error_text or ""
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _xml(status: int, body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(content=body, status_code=status, media_type="application/xml", headers=headers)


def _error(status: int, code: str, text: str, transaction_id: str | None = None,
           headers: dict[str, str] | None = None) -> Response:
    return _xml(status, _answer(False, transaction_id, None, code, text), headers)


class _TransportCapture:
    """Outermost ASGI layer: remembers the connection's transport so a fault can drop it."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):  # noqa: ANN001 - ASGI signature
        if scope["type"] == "http":
            owner = getattr(send, "__self__", None)
            scope["docpost.transport"] = getattr(owner, "transport", None)
        await self.app(scope, receive, send)

    def __getattr__(self, name: str):  # expose .state etc. of the wrapped app
        return getattr(self.app, name)


class Simulator:
    """The simulator's state and behaviour; :func:`create_app` wires it to HTTP."""

    def __init__(self, state_dir: Path, register: dict[str, str], faults: Faults,
                 config: SimulatorConfig, tls: bool) -> None:
        self.store = Store(state_dir)
        inbound.ensure_schema(self.store.db)
        self.register = register
        self.config = config
        self.tls = tls
        self.counters = _Counters()
        self.set_faults(faults)
        self._saml: dict[str, tuple[str, float]] = {}  # assertion -> (entity, expires, monotonic)
        self._access: dict[str, tuple[str, float]] = {}  # token -> (entity, expires)
        self.publisher = None  # the Beskedfordeler's side (simulator.amqp), with config.amqp_url
        self.inbound_pusher = None  # the Postkomponent's side (simulator.inbound.mount sets it)
        if config.amqp_url:
            from docpost_testbench.simulator.amqp import ReceiptPublisher

            self.publisher = ReceiptPublisher(state_dir, config.amqp_url, config.amqp_queue,
                                              config.sender_cvr).start()

    def close(self) -> None:
        """Stop the AMQP publisher and the PostModtag pusher (if any) and close the store."""
        if self.publisher is not None:
            self.publisher.stop()
        if self.inbound_pusher is not None:
            self.inbound_pusher.stop()
        self.store.close()

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        self.fault_rng = random.Random(faults.seed)
        self.id_rng = random.Random(faults.seed + 1)
        self.receipt_rng = random.Random(faults.seed + 2)

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self.id_rng.getrandbits(128), version=4))

    # -- tokens ---------------------------------------------------------------------------

    def issue_saml(self, request: dict) -> tuple[int, dict]:
        self.counters.token_calls["saml"] += 1
        if request.get("TokenType") != TOKEN_TYPE_SAML2:
            return 400, {"error": "invalid_request", "message": "TokenType must be SAML 2.0"}
        cvr = str((request.get("AnvenderKontekst") or {}).get("Cvr") or "")
        entity = ((request.get("AppliesTo") or {}).get("EndpointReference") or {}).get("Address")
        if not re.fullmatch(r"\d{8}", cvr):
            return 400, {"error": "invalid_request", "message": "AnvenderKontekst.Cvr must be 8 digits"}
        if entity not in (ENTITY_KOMBIPOSTAFSEND, ENTITY_POSTFORESPOERG):
            return 400, {"error": "invalid_request", "message": "unknown service in AppliesTo"}
        now = dt.datetime.now(dt.timezone.utc)
        expires = now + dt.timedelta(seconds=self.config.saml_lifetime)
        A = f"{{{NS_SAML}}}"
        root = etree.Element(A + "Assertion", nsmap={"saml": NS_SAML},
                             ID=f"_{secrets.token_hex(16)}", Version="2.0",
                             IssueInstant=rc.format_utc(now))
        etree.SubElement(root, A + "Issuer").text = "https://sts.sf1601-simulator.local"
        etree.SubElement(root, A + "Conditions", NotBefore=rc.format_utc(now),
                         NotOnOrAfter=rc.format_utc(expires))
        attrs = etree.SubElement(root, A + "AttributeStatement")
        attr = etree.SubElement(attrs, A + "Attribute", Name="dk:gov:saml:attribute:CvrNumberIdentifier")
        etree.SubElement(attr, A + "AttributeValue").text = cvr
        assertion = base64.b64encode(etree.tostring(root)).decode("ascii")
        self._saml[assertion] = (entity, time.monotonic() + self.config.saml_lifetime)
        return 200, {"RequestedSecurityToken": {"Assertion": assertion}, "TokenType": TOKEN_TYPE_SAML2,
                     "Lifetime": {"Expires": rc.format_utc(expires)}}

    def issue_access(self, saml_token: str | None) -> tuple[int, dict]:
        self.counters.token_calls["access"] += 1
        entry = self._saml.get(saml_token or "")
        if entry is None or entry[1] <= time.monotonic():
            return 401, {"error": "invalid_grant", "message": "unknown or expired SAML token"}
        token = secrets.token_urlsafe(32)
        self._access[token] = (entry[0], time.monotonic() + self.config.access_lifetime)
        return 200, {"access_token": token, "token_type": "Holder-of-key",
                     "expires_in": int(self.config.access_lifetime)}

    def check_token(self, authorization: str | None, entity: str) -> str | None:
        """None if the token is valid for the service, else the FejlKode."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme != "Holder-of-key" or not token:
            return "token.missing"
        entry = self._access.get(token.strip())
        if entry is None:
            return "token.invalid"
        if entry[1] <= time.monotonic():
            return "token.expired"
        if entry[0] != entity:
            return "token.wrong-service"
        return None

    # -- the register ---------------------------------------------------------------------

    def recipient_status(self, recipient_id: str | None) -> str:
        if not recipient_id:
            return "unknown"
        return self.register.get(recipient_id, self.config.default_recipient)

    # -- sending --------------------------------------------------------------------------

    def draw_fault(self) -> str | None:
        """One fault (or None) for a /kombi request, from the seeded generator."""
        f = self.faults
        r = self.fault_rng.random()
        for name, share in (("5xx", f.error_5xx), ("429", f.rate_limit), ("timeout", f.timeout),
                            ("drop", f.drop), ("slow", f.slow)):
            if r < share:
                return name
            r -= share
        return None

    def process(self, transaction_id: str, body: bytes) -> tuple[int, bytes]:
        """Deduplicate, check, deliver and queue receipts; the answer to send (and store)."""
        stored = self.store.answer_for(transaction_id)
        if stored is not None:
            self.counters.duplicates += 1
            return stored.status, stored.answer
        try:
            letter = read_kombi_request(body)
        except KombiRejected as exc:
            self.counters.rejected += 1
            answer = _answer(False, transaction_id, None, exc.code, scrub(exc.text))
            self.store.record_transaction(transaction_id, 400, answer, None)
            return 400, answer
        transmission_id = self.new_uuid()
        self.deliver(transaction_id, transmission_id, letter)
        try:  # what a reply to this letter needs (see docpost_testbench.simulator.inbound)
            inbound.remember_letter(self.store.db, body)
        except etree.LxmlError:  # already checked by read_kombi_request; never fail a send
            log.warning("could not record reply facts of transaction %s", transaction_id)
        answer = _answer(True, transaction_id, transmission_id)
        self.store.record_transaction(transaction_id, 200, answer, letter.message_uuid)
        self.counters.accepted += 1
        return 200, answer

    def deliver(self, transaction_id: str, transmission_id: str, letter) -> None:  # noqa: ANN001
        """Apply KombiValgKode and the register; record the letter and queue its receipts."""
        valg = letter.kombi_valg
        if valg == "Fysisk Post" and letter.recipient_id == CPR_PLACEHOLDER:
            status = "physical"  # addressed by post address only: the register does not apply
        else:
            status = self.recipient_status(letter.recipient_id)
        channel, error = "digital", None
        if status == "unknown":
            channel, error = ("physical" if valg == "Fysisk Post" else "digital"), (
                "recipient.unknown", "Modtageren findes ikke eller kan ikke modtage post")
        elif valg == "Fysisk Post":
            channel = "physical"
        elif valg in ("Digital Post", "NemSMS"):
            if status != "digital":
                error = ("recipient.not-digital", "Modtageren er fritaget for Digital Post")
        elif status == "physical":  # Automatisk Valg
            channel = "physical"
            if letter.physical_pdf is None:
                error = ("forsendelse.missing", "Fysisk forsendelse kræver en ForsendelseI")
        pdf = letter.physical_pdf if channel == "physical" and letter.physical_pdf else letter.pdf
        duplicate = error is None and self.store.delivered(letter.message_uuid)
        if duplicate:  # a new transaction for a message already delivered: not delivered twice
            error = ("memo.duplicate", "messageUUID er allerede modtaget")
        self.store.record_letter(
            message_uuid=letter.message_uuid, transaction_id=transaction_id,
            transmission_id=transmission_id, recipient_id=letter.recipient_id, kombi_valg=valg,
            channel=channel, status="duplicate" if duplicate else ("failed" if error else "delivered"),
            error_code=error[0] if error else None, label=letter.label, filename=letter.filename,
            pdf=pdf, delivered_at=rc.format_utc(dt.datetime.now(dt.timezone.utc)))
        self.queue_receipts(letter, transmission_id, channel, error)

    def queue_receipts(self, letter, transmission_id: str, channel: str,  # noqa: ANN001
                       error: tuple[str, str] | None) -> None:
        now = time.time()
        rng = self.receipt_rng
        kanal = rc.CHANNEL_PHYSICAL if channel == "physical" else rc.CHANNEL_DIGITAL
        if error:
            final_code = rc.STATUS_FAILED
        else:
            final_code = rc.STATUS_DELIVERED_PHYSICAL if channel == "physical" else rc.STATUS_DELIVERED_DIGITAL
        due = now + self.config.receipt_delay * (0.5 + rng.random())
        message_id = letter.message_id or self.new_uuid()

        def receipt(code: str, fault: tuple[str, str] | None, at: float) -> bytes:
            xml = rc.build_post_status(
                transmission_id=transmission_id, message_uuid=letter.message_uuid,
                message_id=message_id, status_code=code, channel=kanal,
                transaction_time=dt.datetime.fromtimestamp(at, dt.timezone.utc),
                correlation_id=transmission_id,
                error_code=fault[0] if fault else None, error_text=fault[1] if fault else None)
            if self.config.receipt_envelope:
                xml = rc.wrap_in_envelope(xml, event_id=self.new_uuid(),
                                          sender_cvr=self.config.sender_cvr,
                                          created=dt.datetime.fromtimestamp(at, dt.timezone.utc))
            return xml

        final = receipt(final_code, error, due)
        self.store.queue_receipt(due, letter.message_uuid, final)
        if rng.random() < self.faults.duplicate_receipts:
            self.store.queue_receipt(due + self.config.receipt_delay * rng.random(),
                                     letter.message_uuid, final)
        if rng.random() < self.faults.out_of_order_receipts:
            late = due + self.config.receipt_delay * (0.1 + rng.random())
            self.store.queue_receipt(late, letter.message_uuid, receipt(rc.STATUS_RECEIVED, None, now))

    # -- statistics -----------------------------------------------------------------------

    def stats(self) -> dict:
        self.store.publish_due(time.time())
        c = self.counters
        return {
            "requests": c.requests, "accepted": c.accepted, "duplicates": c.duplicates,
            "rejected": c.rejected, "unauthorized": c.unauthorized,
            "token_calls": dict(c.token_calls), "faults": dict(c.faults),
            "letters": self.store.letter_counts(),
            "deliveries": self.store.delivery_counts(),
            "transactions": self.store.transaction_counts(),
            "receipts": self.store.receipt_counts(),
            **({"amqp": {"queue": self.config.amqp_queue, "published_cursor": self.store.amqp_cursor()}}
               if self.config.amqp_url else {}),
            "tls": self.tls,
        }


def create_app(state_dir: Path | str | None = None, register_path: Path | str | None = None,
               faults: Faults | dict | None = None, ca: Path | str | None = None,
               config: SimulatorConfig | None = None) -> FastAPI:
    """The simulator app. ``ca``: mutual TLS is enforced by the server (see ``runner``)."""
    if state_dir is None:
        state_dir = Path(tempfile.mkdtemp(prefix="sf1601-sim-"))
    if isinstance(faults, dict):
        faults = Faults.from_dict(faults)
    sim = Simulator(Path(state_dir), load_register(Path(register_path) if register_path else None),
                    faults or Faults(), config or SimulatorConfig(), tls=ca is not None)
    app = FastAPI(title="SF1601 simulator (docpost)", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.simulator = sim

    @app.post("/runtime/api/rest/wstrust/v1/issue")
    async def saml_token(request: Request) -> Response:
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": "invalid_request", "message": "body is not JSON"}, 400)
        status, data = sim.issue_saml(payload if isinstance(payload, dict) else {})
        return JSONResponse(data, status)

    @app.post("/service/AccessTokenService_1/token")
    async def access_token(request: Request) -> Response:
        form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
        status, data = sim.issue_access((form.get("saml-token") or [None])[0])
        return JSONResponse(data, status)

    @app.get("/service/PostForespoerg_1/digitalpost")
    async def post_forespoerg(request: Request) -> Response:
        problem = sim.check_token(request.headers.get("authorization"), ENTITY_POSTFORESPOERG)
        if problem:
            return JSONResponse({"error": problem}, 401)
        identifier = request.query_params.get("cprNumber") or request.query_params.get("cvrNumber")
        if not identifier:
            return JSONResponse({"error": "cprNumber or cvrNumber required"}, 400)
        return JSONResponse({"result": sim.recipient_status(identifier) == "digital"})

    @app.post("/service/KombiPostAfsend_1/kombi")
    async def kombi(request: Request) -> Response:
        sim.counters.requests += 1
        body = await request.body()
        problem = sim.check_token(request.headers.get("authorization"), ENTITY_KOMBIPOSTAFSEND)
        if problem:
            sim.counters.unauthorized += 1
            return _error(401, problem, "Adgang nægtet: ugyldigt eller udløbet token")
        transaction_id = request.headers.get("x-transaktionsid", "")
        try:
            if str(uuid.UUID(transaction_id)) != transaction_id.lower():
                raise ValueError
        except ValueError:
            return _error(400, "header.invalid", "x-TransaktionsId skal være et UUID")
        if not _UTC_Z.match(request.headers.get("x-transaktionstid", "")):
            return _error(400, "header.invalid", "x-TransaktionsTid skal være UTC med Z",
                          transaction_id)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/xml":
            return _error(415, "content-type.invalid", "Content-Type skal være application/xml",
                          transaction_id)
        transaction_id = transaction_id.lower()

        fault = sim.draw_fault()
        if fault:
            sim.counters.faults[fault] += 1
        if fault == "5xx":
            return _error(503, "service.unavailable", "Tjenesten er midlertidigt utilgængelig",
                          transaction_id)
        if fault == "429":
            return _error(429, "rate.limited", "For mange forespørgsler", transaction_id,
                          {"Retry-After": str(sim.faults.retry_after)})
        drop_before = fault == "drop" and sim.fault_rng.random() < 0.5
        if drop_before:
            return await _drop(request)

        status, answer = sim.process(transaction_id, body)  # no await between check and record

        if fault == "drop":
            return await _drop(request)
        if fault == "timeout":
            await asyncio.sleep(sim.faults.timeout_seconds)
        elif fault == "slow":
            await asyncio.sleep(sim.faults.slow_seconds)
        return _xml(status, answer)

    @app.get("/sim/health")
    async def health() -> dict:
        return {"ok": True}

    @app.get("/sim/stats")
    async def stats() -> dict:
        return sim.stats()

    @app.get("/sim/faults")
    async def get_faults() -> dict:
        return asdict(sim.faults)

    @app.post("/sim/faults")
    async def set_faults(request: Request) -> Response:
        try:
            changes = json.loads(await request.body())
            sim.set_faults(Faults.from_dict({**asdict(sim.faults), **changes}))
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse(asdict(sim.faults))

    @app.get("/sim/mailbox/{recipient_id}")
    async def mailbox(recipient_id: str) -> dict:
        letters = sim.store.mailbox(recipient_id)
        for letter in letters:
            if letter["has_pdf"] and letter["status"] == "delivered":
                letter["pdf_url"] = f"/sim/mailbox/{recipient_id}/{letter['message_uuid']}/pdf"
        return {"recipient": mask_identifier(recipient_id), "letters": letters}

    @app.get("/sim/mailbox/{recipient_id}/{message_uuid}/pdf")
    async def mailbox_pdf(recipient_id: str, message_uuid: str) -> Response:
        found = sim.store.pdf(recipient_id, message_uuid)
        if found is None:
            return JSONResponse({"error": "no such letter"}, 404)
        filename, pdf = found
        safe = re.sub(r"[^\w.-]", "_", filename or "letter.pdf")
        return Response(pdf, media_type="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="{safe}"'})

    @app.get("/sim/receipts")
    async def receipts(after: int | None = None, limit: int = 500) -> dict:
        sim.store.publish_due(time.time())
        cursor = sim.store.acked_cursor() if after is None else after
        rows = sim.store.receipts_after(cursor, max(1, min(limit, 5000)))
        return {"receipts": [{"cursor": c, "xml": x.decode("utf-8", "replace")} for c, x in rows],
                "next_cursor": rows[-1][0] if rows else cursor}

    @app.post("/sim/receipts/inject")
    async def inject(request: Request) -> Response:
        """Test bench: publish receipts as given (odd ones too) at the end of the feed.

        Body: ``{"receipts": [{"xml": "<any text>", "message_uuid": "..."}, ...]}`` (``xml``
        may be any text; ``message_uuid`` is only for the simulator's own bookkeeping).
        Answer: ``{"cursors": [...]}``, the feed cursor of each, in order.
        """
        try:
            items = json.loads(await request.body())["receipts"]
            rows = [(str(item.get("message_uuid") or ""), item["xml"].encode("utf-8", "surrogatepass"))
                    for item in items]
        except (ValueError, KeyError, TypeError, AttributeError):
            return JSONResponse({"error": "body must be {\"receipts\": [{\"xml\": <text>}, ...]}"}, 400)
        return JSONResponse({"cursors": sim.store.publish_now(time.time(), rows)})

    @app.post("/sim/receipts/ack")
    async def ack(request: Request) -> Response:
        try:
            cursor = int(json.loads(await request.body())["cursor"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "body must be {\"cursor\": <int>}"}, 400)
        return JSONResponse({"acked_cursor": sim.store.ack(cursor)})

    inbound.mount(app, sim)
    return _TransportCapture(app)  # type: ignore[return-value]


async def _drop(request: Request) -> Response:
    """Close the client's connection without answering (a dropped connection)."""
    transport = request.scope.get("docpost.transport")
    if transport is not None:
        transport.abort()
        for _ in range(3):  # let the server notice the disconnect before we "answer"
            await asyncio.sleep(0)
        return Response(status_code=204)
    raise ConnectionAbortedError("simulated dropped connection")
