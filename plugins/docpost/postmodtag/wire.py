"""The wire format of SF1606 "Modtag post" (``PostModtag``, EP_FS1): the one module that knows it.

The Fælleskommunal Postkomponent calls the case system's endpoint synchronously with one MeMo
message a citizen or company sent the municipality; the answer accepts or refuses receipt and is
passed back to Digital Post. The exact field names of that exchange are not public, so what
docpost assumes is written down here (and in docs/reply-routing.md), and nothing outside this
module depends on it:

Request (assumed)
    ``POST /PostModtag`` with the MeMo message itself as the body (``<memo:Message>``, UTF-8),
    ``Content-Type: application/xml`` (``text/xml``, ``application/octet-stream`` and no type are
    taken too). The message's identity is the ``messageUUID`` of its ``MessageHeader``; an
    ``x-TransaktionsId`` header, when present, is only echoed for correlation.

Answer (assumed)
    JSON ``{"messageUUID": "<uuid or null>", "result": "accepted" | "refused",
    "reasonCode": "<code or null>", "reasonText": "<plain text or null>"}``:

    - ``200`` + ``accepted``: stored durably; the Postkomponent is done with it;
    - ``422`` + ``refused``: the content cannot be received (not XML, hostile XML, not a valid
      MeMo, no messageUUID, too large); ``reasonCode`` says why. Not to be retried: the same
      message gets the same answer;
    - ``503`` (``Retry-After``) + ``refused`` with ``reasonCode`` ``postmodtag.unavailable``: docpost
      could not store it now (S3 or the database); the Postkomponent retries later. Nothing was
      accepted.

The same messageUUID sent again gets the answer it got the first time (accepted, or refused with
the same reason), and nothing is stored twice.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from docpost.errors import DocpostError

PATH = "/PostModtag"
HEALTH_PATH = "/health"
MEDIA_TYPES = frozenset({"application/xml", "text/xml", "application/octet-stream", ""})
TRANSACTION_HEADER = "x-TransaktionsId"
MAX_BODY_BYTES = 64 * 1024 * 1024  # as docpost.replies.parsing.MAX_INBOUND_BYTES

ACCEPTED, REFUSED = "accepted", "refused"
STATUS_ACCEPTED, STATUS_REFUSED, STATUS_UNAVAILABLE = 200, 422, 503
RETRY_AFTER_SECONDS = 30

# reason codes of refusals of our own (besides docpost's inbound.malformed / inbound.hostile)
NO_MESSAGE_UUID = "postmodtag.no-message-uuid"
TOO_LARGE = "postmodtag.too-large"
MEDIA_TYPE = "postmodtag.unsupported-media-type"
EMPTY = "postmodtag.empty"
UNAVAILABLE = "postmodtag.unavailable"

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TRANSACTION = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


class WireError(DocpostError):
    """A request or an answer that does not have the assumed shape. ``code`` is its reason code."""

    code = "postmodtag.wire"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Answer:
    """The endpoint's answer to one PostModtag call."""

    result: str  # accepted | refused
    message_uuid: str | None = None
    reason_code: str | None = None
    reason_text: str | None = None
    status: int = STATUS_ACCEPTED

    @property
    def accepted(self) -> bool:
        return self.result == ACCEPTED

    @property
    def retry(self) -> bool:
        """The Postkomponent should call again later (infrastructure trouble on our side)."""
        return self.status >= 500


def accepted(message_uuid: str) -> Answer:
    return Answer(ACCEPTED, message_uuid, status=STATUS_ACCEPTED)


def refused(code: str, text: str, message_uuid: str | None = None) -> Answer:
    return Answer(REFUSED, message_uuid, code, text, STATUS_REFUSED)


def unavailable(text: str = "the message could not be stored now; try again later",
                message_uuid: str | None = None) -> Answer:
    return Answer(REFUSED, message_uuid, UNAVAILABLE, text, STATUS_UNAVAILABLE)


# ------------------------------------------------------------------------------ request


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def check_request(content_type: str | None, content_length: str | None) -> None:
    """Refuse before reading the body: an unknown media type, a declared length over the limit."""
    if media_type(content_type) not in MEDIA_TYPES:
        raise WireError(MEDIA_TYPE, f"the body must be the MeMo message as XML, not {media_type(content_type)[:60]!r}")
    if content_length is not None:
        try:
            length = int(content_length)
        except ValueError:
            raise WireError(TOO_LARGE, "Content-Length is not a number") from None
        if length > MAX_BODY_BYTES:
            raise WireError(TOO_LARGE, f"the message is larger than {MAX_BODY_BYTES} bytes")


def memo_of(body: bytes) -> bytes:
    """The MeMo bytes of a request body (the body itself, in this assumption)."""
    if not body or not body.strip():
        raise WireError(EMPTY, "the request holds no message")
    if len(body) > MAX_BODY_BYTES:
        raise WireError(TOO_LARGE, f"the message is larger than {MAX_BODY_BYTES} bytes")
    return body


def message_uuid(value: str | None) -> str:
    """The messageUUID (lower case) the message is known by; refused unless it is a UUID."""
    value = (value or "").strip().lower()
    if not _UUID.match(value):
        raise WireError(NO_MESSAGE_UUID, "the MeMo header carries no messageUUID that is a UUID")
    return value


def transaction_id(headers) -> str | None:  # noqa: ANN001 - any mapping of headers
    """The caller's ``x-TransaktionsId`` when it is a plain token (only echoed, never trusted)."""
    value = headers.get(TRANSACTION_HEADER) if headers is not None else None
    return value if value and _TRANSACTION.match(value) else None


def request(memo: bytes, transaction: str | None = None) -> tuple[dict[str, str], bytes]:
    """(headers, body) of a PostModtag call: what the Postkomponent (the simulator) sends."""
    headers = {"Content-Type": "application/xml"}
    if transaction:
        headers[TRANSACTION_HEADER] = transaction
    return headers, memo


# ------------------------------------------------------------------------------ answer


def encode_answer(answer: Answer, transaction: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """(HTTP status, headers, body) of an answer."""
    body = {"messageUUID": answer.message_uuid, "result": answer.result,
            "reasonCode": answer.reason_code, "reasonText": answer.reason_text}
    headers = {"Content-Type": "application/json"}
    if answer.status == STATUS_UNAVAILABLE:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    if transaction:
        headers[TRANSACTION_HEADER] = transaction
    return answer.status, headers, json.dumps(body, ensure_ascii=False).encode("utf-8")


def decode_answer(status: int, body: bytes) -> Answer:
    """The answer a PostModtag endpoint gave (what the Postkomponent reads back).

    A 5xx without our JSON is "unavailable"; any other shape is a :class:`WireError`.
    """
    try:
        data = json.loads(body or b"null")
    except ValueError:
        data = None
    if status >= 500 and not isinstance(data, dict):
        return Answer(REFUSED, None, UNAVAILABLE, f"HTTP {status}", status)
    if not isinstance(data, dict) or data.get("result") not in (ACCEPTED, REFUSED):
        raise WireError("postmodtag.answer", f"HTTP {status}: not a PostModtag answer")
    result = data["result"]
    if (result == ACCEPTED) != (status == STATUS_ACCEPTED):
        raise WireError("postmodtag.answer", f"HTTP {status} with result {result!r}")
    text = lambda key: data.get(key) if isinstance(data.get(key), str) else None  # noqa: E731
    return Answer(result, text("messageUUID"), text("reasonCode"), text("reasonText"), status)


__all__ = ["ACCEPTED", "Answer", "HEALTH_PATH", "PATH", "REFUSED", "WireError", "accepted", "check_request",
           "decode_answer", "encode_answer", "memo_of", "message_uuid", "refused", "request",
           "transaction_id", "unavailable"]
