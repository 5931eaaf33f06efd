"""Message identity and pseudonymisation.

- :func:`message_uuid` and :func:`transaction_id` derive version-4-shaped UUIDs from a message's
  identity (source system, submission id, content hash), so a retried send carries the same ids.
- :func:`pseudonymise` turns a clear CPR/CVR into what the ledger stores: the mask
  (``010190-****``) and an HMAC-SHA256 keyed hash for lookups. The clear number is never stored.

Free text (reasons, details, receipt errors) passes :func:`docpost.privacy.scrub` before it
reaches the ledger.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

from docpost.privacy import mask_identifier

_MESSAGE_NS = b"docpost:message-uuid:1"
_TRANSACTION_NS = b"docpost:transaction-id:1"


def _derive(namespace: bytes, source_system: str, submission_id: str, content_hash: str) -> str:
    identity = "\x1f".join((source_system, submission_id, content_hash.lower())).encode()
    digest = hashlib.sha256(namespace + b"\x00" + identity).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))  # sets the version and variant bits


def message_uuid(source_system: str, submission_id: str, content_hash: str) -> str:
    """The MeMo ``messageUUID`` of a message: deterministic, version-4 shaped."""
    return _derive(_MESSAGE_NS, source_system, submission_id, content_hash)


def transaction_id(source_system: str, submission_id: str, content_hash: str) -> str:
    """The SF1601 ``x-TransaktionsId`` of a message: deterministic, version-4 shaped."""
    return _derive(_TRANSACTION_NS, source_system, submission_id, content_hash)


def digits_of(identifier: str) -> str:
    return "".join(ch for ch in identifier if ch.isdigit())


def recipient_hash(id_type: str, identifier: str, key: bytes) -> str:
    """Keyed hash (HMAC-SHA256, hex) of a recipient, for lookups without the clear number."""
    message = f"{str(id_type).upper()}:{digits_of(identifier)}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def pseudonymise(id_type: str, identifier: str, key: bytes) -> tuple[str, str]:
    """``(masked, keyed hash)`` of a clear CPR/CVR number."""
    return mask_identifier(identifier), recipient_hash(id_type, identifier, key)
