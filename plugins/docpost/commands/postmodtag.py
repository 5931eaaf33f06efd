"""``docpost postmodtag serve``: the SF1606 PostModtag endpoint (citizens' messages to the municipality).

A server, not a command that prints data: no ``--output``. Once it accepts connections it prints
``docpost postmodtag listening on <url>`` on stdout (a supervisor or a test reads it); its log goes
to stderr. Defaults come from the settings (``DOCPOST_POSTMODTAG_HOST``, ``_PORT``, ``_CERT``,
``_KEY``, ``_CLIENT_CA``); see docs/reply-routing.md.
"""

from __future__ import annotations

import argparse

from docpost.commands._output import EXIT_OK, UsageError, port


def serve(args: argparse.Namespace) -> int:
    from docpost import config
    from docpost.postmodtag.service import READY_PREFIX, serve as run

    s = config.settings()
    host = args.host if args.host is not None else s.postmodtag_host
    port = args.port if args.port is not None else s.postmodtag_port
    cert = args.cert if args.cert is not None else s.postmodtag_cert
    key = args.key if args.key is not None else s.postmodtag_key
    client_ca = args.client_ca if args.client_ca is not None else s.postmodtag_client_ca
    if bool(cert) != bool(key):
        raise UsageError("--cert and --key go together")
    if client_ca and not cert:
        raise UsageError("--client-ca needs --cert/--key")
    run(host, port, cert or None, key or None, client_ca or None,
        announce=lambda url: print(READY_PREFIX + url, flush=True))
    return EXIT_OK


def register(subparsers) -> None:  # noqa: ANN001
    parser = subparsers.add_parser("postmodtag", help="the SF1606 PostModtag endpoint (inbound messages)")
    sub = parser.add_subparsers(dest="postmodtag_command", metavar="ACTION", required=True)
    p = sub.add_parser(
        "serve", help="serve the PostModtag endpoint until interrupted",
        description="Receive citizens' and companies' MeMo messages from the Postkomponent: each is read "
                    "safely, stored (S3 inbound/ and the reply store) and only then accepted; unreadable or "
                    "hostile ones are refused with a reason; storage trouble answers 503. With --cert/--key "
                    "it speaks HTTPS, with --client-ca too it demands the Postkomponent's client certificate.")
    p.add_argument("--host", help="address to listen on (default: DOCPOST_POSTMODTAG_HOST, 127.0.0.1)")
    p.add_argument("--port", type=port, help="port (default: DOCPOST_POSTMODTAG_PORT, 8606; 0: any free port)")
    p.add_argument("--cert", help="server certificate, PEM (default: DOCPOST_POSTMODTAG_CERT)")
    p.add_argument("--key", help="its private key, PEM (default: DOCPOST_POSTMODTAG_KEY)")
    p.add_argument("--client-ca", help="CA of accepted client certificates: mutual TLS "
                                       "(default: DOCPOST_POSTMODTAG_CLIENT_CA)")
    p.set_defaults(func=serve)
