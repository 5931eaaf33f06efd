"""Serving the submit API: uvicorn through :mod:`docpost.serving`, HTTPS with ``cert``/``key``,
mutual TLS with ``client_ca`` too (the source systems' client certificates, besides their tokens)."""

from __future__ import annotations

from typing import Callable

from docpost import serving
from docpost.errors import ConfigurationError


def tls_options(cert: str | None, key: str | None, client_ca: str | None) -> dict:
    """uvicorn's TLS options; a half configuration is refused (no silent plain HTTP)."""
    if bool(cert) != bool(key) or (client_ca and not cert):
        raise ConfigurationError("DOCPOST_SENDNOW_CERT and _KEY go together, and _CLIENT_CA needs both")
    return serving.tls_options(cert, key, client_ca)


def serve(host: str, port: int, cert: str | None = None, key: str | None = None, client_ca: str | None = None,
          *, announce: Callable[[str], None] | None = None) -> None:
    """Serve the API in the foreground until interrupted; ``announce(url)`` once accepting."""
    from docpost.sendnow.app import create_app

    options = tls_options(cert, key, client_ca)
    app = create_app()
    try:
        serving.serve(app, serving.bind(host, port), options, announce=announce)
    finally:
        if app.state.notifier is not None:
            app.state.notifier.stop()
        app.state.intake.close()
