"""Serving the PostModtag endpoint: uvicorn, with mutual TLS when certificates are configured.

With ``cert`` and ``key`` the endpoint speaks HTTPS; with ``client_ca`` too it demands a client
certificate signed by that CA (``ssl.CERT_REQUIRED``): the Postkomponent's (its OCES/FOCES
certificate chain in production). It serves through :mod:`docpost.serving` (uvicorn).
"""

from __future__ import annotations

from typing import Callable

from docpost import serving
from docpost.errors import ConfigurationError

READY_PREFIX = "docpost postmodtag listening on "


def tls_options(cert: str | None, key: str | None, client_ca: str | None) -> dict:
    """uvicorn's TLS options; a half configuration is refused (no silent plain HTTP)."""
    if not cert and not key:
        if client_ca:
            raise ConfigurationError("DOCPOST_POSTMODTAG_CLIENT_CA needs DOCPOST_POSTMODTAG_CERT and _KEY")
        return {}
    if not (cert and key):
        raise ConfigurationError("DOCPOST_POSTMODTAG_CERT and DOCPOST_POSTMODTAG_KEY go together")
    return serving.tls_options(cert, key, client_ca)


def serve(host: str, port: int, cert: str | None = None, key: str | None = None,
          client_ca: str | None = None, *, app=None,  # noqa: ANN001
          announce: Callable[[str], None] | None = None) -> None:
    """Serve the endpoint in the foreground until interrupted; ``announce(url)`` once accepting."""
    from docpost.postmodtag.app import create_app

    options = tls_options(cert, key, client_ca)
    serving.serve(app or create_app(), serving.bind(host, port), options, announce=announce)


__all__ = ["READY_PREFIX", "serve", "tls_options"]
