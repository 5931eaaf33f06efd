"""Receipts from the Fælleskommunal Beskedfordeler (SF1461) over AMQP 0-9-1: the consumer.

In production SF1601's ``PKO_PostStatus`` receipts reach the municipality as
``PostStatusBeskedModtag`` envelopes (``urn:oio:besked:kuvert:1.0``, the receipt base64 in
``Beskeddata``) on the subscription's queue at the Beskedfordeler's RabbitMQ: ``amqps`` on port
5671, virtual host ``BF``, authenticated by a SAML token for the entity
:data:`ENTITY_BFO_MODTAG` sent as the SASL response of mechanism :data:`SASL_MECHANISM`.
Everything comes from the settings (``DOCPOST_AMQP_*``), nothing from code:

- local (the simulator, a test broker): ``DOCPOST_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F``,
  plain credentials in the URL;
- production: ``DOCPOST_AMQP_URL=amqps://<host>:5671/BF``, ``DOCPOST_AMQP_CA`` (and a client
  certificate ``DOCPOST_AMQP_CERT``/``_KEY`` where required) and ``DOCPOST_AMQP_TOKEN_FILE``:
  the token file is read anew on every connection, so whatever refreshes it (the STS token has a
  lifetime of hours) only rewrites the file.

:func:`drain` takes messages in batches of ``DOCPOST_AMQP_BATCH`` (a consumer with that
prefetch), reads each, settles the whole batch in the ledger (one ``Ledger.apply_receipts``
call, through the same code as the receipt feed: :class:`docpost.receipts._Feed`) and only after
the ledger committed acknowledges the batch (``basic_ack(last tag, multiple=True)``). Killed
between commit and ack, the broker redelivers the batch: applying is idempotent. A message that
cannot be read or settled (the feed's set-aside cases) is set aside in S3 as the feed does, copied
to the quarantine queue (``DOCPOST_AMQP_QUARANTINE_QUEUE``, default ``<queue>.quarantine``) with
its reason in the headers (``x-docpost-reason-code``, ``x-docpost-reason``: no personal data), and
acknowledged: one odd message never stalls the queue. A broker that cannot be reached (or refuses
the login) is :class:`~docpost.errors.Unavailable`: the task retries.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
import ssl
import urllib.parse
from typing import Any

import pika
import pika.credentials
import pika.exceptions
from pika.compat import as_bytes

from docpost import receipts as rc
from docpost.errors import ConfigurationError, Unavailable

log = logging.getLogger(__name__)

#: The SASL mechanism the token is sent with. ASSUMED from KOMBIT's public Beskedfordeler AMQP
#: sample (``dk.kombit.samples.beskedfordeler.amqp.TokenSaslConfig``): mechanism name
#: ``EXTERNAL``, response = the SAML assertion XML (the STS's base64 token decoded). The broker
#: must offer it in ``Connection.Start``; otherwise the login fails (``Unavailable``).
SASL_MECHANISM = "EXTERNAL"
#: The service entity the SAML token is issued for.
ENTITY_BFO_MODTAG = "http://entityid.kombit.dk/service/bfo_modtag/2"
#: ``drain`` takes at most this many batches per run unless told otherwise.
MAX_BATCHES_PER_RUN = 50
#: seconds without a delivery after which the queue counts as drained
IDLE_SECONDS = 1.0
QUARANTINE_SUFFIX = ".quarantine"

HEADER_CODE = "x-docpost-reason-code"
HEADER_REASON = "x-docpost-reason"


# --------------------------------------------------------------------------- credentials


class SamlTokenCredentials(pika.credentials.ExternalCredentials):
    """pika credentials sending a SAML token as the response of a custom SASL mechanism.

    A subclass of ``ExternalCredentials`` because pika accepts only its own credential types;
    ``TYPE`` is the mechanism name (:data:`SASL_MECHANISM` unless given).
    """

    def __init__(self, token: bytes, mechanism: str = SASL_MECHANISM) -> None:
        super().__init__()
        self.TYPE = mechanism
        self.token = token

    def response_for(self, start: Any) -> tuple[str | None, bytes | None]:
        if as_bytes(self.TYPE) not in as_bytes(start.mechanisms).split():
            return None, None
        return self.TYPE, self.token

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SamlTokenCredentials):
            return (self.TYPE, self.token) == (other.TYPE, other.token)
        return NotImplemented

    def __repr__(self) -> str:  # never the token
        return f"SamlTokenCredentials(mechanism={self.TYPE!r})"


def read_token(path: str) -> bytes:
    """The SAML assertion (XML) in ``path``: the XML itself, or base64 as the STS issues it."""
    try:
        with open(path, "rb") as f:
            data = f.read().strip()
    except OSError as exc:
        raise ConfigurationError(f"DOCPOST_AMQP_TOKEN_FILE cannot be read ({type(exc).__name__})",
                                 code="config.amqp-token") from None
    if not data:
        raise ConfigurationError("DOCPOST_AMQP_TOKEN_FILE is empty", code="config.amqp-token")
    if not data.startswith(b"<"):
        try:
            data = base64.b64decode(b"".join(data.split()), validate=True).strip()
        except (binascii.Error, ValueError):
            data = b""
        if not data.startswith(b"<"):
            raise ConfigurationError("DOCPOST_AMQP_TOKEN_FILE holds neither a SAML assertion nor its base64",
                                     code="config.amqp-token")
    return data


# --------------------------------------------------------------------------- connection


def queue_names(s: Any) -> tuple[str, str]:
    """(the receipts queue, the quarantine queue) of the settings."""
    return s.amqp_queue, s.amqp_quarantine_queue or s.amqp_queue + QUARANTINE_SUFFIX


def connection_parameters(s: Any) -> pika.ConnectionParameters:
    """pika parameters from the settings: the URL, TLS (``amqps`` or CA/certificate set) and the
    token credential (``DOCPOST_AMQP_TOKEN_FILE``) instead of the URL's user and password."""
    if s.amqp_url is None:
        raise ConfigurationError("DOCPOST_AMQP_URL is not set", code="config.missing")
    url = s.amqp_url.get_secret_value()
    try:
        params = pika.URLParameters(url)
    except Exception:  # noqa: BLE001 - its text may show the password
        raise ConfigurationError("DOCPOST_AMQP_URL is not a usable AMQP URL (value not shown)",
                                 code="config.invalid") from None
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme == "amqps" or s.amqp_ca or s.amqp_cert:
        try:
            context = ssl.create_default_context(cafile=s.amqp_ca or None)
            if s.amqp_cert:
                context.load_cert_chain(s.amqp_cert, s.amqp_key or None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"DOCPOST_AMQP_CA/CERT/KEY cannot be loaded ({type(exc).__name__})",
                                     code="config.amqp-tls") from None
        params.ssl_options = pika.SSLOptions(context, params.host)
    if s.amqp_token_file:
        params.credentials = SamlTokenCredentials(read_token(s.amqp_token_file))
    params.connection_attempts = 1  # the task retries, with its own back-off
    params.socket_timeout = 10
    params.stack_timeout = 20
    params.blocked_connection_timeout = 60
    return params


def _unavailable(exc: BaseException, params: pika.ConnectionParameters) -> Unavailable:
    where = f"{params.host}:{params.port} (virtual host {params.virtual_host})"
    if isinstance(exc, (pika.exceptions.AuthenticationError, pika.exceptions.ProbableAuthenticationError,
                        pika.exceptions.ProbableAccessDeniedError)):
        return Unavailable(f"the Beskedfordeler broker {where} refused the login ({type(exc).__name__})",
                           code="infrastructure.amqp-auth")
    return Unavailable(f"the Beskedfordeler broker {where} is unreachable ({type(exc).__name__})",
                       code="infrastructure.amqp")


def connect(params: pika.ConnectionParameters) -> pika.BlockingConnection:
    try:
        return pika.BlockingConnection(params)
    except (pika.exceptions.AMQPError, OSError) as exc:
        raise _unavailable(exc, params) from None


# --------------------------------------------------------------------------- the consumer


class _Quarantine(rc._Feed):
    """The feed's settling, with each set-aside message also copied to the quarantine queue."""

    def __init__(self, store: Any, ledger: Any, actor: str, publish: Any) -> None:
        super().__init__(store, ledger, actor)
        self.publish = publish
        self.quarantined = 0

    def set_aside(self, entry: rc.FeedEntry, exc: BaseException) -> None:
        code, message = rc.reason_of(exc)
        key = rc.set_aside(self.store, entry, code, message, actor=self.actor) if self.store is not None else None
        self.quarantined += bool(self.publish(entry, code, message, key))
        self.counts["set_aside"] += 1
        self.by_code[code] += 1
        log.warning("receipts: message %s quarantined: %s", entry.ident, code)  # code only, never text


class Consumer:
    """One drain of the receipts queue into the ledger (see the module docstring)."""

    def __init__(self, ledger: Any, store: Any, *, actor: str, settings: Any,
                 idle_seconds: float = IDLE_SECONDS) -> None:
        self.ledger, self.store, self.actor, self.settings = ledger, store, actor, settings
        self.queue, self.quarantine_queue = queue_names(settings)
        self.batch = settings.amqp_batch
        self.idle_seconds = idle_seconds
        self.channel: Any = None
        self.quarantine_ok = True
        self.feed = _Quarantine(store, ledger, actor, self._quarantine)

    # -- hooks (a test overrides _ack to die between commit and ack) --------------------------------

    def _ack(self, channel: Any, delivery_tag: int) -> None:
        channel.basic_ack(delivery_tag=delivery_tag, multiple=True)

    # -- the queues ---------------------------------------------------------------------------------

    def _declare(self, conn: pika.BlockingConnection) -> None:
        """The receipts queue must exist: created (durable) locally when missing; with a token (the
        real Beskedfordeler owns its queues) a missing one is a configuration error. The quarantine
        queue is declared durable; where the broker refuses that, quarantine is S3 only."""
        probe = conn.channel()
        try:
            probe.queue_declare(self.queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 404:
                raise
            if self.settings.amqp_token_file:
                raise ConfigurationError(f"the Beskedfordeler has no queue {self.queue!r} (DOCPOST_AMQP_QUEUE)",
                                         code="config.amqp-queue") from None
            probe = conn.channel()
            probe.queue_declare(self.queue, durable=True)
        try:
            if not probe.is_open:
                probe = conn.channel()
            probe.queue_declare(self.quarantine_queue, durable=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            self.quarantine_ok = False
            log.warning("receipts: quarantine queue %s unavailable (%s %s): unreadable messages go to S3 only",
                        self.quarantine_queue, exc.reply_code, type(exc).__name__)
        if probe.is_open:
            probe.close()

    def _quarantine(self, entry: rc.FeedEntry, code: str, message: str, key: str | None) -> bool:
        """Copy the message to the quarantine queue with its reason; False if that cannot be done."""
        if not self.quarantine_ok:
            if self.store is None:  # neither S3 nor a quarantine queue: it must not be acked
                raise Unavailable("no quarantine for an unreadable receipt (no S3 store, no quarantine queue)",
                                  code="infrastructure.amqp-quarantine")
            return False
        headers = {HEADER_CODE: code, HEADER_REASON: message, "x-docpost-queue": self.queue,
                   "x-docpost-quarantined-at": rc.format_utc(dt.datetime.now(dt.timezone.utc)),
                   "x-docpost-event-id": entry.event_id, "x-docpost-set-aside-key": key}
        self.channel.basic_publish(
            exchange="", routing_key=self.quarantine_queue, body=entry.raw, mandatory=True,
            properties=pika.BasicProperties(delivery_mode=2, content_type="application/xml",
                                            headers={k: v for k, v in headers.items() if v is not None}))
        return True

    # -- draining -----------------------------------------------------------------------------------

    def drain(self, max_messages: int | None = None) -> dict:
        """Take up to ``max_messages`` (default ``amqp_batch`` x :data:`MAX_BATCHES_PER_RUN`)
        messages, batch by batch: settle, then acknowledge. Returns the counts."""
        limit = max_messages if max_messages is not None else self.batch * MAX_BATCHES_PER_RUN
        params = connection_parameters(self.settings)
        received = batches = redelivered = 0
        drained = False
        conn = connect(params)
        try:
            self._declare(conn)
            self.channel = channel = conn.channel()
            channel.confirm_delivery()  # a quarantine copy is confirmed before the original is acked
            channel.basic_qos(prefetch_count=max(1, min(self.batch, limit)))
            stream = channel.consume(self.queue, auto_ack=False, inactivity_timeout=self.idle_seconds)
            while received < limit and not drained:
                want = min(self.batch, limit - received)
                deliveries: list[tuple[int, bytes]] = []
                for method, _props, body in stream:
                    if method is None:  # nothing for idle_seconds: the queue is drained
                        drained = True
                        break
                    redelivered += bool(method.redelivered)
                    deliveries.append((method.delivery_tag, body))
                    if len(deliveries) >= want:
                        break
                if not deliveries:
                    break
                self.feed.settle([rc.read_message(body) for _, body in deliveries])  # the ledger commits
                self._ack(channel, deliveries[-1][0])  # only now: a kill before this redelivers the batch
                received += len(deliveries)
                batches += 1
            channel.cancel()  # prefetched, untouched messages go back to the queue
        except pika.exceptions.AMQPError as exc:
            raise _unavailable(exc, params) from None
        finally:
            try:
                if conn.is_open:
                    conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
        out: dict[str, Any] = {"source": "beskedfordeler", "queue": self.queue, "received": received,
                               "batches": batches, "redelivered": redelivered, **self.feed.counts,
                               "quarantined": self.feed.quarantined, "drained": drained}
        out["pending"] = self.feed.pending if self.feed.pending is not None else 0
        out["set_aside_by_code"] = dict(sorted(self.feed.by_code.items()))
        return out


def drain(ledger: Any, store: Any, *, actor: str, max_messages: int | None = None,
          settings: Any = None) -> dict:
    """Drain the receipts queue once into ``ledger`` (see :class:`Consumer`); ``store`` (an
    ObjectStore, or None) keeps a copy of each quarantined message under ``receipts/set-aside/``."""
    if settings is None:
        from docpost import config

        settings = config.settings()
    ledger.upgrade()
    return Consumer(ledger, store, actor=actor, settings=settings).drain(max_messages)


__all__ = ["ENTITY_BFO_MODTAG", "SASL_MECHANISM", "Consumer", "SamlTokenCredentials", "connection_parameters",
           "connect", "drain", "queue_names", "read_token"]
