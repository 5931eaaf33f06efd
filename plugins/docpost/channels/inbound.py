"""Pulling inbound messages (citizens' replies and new messages) from SF1601 or the simulator.

A receiving system pulls: ``GET /sim/inbound?limit=N`` lists pending messages (id and MeMo),
``POST /sim/inbound/{id}/ack`` acknowledges one once it is processed. What is not acknowledged
is delivered again on the next pull. Same mutual-TLS settings as :mod:`docpost.channels.sf1601`.

The service's ids are untrusted text: an id is sent back percent-encoded as one path segment, so
no id can point an acknowledgement at another path or message.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from docpost.channels.sf1601 import tls_context
from docpost.errors import DocpostError, Unavailable


class InboundChannelError(DocpostError):
    """The inbound endpoint could not be reached or answered nonsense. ``code`` is stable."""

    code = "inbound.channel"


class InboundUnavailable(InboundChannelError, Unavailable):
    code = "inbound.unavailable"


class InboundProtocolError(InboundChannelError):
    code = "inbound.protocol"


@dataclass(frozen=True)
class InboundItem:
    """One pulled message: the service's id and the raw MeMo bytes (untrusted)."""

    id: str
    memo: bytes

    def __repr__(self) -> str:  # the MeMo holds personal data
        return f"InboundItem({self.id}, {len(self.memo)} bytes)"


class InboundClient:
    """A client for the inbound pull/ack endpoints."""

    def __init__(self, base_url: str, cert: tuple[str, str] | None = None, ca: str | None = None,
                 timeout: float = 30.0) -> None:
        verify = tls_context(cert, ca) if base_url.startswith("https") else True
        self._http = httpx.Client(base_url=base_url.rstrip("/"), verify=verify, timeout=timeout)

    @classmethod
    def from_settings(cls) -> InboundClient:
        from docpost import config

        s = config.settings()
        if not s.sf1601_url:
            raise InboundUnavailable("DOCPOST_SF1601_URL is not set: nowhere to pull inbound messages from")
        return cls(s.sf1601_url, (s.sf1601_cert, s.sf1601_key) if s.sf1601_cert else None,
                   s.sf1601_ca, s.sf1601_timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> InboundClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs) -> dict:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise InboundUnavailable(f"inbound endpoint unreachable: {type(exc).__name__}") from None
        if response.status_code >= 500:
            raise InboundUnavailable(f"inbound endpoint answered HTTP {response.status_code}")
        if response.status_code >= 400:
            raise InboundProtocolError(f"inbound endpoint refused {method} {path.split('?')[0]}: "
                                       f"HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise InboundProtocolError("inbound endpoint answered with something other than JSON") from None

    def pull(self, limit: int = 50) -> list[InboundItem]:
        """The oldest pending messages (at most ``limit``)."""
        data = self._call("GET", "/sim/inbound", params={"limit": limit})
        if not isinstance(data, dict) or not isinstance(data.get("messages", []), list):
            raise InboundProtocolError("the inbound endpoint answered without a list of messages")
        items = []
        for entry in data.get("messages", []):
            try:
                inbound_id = entry["id"]
                if not isinstance(inbound_id, (str, int)) or isinstance(inbound_id, bool) or str(inbound_id) == "":
                    raise TypeError("no usable id")
                items.append(InboundItem(str(inbound_id), base64.b64decode(entry["memo"], validate=True)))
            except (KeyError, TypeError, binascii.Error, ValueError):
                raise InboundProtocolError("a pulled message has no id or no base64 MeMo") from None
        return items

    def ack(self, inbound_id: str) -> None:
        """Acknowledge one processed message (acknowledging twice is harmless)."""
        segment = quote(str(inbound_id), safe="")
        if segment in (".", ".."):  # a dot segment would be resolved away: ../ack is another path
            segment = segment.replace(".", "%2E")
        self._call("POST", f"/sim/inbound/{segment}/ack")
