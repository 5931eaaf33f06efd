"""Serving an ASGI app with uvicorn: on a socket bound first (so its URL is known before it
answers), with TLS, and mutual TLS when a client CA is given. The PostModtag endpoint and the test
bench's simulator serve through here; uvicorn is imported only inside :func:`uvicorn_config`.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any, Callable


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (0: any free port), inheritable by workers."""
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
    """uvicorn's TLS options: HTTPS with ``cert``/``key``; ``client_ca`` demands a client certificate."""
    if not cert:
        return {}
    options: dict = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    if client_ca:
        options.update(ssl_ca_certs=str(client_ca), ssl_cert_reqs=ssl.CERT_REQUIRED)
    return options


def uvicorn_config(app: Any, tls: dict, *, graceful: float = 5.0) -> Any:
    """The one uvicorn configuration: quiet, no lifespan, keep-alive 30 s, ``tls`` options."""
    import uvicorn

    return uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                          timeout_graceful_shutdown=graceful, timeout_keep_alive=30, **tls)


def serve(app: Any, sock: socket.socket, tls: dict, *, announce: Callable[[str], None] | None = None,
          graceful: float = 5.0) -> None:
    """Serve ``app`` on ``sock`` in the foreground until interrupted; ``announce(url)`` once accepting."""
    import uvicorn

    host, port = sock.getsockname()[:2]
    url = url_of(host, port, bool(tls))

    class _Server(uvicorn.Server):
        async def startup(self, sockets=None):  # noqa: ANN001
            await super().startup(sockets=sockets)
            if announce and self.started:
                announce(url)

    try:
        _Server(uvicorn_config(app, tls, graceful=graceful)).run(sockets=[sock])
    finally:
        sock.close()
