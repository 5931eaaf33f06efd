"""The SF1601 KombiPostAfsend client: tokens, mutual TLS, sending, and failure classification.

Three calls, as at KOMBIT Serviceplatformen (see the reference README):

1. SAML token from the STS: ``POST /runtime/api/rest/wstrust/v1/issue`` (JSON);
2. access token: ``POST /service/AccessTokenService_1/token`` (form field ``saml-token``);
3. send: ``POST /service/KombiPostAfsend_1/kombi`` with ``Authorization: Holder-of-key <token>``,
   ``x-TransaktionsId`` and ``x-TransaktionsTid``.

Both tokens are cached (thread-safe) until shortly before they expire. Every failure of a send
becomes exactly one of :class:`Retryable` (nothing reached the service, or it asked us to come
back), :class:`Permanent` (the service refused this letter: retrying cannot help) or
:class:`UnknownOutcome` (the request went out and no answer came back: retry with the SAME
transaction id; the service deduplicates by it). The transaction id is given by the caller
(derived by the ledger from the message identity), never invented here.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import json
import logging
import random
import re
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import httpx

from docpost.errors import DocpostError, Unavailable, describe
from docpost.privacy import scrub

if TYPE_CHECKING:  # pragma: no cover
    from docpost.receipts import ReceiptPage

log = logging.getLogger(__name__)

ENTITY_KOMBIPOSTAFSEND = "http://entityid.kombit.dk/service/kombipostafsend/1"
ENTITY_POSTFORESPOERG = "http://entityid.kombit.dk/service/postforespoerg/1"
PATH_SAML_TOKEN = "/runtime/api/rest/wstrust/v1/issue"
PATH_ACCESS_TOKEN = "/service/AccessTokenService_1/token"
PATH_KOMBI = "/service/KombiPostAfsend_1/kombi"
PATH_POSTFORESPOERG = "/service/PostForespoerg_1/digitalpost"
PATH_RECEIPTS = "/sim/receipts"  # the simulator's receipt feed (production: Beskedfordeler)

TOKEN_TYPE_SAML2 = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV2.0"
NS_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"


# --------------------------------------------------------------------------- errors


class SF1601Error(DocpostError):
    """Root of every SF1601 failure. ``code`` is stable (``sf1601.<kind>``), ``message`` plain language."""

    code = "sf1601.error"

    def __init__(self, code: str, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message, code=code if code.startswith("sf1601.") else f"sf1601.{code}")
        self.status_code = status_code


class Retryable(SF1601Error, Unavailable):
    """Nothing was delivered (connection refused, connect timeout, 5xx, 429): send again later."""

    def __init__(self, code: str, message: str, *, status_code: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(code, message, status_code=status_code)
        self.retry_after = retry_after


class Permanent(SF1601Error):
    """The service refused the letter (4xx, schema rejection): resending cannot help.

    401/403 and refused tokens are not permanent for the letter: they are :class:`Retryable`
    (the municipality's credentials need fixing, the letter is fine).
    """

    def __init__(self, code: str, message: str, *, status_code: int | None = None,
                 error_code: str | None = None, error_text: str | None = None) -> None:
        super().__init__(code, message, status_code=status_code)
        self.error_code = error_code
        self.error_text = error_text


class UnknownOutcome(SF1601Error, Unavailable):
    """The request was sent but no answer came (read timeout, dropped connection).

    The service may or may not have the letter: send again with the SAME transaction id.
    """


SERVICE_TEXT_LIMIT = 2000  # characters of a service's error text kept (after masking)


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    now = now or dt.datetime.now(dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())


def transaction_time(moment: dt.datetime | None = None) -> str:
    """``x-TransaktionsTid``: UTC with milliseconds and ``Z``."""
    moment = (moment or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SendResult:
    """The service's synchronous acceptance of one letter."""

    transaction_id: str
    transmission_id: str | None
    status_code: int


class Outcome(StrEnum):
    """How a send ended after retries: the ledger maps it to a state."""

    ACCEPTED = "accepted"  # -> SUBMITTED
    PERMANENT = "permanent"  # -> FAILED with the reason
    RETRYABLE = "retryable"  # attempts used up, nothing delivered -> RETRYING
    UNKNOWN = "unknown"  # attempts used up, maybe delivered -> RETRYING, same transaction id


@dataclass(frozen=True)
class SendOutcome:
    """The final result of :meth:`SF1601Client.send_with_retry` for one letter."""

    transaction_id: str
    outcome: Outcome
    attempts: int
    result: SendResult | None = None
    error: SF1601Error | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome is Outcome.ACCEPTED

    @property
    def code(self) -> str | None:
        return self.error.code if self.error else None


# --------------------------------------------------------------------------- answer parsing


def _parse_answer(body: bytes) -> dict[str, str]:
    """Leaf elements of the service's XML answer by local name (tolerant; safe parser)."""
    from lxml import etree

    from docpost import xmlsafe

    if not body or not body.lstrip().startswith(b"<"):
        return {}
    try:
        root = etree.fromstring(body, xmlsafe.parser())
    except etree.XMLSyntaxError:
        return {}
    out: dict[str, str] = {}
    for el in root.iter():
        if isinstance(el.tag, str) and len(el) == 0 and el.text and el.text.strip():
            out.setdefault(etree.QName(el).localname, el.text.strip())
    return out


def _error_fields(response: httpx.Response) -> tuple[str | None, str | None]:
    fields = _parse_answer(response.content)
    code = fields.get("FejlKode") or fields.get("errorCode")
    text = fields.get("FejlTekst") or fields.get("errorText")
    if not fields and "json" in response.headers.get("content-type", ""):
        try:
            data = response.json()
            code, text = data.get("error") or data.get("code"), data.get("message") or data.get("detail")
        except (ValueError, AttributeError):
            pass
    return code, scrub(str(text) if text is not None else None, SERVICE_TEXT_LIMIT)


def _is_tls_failure(exc: httpx.TransportError) -> bool:
    """A failed handshake or a refused certificate (nothing was processed by the service)."""
    seen: BaseException | None = exc
    ssl_error = certificate = False
    while seen is not None:
        ssl_error = ssl_error or isinstance(seen, ssl.SSLError)
        certificate = certificate or "certificate" in str(seen).lower()
        seen = seen.__cause__ or seen.__context__
    return ssl_error and (certificate or isinstance(exc, httpx.ConnectError))


def classify_transport_error(exc: httpx.TransportError, what: str) -> SF1601Error:
    """Map an httpx transport error to Retryable (nothing sent) or UnknownOutcome (maybe sent)."""
    name = type(exc).__name__
    if _is_tls_failure(exc):
        return Retryable("tls-refused", f"{what}: the TLS handshake failed ({name}); check certificates")
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return Retryable("connect-failed", f"{what}: could not connect ({name})")
    if isinstance(exc, httpx.TimeoutException):
        return UnknownOutcome("timeout-after-send", f"{what}: no answer in time after sending ({name})")
    return UnknownOutcome("connection-dropped", f"{what}: connection lost after sending ({name})")


def classify_response(response: httpx.Response, what: str) -> SF1601Error | None:
    """None for 2xx; otherwise the failure class for the status code."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    code, text = _error_fields(response)
    if status == 429 or status == 503 and "retry-after" in response.headers:
        return Retryable("rate-limited" if status == 429 else "unavailable",
                         f"{what}: HTTP {status}, asked to retry later", status_code=status,
                         retry_after=parse_retry_after(response.headers.get("retry-after")))
    if status >= 500 or status == 408:
        return Retryable("server-error", f"{what}: HTTP {status} {code or ''}".strip(), status_code=status)
    if status in (401, 403):  # our credentials or agreement, not the letter: keep it for later
        return Retryable("unauthorized" if status == 401 else "forbidden",
                         f"{what}: HTTP {status} {code or ''}: token or certificate refused",
                         status_code=status)
    kind = "schema-rejected" if status == 400 else "rejected"
    return Permanent(kind, f"{what}: HTTP {status} {code or ''}: {text or 'no details'}",
                     status_code=status, error_code=code, error_text=text)


# --------------------------------------------------------------------------- tokens


@dataclass
class _Token:
    value: str
    token_type: str
    deadline: float  # time.monotonic() after which it is not used any more


def _saml_not_on_or_after(assertion_b64: str) -> dt.datetime | None:
    """``Conditions/@NotOnOrAfter`` of a base64 SAML assertion, if readable."""
    from lxml import etree

    from docpost import xmlsafe

    try:
        xml = base64.b64decode(assertion_b64)
        root = etree.fromstring(xml, xmlsafe.parser())
    except (ValueError, etree.XMLSyntaxError):
        return None
    conditions = root.find(f".//{{{NS_SAML}}}Conditions")
    value = conditions.get("NotOnOrAfter") if conditions is not None else None
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


# --------------------------------------------------------------------------- the client


def tls_context(cert: tuple[str, str] | None, ca: str | None) -> ssl.SSLContext:
    """Client TLS: verify the server against ``ca`` (or the system store); present ``cert``."""
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    if cert:
        context.load_cert_chain(certfile=str(cert[0]), keyfile=str(cert[1]))
    return context


class SF1601Client:
    """A thread-safe SF1601 client over one pooled httpx connection pool."""

    def __init__(
        self,
        base_url: str,
        cvr: str,
        cert: tuple[str, str] | None = None,
        ca: str | None = None,
        timeout: float = 30.0,
        max_connections: int = 8,
        *,
        sts_url: str | None = None,
        connect_timeout: float | None = None,
        token_margin: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.sts_url = (sts_url or base_url).rstrip("/")
        self.cvr = cvr
        self._cert_pem = self._certificate_body(cert[0]) if cert else ""
        self._token_margin = token_margin
        self._lock = threading.Lock()
        self._saml: dict[str, _Token] = {}
        self._access: dict[str, _Token] = {}
        self.token_calls = {"saml": 0, "access": 0}
        self._http = httpx.Client(
            verify=tls_context(cert, ca),
            timeout=httpx.Timeout(timeout, connect=connect_timeout or min(timeout, 10.0),
                                  pool=max(60.0, timeout * 4)),
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections),
        )

    @staticmethod
    def _certificate_body(certfile: str) -> str:
        """The certificate as one base64 line, as the STS wants it in ``UseKey``."""
        with open(certfile, encoding="ascii") as fh:
            pem = fh.read()
        match = re.search(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", pem, re.S)
        return "".join(match.group(1).split()) if match else ""

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SF1601Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tokens ---------------------------------------------------------------------------

    def _deadline(self, lifetime: float) -> float:
        margin = min(self._token_margin, max(lifetime, 0.0) / 4)
        return time.monotonic() + lifetime - margin

    def _post(self, url: str, what: str, **kwargs: object) -> httpx.Response:
        try:
            response = self._http.post(url, **kwargs)
        except httpx.TransportError as exc:
            error = classify_transport_error(exc, what)
            if isinstance(error, UnknownOutcome):  # a token call is safe to repeat
                error = Retryable(error.code, error.message)
            raise error from exc
        failure = classify_response(response, what)
        if failure is not None:
            raise failure
        return response

    def _fetch_saml(self, entity_id: str) -> _Token:
        request = {
            "TokenType": TOKEN_TYPE_SAML2,
            "RequestType": "http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue",
            "KeyType": "http://docs.oasis-open.org/ws-sx/ws-trust/200512/PublicKey",
            "AnvenderKontekst": {"Cvr": self.cvr},
            "UseKey": self._cert_pem,
            "AppliesTo": {"EndpointReference": {"Address": entity_id}},
            "OnBehalfOf": None,
        }
        self.token_calls["saml"] += 1
        response = self._post(self.sts_url + PATH_SAML_TOKEN, "SAML token", json=request)
        try:
            assertion = response.json()["RequestedSecurityToken"]["Assertion"]
        except (ValueError, KeyError, TypeError) as exc:
            raise Retryable("token-malformed", "SAML token answer without an assertion") from exc
        expires = _saml_not_on_or_after(assertion)
        lifetime = ((expires - dt.datetime.now(dt.timezone.utc)).total_seconds()
                    if expires else 3600.0)
        return _Token(assertion, "SAML", self._deadline(lifetime))

    def _fetch_access(self, saml: _Token) -> _Token:
        self.token_calls["access"] += 1
        response = self._post(self.base_url + PATH_ACCESS_TOKEN, "access token",
                              data={"saml-token": saml.value})
        try:
            data = response.json()
            token, token_type = data["access_token"], data.get("token_type", "Holder-of-key")
            lifetime = float(data.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError) as exc:
            raise Retryable("token-malformed", "access token answer without a token") from exc
        return _Token(token, token_type, min(self._deadline(lifetime), saml.deadline))

    def authorization(self, entity_id: str = ENTITY_KOMBIPOSTAFSEND) -> str:
        """``Holder-of-key <token>`` for a service, from the cache or freshly fetched."""
        with self._lock:
            now = time.monotonic()
            access = self._access.get(entity_id)
            if access is None or access.deadline <= now:
                saml = self._saml.get(entity_id)
                if saml is None or saml.deadline <= now:
                    saml = self._saml[entity_id] = self._fetch_saml(entity_id)
                access = self._access[entity_id] = self._fetch_access(saml)
            return f"{access.token_type} {access.value}"

    def invalidate_tokens(self) -> None:
        """Forget cached tokens (after the service refused one)."""
        with self._lock:
            self._access.clear()
            self._saml.clear()

    # -- sending --------------------------------------------------------------------------

    def send(self, transaction_id: str, kombi_request: bytes) -> SendResult:
        """Send one ``kombi_request``; raise Retryable, Permanent or UnknownOutcome on failure."""
        try:
            parsed = uuid.UUID(transaction_id)
        except (ValueError, TypeError, AttributeError) as exc:
            raise Permanent("bad-transaction-id", "x-TransaktionsId must be a UUID") from exc
        transaction_id = str(parsed)
        for attempt in (1, 2):
            try:
                authorization = self.authorization()
            except Permanent as exc:  # the STS refused us: a configuration problem, not the letter's
                raise Retryable("token-refused", exc.message, status_code=exc.status_code) from exc
            headers = {
                "Authorization": authorization,
                "x-TransaktionsId": transaction_id,
                "x-TransaktionsTid": transaction_time(),
                "Content-Type": "application/xml",
                "Accept": "application/xml",
            }
            try:
                response = self._http.post(self.base_url + PATH_KOMBI, content=kombi_request,
                                           headers=headers)
            except httpx.TransportError as exc:
                raise classify_transport_error(exc, "kombi") from exc
            if response.status_code == 401 and attempt == 1:
                log.info("SF1601 refused the access token; fetching a new one (tx %s)", transaction_id)
                self.invalidate_tokens()
                continue
            failure = classify_response(response, "kombi")
            if failure is not None:
                raise failure
            fields = _parse_answer(response.content)
            result = fields.get("Resultat", fields.get("result", "true")).lower()
            if result not in ("true", "1"):
                code, text = fields.get("FejlKode"), scrub(fields.get("FejlTekst"), SERVICE_TEXT_LIMIT)
                raise Permanent("rejected", f"kombi: refused: {code or ''} {text or ''}".strip(),
                                status_code=response.status_code, error_code=code, error_text=text)
            return SendResult(transaction_id, fields.get("TransmissionId"), response.status_code)
        raise AssertionError("unreachable")  # pragma: no cover

    def send_with_retry(
        self,
        transaction_id: str,
        body: bytes,
        attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> SendOutcome:
        """Send with bounded retries, exponential backoff with jitter, Retry-After honoured.

        Never raises for a failure of this letter: the :class:`SendOutcome` says how it ended.
        A Retry-After longer than ``max_backoff`` ends the attempts (RETRYABLE) rather than
        waiting less than the service asked.
        """
        rng = rng or random.Random()
        error: SF1601Error | None = None
        attempt = 0
        while attempt < max(1, attempts):
            attempt += 1
            try:
                result = self.send(transaction_id, body)
                return SendOutcome(transaction_id, Outcome.ACCEPTED, attempt, result=result)
            except Permanent as exc:
                return SendOutcome(transaction_id, Outcome.PERMANENT, attempt, error=exc)
            except (Retryable, UnknownOutcome) as exc:
                error = exc
            log.info("SF1601 send tx %s attempt %d: %s", transaction_id, attempt, error.code)
            if attempt >= attempts:
                break
            delay = min(max_backoff, backoff * 2 ** (attempt - 1)) * rng.uniform(0.5, 1.0)
            retry_after = getattr(error, "retry_after", None)
            if retry_after is not None:
                if retry_after > max_backoff:
                    break
                delay = max(delay, retry_after)
            sleep(delay)
        kind = Outcome.UNKNOWN if isinstance(error, UnknownOutcome) else Outcome.RETRYABLE
        return SendOutcome(transaction_id, kind, attempt, error=error)

    def send_many(
        self,
        items: Iterable[tuple[str, bytes]],
        concurrency: int = 8,
        **retry: object,
    ) -> list[SendOutcome]:
        """Send a chunk with at most ``concurrency`` letters in flight; one outcome per item.

        ``retry`` is passed to :meth:`send_with_retry`. One bad item never stops the others.
        """
        work: Sequence[tuple[str, bytes]] = list(items)

        def one(item: tuple[str, bytes]) -> SendOutcome:
            transaction_id, body = item
            try:
                return self.send_with_retry(transaction_id, body, **retry)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - a per-item failure must not stop the chunk
                log.error("SF1601 send tx %s failed unexpectedly: %s", transaction_id, describe(exc, trace=True))
                error = UnknownOutcome("unexpected", f"unexpected {type(exc).__name__} while sending")
                return SendOutcome(transaction_id, Outcome.UNKNOWN, 0, error=error)

        if not work:
            return []
        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(work))),
                                thread_name_prefix="sf1601") as pool:
            return list(pool.map(one, work))

    # -- lookups and receipts -------------------------------------------------------------

    def digital_post_status(self, identifier: str) -> bool:
        """PostForespoerg: can this CPR (10 digits) or CVR (8 digits) receive Digital Post?"""
        param = "cprNumber" if len(identifier) == 10 else "cvrNumber"
        headers = {
            "Authorization": self.authorization(ENTITY_POSTFORESPOERG),
            "x-TransaktionsId": str(uuid.uuid4()),
            "x-TransaktionsTid": transaction_time(),
        }
        try:
            response = self._http.get(self.base_url + PATH_POSTFORESPOERG,
                                      params={param: identifier}, headers=headers)
        except httpx.TransportError as exc:
            raise classify_transport_error(exc, "PostForespoerg") from exc
        failure = classify_response(response, "PostForespoerg")
        if failure is not None:
            raise failure
        return bool(response.json().get("result"))

    def fetch_receipts(self, after_cursor: int | None = None, limit: int = 500) -> ReceiptPage:
        """Receipts after ``after_cursor`` (None: after the last acknowledged one).

        Returns a :class:`~docpost.receipts.ReceiptPage`: every entry of the page (the parsed
        receipt, or for one that cannot be read its raw text and the error, so the caller can set
        it aside) and the cursor to pass next time; it unpacks as ``statuses, next_cursor``.
        Store that cursor (or call :meth:`ack_receipts`) only after the receipts are processed: a
        consumer that crashes before that fetches the same receipts again, so nothing is lost.
        The feed unreachable, or an answer that is no feed page, raises :class:`Retryable`.
        """
        from docpost.receipts import ReceiptPage, read_feed_entry

        params: dict[str, object] = {"limit": limit}
        if after_cursor is not None:
            params["after"] = after_cursor
        try:
            response = self._http.get(self.base_url + PATH_RECEIPTS, params=params)
        except httpx.TransportError as exc:
            error = classify_transport_error(exc, "receipts")
            raise Retryable(error.code, error.message) from exc
        failure = classify_response(response, "receipts")
        if failure is not None:
            raise failure
        try:
            data = response.json()
        except ValueError as exc:
            raise Retryable("feed-invalid", "receipts: the feed's answer is not JSON",
                            status_code=response.status_code) from exc
        entries = data.get("receipts", []) if isinstance(data, dict) else None
        next_cursor = data.get("next_cursor", after_cursor) if isinstance(data, dict) else None
        if not isinstance(entries, list) or not (
                next_cursor is None or isinstance(next_cursor, int) and not isinstance(next_cursor, bool)):
            raise Retryable("feed-invalid", "receipts: the feed's answer is not a page of receipts",
                            status_code=response.status_code)
        return ReceiptPage([read_feed_entry(entry) for entry in entries], next_cursor)

    def ack_receipts(self, cursor: int) -> None:
        """Tell the feed every receipt up to ``cursor`` is processed."""
        self._post(self.base_url + PATH_RECEIPTS + "/ack", "receipts ack",
                   content=json.dumps({"cursor": cursor}),
                   headers={"Content-Type": "application/json"})
