"""The PostModtag endpoint (SF1606 "Modtag post", EP_FS1) as a FastAPI app.

The Postkomponent calls ``POST /PostModtag`` with one citizen's or company's MeMo message and
waits for the answer, so the endpoint does only what receipt needs and answers at once:

1. read the MeMo safely (:func:`docpost.replies.parsing.parse_inbound`: no DTD, no entities, size
   and depth limits, docpost's MeMo schema) and take its messageUUID;
2. a message that cannot be read (malformed, hostile, no messageUUID) is *refused* with its reason
   code; the refusal is recorded (state ``REFUSED``, reason, digest; never its content) when the
   database answers;
3. a readable message is stored durably *before* it is accepted: its MeMo encrypted under S3
   ``inbound/<messageUUID>.memo`` and its row in the reply store (``reply_inbound``, state
   ``RECEIVED``, the MeMo encrypted). Only then ``accepted``;
4. the same messageUUID again gets the same answer and stores nothing again;
5. S3 or the database down: ``503`` (the Postkomponent retries), never an acceptance.

Routing and mailing are not done here: the ``docpost_replies`` DAG takes what was stored
(:func:`docpost.replies.process_inbound`). The wire format is :mod:`docpost.postmodtag.wire`.
"""

from __future__ import annotations

import logging
import threading

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from docpost.errors import describe, internal_code
from docpost.postmodtag import wire

log = logging.getLogger(__name__)

INBOUND_PREFIX = "inbound/"
ACTOR = "postmodtag"


def s3_key(message_uuid: str) -> str:
    """Where the encrypted MeMo of an accepted message is kept."""
    return f"{INBOUND_PREFIX}{message_uuid}.memo"


class Receiver:
    """Receipt of one message at a time: parse, refuse or store, answer (thread-safe)."""

    def __init__(self, ledger=None, objects=None, actor: str = ACTOR) -> None:  # noqa: ANN001
        self._ledger = ledger
        self._objects = objects
        self._store = None
        self._lock = threading.Lock()
        self.actor = actor

    # -- the storage, made on first use (the endpoint starts while the database is down) ----------

    def store(self):  # noqa: ANN201 - ReplyStore
        with self._lock:
            if self._store is None:
                from docpost.replies.service import default_ledger
                from docpost.replies.store import ReplyStore

                self._store = ReplyStore(self._ledger or default_ledger())
            return self._store

    def objects(self):  # noqa: ANN201 - ObjectStore
        with self._lock:
            if self._objects is None:
                from docpost.storage import ObjectStore

                self._objects = ObjectStore()
            return self._objects

    # -- one message -------------------------------------------------------------------------

    def receive(self, body: bytes) -> wire.Answer:
        """The answer to one PostModtag call with this body."""
        import hashlib

        from docpost.replies.errors import InboundRejected
        from docpost.replies.parsing import parse_inbound

        try:
            memo = wire.memo_of(body)
        except wire.WireError as exc:
            return wire.refused(exc.code, exc.message)
        digest_key = "sha256:" + hashlib.sha256(memo).hexdigest()[:40]
        refusal: tuple[str, str] | None = None
        key: str | None = None
        try:
            message = parse_inbound(memo)
            key = wire.message_uuid(message.message_uuid)
        except (InboundRejected, wire.WireError) as exc:
            refusal = (exc.code, exc.message)
        except Exception as exc:  # noqa: BLE001 - a bug of ours is no reason to refuse a citizen
            log.warning("postmodtag: a message could not be read (%s); stored for the manual queue",
                        describe(exc))
            key = digest_key  # routing reads it again and queues it with internal.<Type>
        if refusal is not None:
            return self._refuse(digest_key, memo, *refusal)
        return self._store_and_accept(key, memo)

    def _refuse(self, key: str, memo: bytes, code: str, text: str) -> wire.Answer:
        try:
            self.store().refuse(key, memo, code, text, self.actor)
        except Exception as exc:  # noqa: BLE001 - a refusal needs no storage; it is only recorded
            log.warning("postmodtag: refusal %s (%s) not recorded: %s", key, code, describe(exc))
        log.info("postmodtag: refused %s: %s", key, code)
        return wire.refused(code, text)

    def _store_and_accept(self, key: str, memo: bytes) -> wire.Answer:
        from docpost.replies.store import REFUSED

        uuid = key if not key.startswith("sha256:") else None
        try:
            store = self.store()
            found = store.find(key)
            if found is None:
                self.objects().put_bytes(s3_key(key), store.seal(memo), "application/octet-stream")
                found, created = store.receive(key, memo)
                log.info("postmodtag: %s %s", "accepted" if created else "accepted again", key)
            else:
                log.info("postmodtag: %s received again: answered as before", key)
        except Exception as exc:  # noqa: BLE001 - S3, the database, the settings: retry later
            log.warning("postmodtag: %s not stored, answered 503: %s", key, describe(exc))
            return wire.unavailable(message_uuid=uuid)
        if found.state == REFUSED:  # cannot happen for a UUID key; kept for a digest key
            return wire.refused(found.reason_code or "inbound.rejected", found.reason_text or "", uuid)
        return wire.accepted(uuid) if uuid else wire.Answer(wire.ACCEPTED, None)

    # -- readiness -----------------------------------------------------------------------------

    def ready(self) -> dict[str, str]:
        """Whether the database and S3 answer now ({"database": "ok" | code, "s3": ...})."""
        out = {}
        try:
            self.store().counts()
            out["database"] = "ok"
        except Exception as exc:  # noqa: BLE001
            out["database"] = getattr(exc, "code", None) or internal_code(exc)
        try:
            self.objects().exists(f"{INBOUND_PREFIX}.ready-check")
            out["s3"] = "ok"
        except Exception as exc:  # noqa: BLE001
            out["s3"] = getattr(exc, "code", None) or internal_code(exc)
        return out


async def _read_body(request: Request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > wire.MAX_BODY_BYTES:
            raise wire.WireError(wire.TOO_LARGE, f"the message is larger than {wire.MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _respond(answer: wire.Answer, transaction: str | None) -> Response:
    status, headers, body = wire.encode_answer(answer, transaction)
    return Response(content=body, status_code=status, headers=headers)


def create_app(*, ledger=None, objects=None, actor: str = ACTOR) -> FastAPI:  # noqa: ANN001
    """The endpoint. ``ledger`` (a docpost Ledger) and ``objects`` (an ObjectStore) default to the
    settings' (``DOCPOST_DB_URL``, ``DOCPOST_BUCKET`` ...), made on the first request."""
    from starlette.concurrency import run_in_threadpool

    receiver = Receiver(ledger, objects, actor)
    app = FastAPI(title="docpost PostModtag (SF1606)", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.receiver = receiver

    @app.post(wire.PATH)
    async def post_modtag(request: Request) -> Response:
        transaction = wire.transaction_id(request.headers)
        try:
            wire.check_request(request.headers.get("content-type"), request.headers.get("content-length"))
            body = await _read_body(request)
        except wire.WireError as exc:
            return _respond(wire.refused(exc.code, exc.message), transaction)
        answer = await run_in_threadpool(receiver.receive, body)
        return _respond(answer, transaction)

    @app.get(wire.HEALTH_PATH)
    async def health(deep: bool = False) -> Response:
        if not deep:
            return JSONResponse({"status": "ok"})
        checks = await run_in_threadpool(receiver.ready)
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", **checks}, 200 if ok else 503)

    return app


__all__ = ["INBOUND_PREFIX", "Receiver", "create_app", "s3_key"]
