"""Message identity and pseudonymisation.

- :func:`message_uuid` and :func:`transaction_id` derive version-4-shaped UUIDs from a message's
  identity (source system, submission id, content hash) and its generation, so a retried send
  carries the same ids. Generation 0 (every message until an operator requeues it) gives the ids
  docpost has always derived; a requeue starts generation n+1, whose ids are derived with the
  generation number as well (a new SF1601 transaction and a new MeMo message, sent again).
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


def _derive(namespace: bytes, source_system: str, submission_id: str, content_hash: str, generation: int = 0) -> str:
    identity = "\x1f".join((source_system, submission_id, content_hash.lower())).encode()
    if generation:  # generation 0 keeps the original derivation: ids of existing ledgers and receipts in flight
        if generation < 0:
            raise ValueError(f"a message generation is 0 or more, not {generation}")
        # ":generation:<n>" after the namespace: never the input of generation 0 nor of another n
        namespace = namespace + b":generation:" + str(int(generation)).encode()
    digest = hashlib.sha256(namespace + b"\x00" + identity).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))  # sets the version and variant bits


def message_uuid(source_system: str, submission_id: str, content_hash: str, generation: int = 0) -> str:
    """The MeMo ``messageUUID`` of a message in ``generation``: deterministic, version-4 shaped."""
    return _derive(_MESSAGE_NS, source_system, submission_id, content_hash, generation)


def transaction_id(source_system: str, submission_id: str, content_hash: str, generation: int = 0) -> str:
    """The SF1601 ``x-TransaktionsId`` of a message in ``generation``: deterministic, version-4 shaped."""
    return _derive(_TRANSACTION_NS, source_system, submission_id, content_hash, generation)


def digits_of(identifier: str) -> str:
    return "".join(ch for ch in identifier if ch.isdigit())


def recipient_hash(id_type: str, identifier: str, key: bytes) -> str:
    """Keyed hash (HMAC-SHA256, hex) of a recipient, for lookups without the clear number."""
    message = f"{str(id_type).upper()}:{digits_of(identifier)}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def pseudonymise(id_type: str, identifier: str, key: bytes) -> tuple[str, str]:
    """``(masked, keyed hash)`` of a clear CPR/CVR number."""
    return mask_identifier(identifier), recipient_hash(id_type, identifier, key)
