"""The submit API (FastAPI): one letter from a caseworker's system, answered at once.

- ``POST /v1/submissions/{submission_id}``: the submission's files as ``multipart/form-data``
  (each part's file name is the file's name) or one ``application/zip``; ``Authorization: Bearer
  <token>`` names the source system (``DOCPOST_SENDNOW_TOKENS``). Answers ``202`` with the message
  UUID and its status URL (a repeat of the same content answers the same), ``4xx`` with every
  problem and its reason code (``422`` contract, ``400`` a malformed upload or path, ``413`` too
  large, ``409`` the same id with other content, ``401`` no or an unknown token), ``503`` while S3
  or the ledger is away (nothing accepted: send again).
- ``GET /v1/messages/{message_uuid}``: state, channel, receipt and timeline; only the source
  system that sent it sees it, and no personal data is in it.
"""

from __future__ import annotations

import hmac
import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from docpost.errors import describe, internal_code, is_infrastructure
from docpost.sendnow import HEALTH_PATH, STATUS_PATH, SUBMIT_PATH
from docpost.sendnow.intake import MAX_UPLOAD_BYTES, Conflict, Intake, Refused, add_file, issue, unzip

log = logging.getLogger(__name__)


def parse_tokens(text: str | None) -> dict[str, str]:
    """``source=token,source=token`` -> {token: source}; a malformed pair is a configuration error."""
    from docpost.errors import ConfigurationError

    tokens: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in (text or "").split(","))):
        source, sep, token = pair.partition("=")
        if not sep or not source.strip() or len(token.strip()) < 16:
            raise ConfigurationError("DOCPOST_SENDNOW_TOKENS must be source=token pairs, each token at least "
                                     "16 characters", code="config.invalid")
        tokens[token.strip()] = source.strip()
    return tokens


def _error(status: int, issues: list[dict], headers: dict | None = None) -> JSONResponse:
    codes = list(dict.fromkeys(i["code"] for i in issues))
    return JSONResponse({"accepted": False, "codes": codes, "errors": issues}, status, headers=headers)


async def _files_of(request: Request) -> dict[str, bytes]:
    """The uploaded files, by name, within the limits (checked while reading, before validating)."""
    kind = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_UPLOAD_BYTES:
        raise Refused([issue("submission.too-large", f"the upload is larger than {MAX_UPLOAD_BYTES} bytes")], status=413)
    if kind in ("application/zip", "application/x-zip-compressed"):
        body, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_UPLOAD_BYTES:
                raise Refused([issue("submission.too-large", f"the upload is larger than {MAX_UPLOAD_BYTES} bytes")],
                              status=413)
            body.append(chunk)
        return unzip(b"".join(body))
    if kind != "multipart/form-data":
        raise Refused([issue("submit.unsupported-media-type", "send multipart/form-data or application/zip")],
                      status=415)
    from starlette.datastructures import UploadFile

    files: dict[str, bytes] = {}
    try:
        async with request.form(max_files=64, max_fields=64, max_part_size=MAX_UPLOAD_BYTES) as form:
            for _field, value in form.multi_items():
                if isinstance(value, UploadFile):
                    add_file(files, value.filename or "", await value.read())
    except Refused:
        raise
    except Exception as exc:  # noqa: BLE001 - python-multipart's refusals (malformed, too many parts)
        log.info("sendnow: a malformed upload (%s)", type(exc).__name__)
        raise Refused([issue("submit.bad-upload", "the multipart upload cannot be read")], status=400) from None
    return files


def create_app(intake: Intake | None = None, tokens: dict[str, str] | None = None, notifier=None) -> FastAPI:  # noqa: ANN001
    """The API. ``tokens`` ({token: source system}) and ``intake`` default to the settings'."""
    from starlette.concurrency import run_in_threadpool

    from docpost.settings import settings

    if tokens is None:
        secret = settings().sendnow_tokens
        tokens = parse_tokens(secret.get_secret_value() if secret else None)
    if intake is None:
        from docpost.sendnow.notify import from_settings

        notifier = notifier or from_settings()
        intake = Intake(on_registered=notifier.poke)
    app = FastAPI(title="docpost submit API (send now)", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.intake, app.state.notifier = intake, notifier

    def source_of(request: Request) -> str | None:
        scheme, _sep, given = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            return None
        for token, source in tokens.items():
            if hmac.compare_digest(token.encode(), given.strip().encode()):
                return source
        return None

    def unauthorized() -> JSONResponse:
        return _error(401, [issue("submit.unauthorized", "a valid bearer token of a source system is required")],
                      {"WWW-Authenticate": "Bearer"})

    def unavailable(exc: BaseException) -> JSONResponse:
        code = getattr(exc, "code", None) or internal_code(exc)
        log.warning("sendnow: answered 503: %s", describe(exc))
        return _error(503, [issue(code, "storage or the ledger is unavailable; nothing was accepted, send again")],
                      {"Retry-After": "30"})

    @app.post(SUBMIT_PATH)
    async def submit(submission_id: str, request: Request) -> JSONResponse:
        source = source_of(request)
        if source is None:
            return unauthorized()
        try:
            files = await _files_of(request)
            accepted = await run_in_threadpool(intake.accept, source, submission_id, files)
        except Refused as exc:
            return _error(exc.status, exc.issues)
        except Conflict as exc:
            return _error(409, [issue(exc.code, exc.message)])
        except Exception as exc:  # noqa: BLE001 - S3 or the ledger away; a bug: never an acceptance
            if not is_infrastructure(exc) and not getattr(exc, "code", "").startswith(("storage.", "ledger.")):
                log.warning("sendnow: unexpected %s", describe(exc, trace=True))
            return unavailable(exc)
        body = {**accepted.as_dict(), "accepted": True, "repeat": not accepted.created,
                "status_url": str(request.url_for("status", message_uuid=accepted.message_uuid))}
        return JSONResponse(body, 202, headers={"Location": body["status_url"]})

    @app.get(STATUS_PATH, name="status")
    async def status(message_uuid: str, request: Request) -> JSONResponse:
        source = source_of(request)
        if source is None:
            return unauthorized()
        try:
            found = await run_in_threadpool(intake.status, source, message_uuid)
        except Exception as exc:  # noqa: BLE001
            return unavailable(exc)
        if found is None:
            return _error(404, [issue("status.unknown-message", "no message of this source system has this UUID")])
        return JSONResponse(found)

    @app.get(HEALTH_PATH)
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return app
