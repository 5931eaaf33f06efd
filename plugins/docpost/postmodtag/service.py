"""Serving the PostModtag endpoint: uvicorn, with mutual TLS when certificates are configured.

With ``cert`` and ``key`` the endpoint speaks HTTPS; with ``client_ca`` too it demands a client
certificate signed by that CA (``ssl.CERT_REQUIRED``): the Postkomponent's (its OCES/FOCES
certificate chain in production). uvicorn is imported here only, inside :func:`serve`.
"""

from __future__ import annotations

import socket
import ssl
from typing import Callable

from docpost.errors import ConfigurationError

READY_PREFIX = "docpost postmodtag listening on "


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def url_of(host: str, port: int, tls: bool) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}"


def tls_options(cert: str | None, key: str | None, client_ca: str | None) -> dict:
    """uvicorn's TLS options; a half configuration is refused (no silent plain HTTP)."""
    if not cert and not key:
        if client_ca:
            raise ConfigurationError("DOCPOST_POSTMODTAG_CLIENT_CA needs DOCPOST_POSTMODTAG_CERT and _KEY")
        return {}
    if not (cert and key):
        raise ConfigurationError("DOCPOST_POSTMODTAG_CERT and DOCPOST_POSTMODTAG_KEY go together")
    options: dict = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    if client_ca:
        options.update(ssl_ca_certs=str(client_ca), ssl_cert_reqs=ssl.CERT_REQUIRED)
    return options


def serve(host: str, port: int, cert: str | None = None, key: str | None = None,
          client_ca: str | None = None, *, app=None,  # noqa: ANN001
          announce: Callable[[str], None] | None = None) -> None:
    """Serve the endpoint in the foreground until interrupted; ``announce(url)`` once accepting."""
    import uvicorn

    from docpost.postmodtag.app import create_app

    options = tls_options(cert, key, client_ca)
    sock = _bind(host, port)
    url = url_of(host, sock.getsockname()[1], bool(options))

    class _Server(uvicorn.Server):
        async def startup(self, sockets=None):  # noqa: ANN001
            await super().startup(sockets=sockets)
            if announce and self.started:
                announce(url)

    config = uvicorn.Config(app or create_app(), log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=5, timeout_keep_alive=30, **options)
    try:
        _Server(config).run(sockets=[sock])
    finally:
        sock.close()


__all__ = ["READY_PREFIX", "serve", "tls_options", "url_of"]
