"""``docpost simulator``: run the SF1601 simulator (see docs/sf1601-simulator.md).

A server, not a command that prints data: no ``--output``. It prints its test PKI and its
``READY <url>`` line on stdout (the runner reads them) and its log on stderr.
"""

from __future__ import annotations

import argparse

from docpost_testbench.simulator.app import FAULT_FLAGS

_FAULT_HELP = {
    "error_5xx": "share of /kombi requests answered 503 (0..1)",
    "rate_limit": "share answered 429 with Retry-After",
    "timeout": "share recorded but not answered within --fault-timeout-seconds",
    "drop": "share whose connection is closed without an answer",
    "slow": "share answered after --fault-slow-seconds",
    "duplicate_receipts": "share of letters whose final receipt is published twice",
    "out_of_order_receipts": "share of letters with an intermediate receipt after the final one",
    "timeout_seconds": "how long a 'timeout' answer is held back (seconds)",
    "slow_seconds": "how long a 'slow' answer is held back (seconds)",
    "retry_after": "Retry-After seconds on 429 answers",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("simulator", help="run the SF1601 (Digital Post) simulator",
                              description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8601, help="0 picks a free port")
    p.add_argument("--register", help="recipients.json written by `docpost generate`")
    p.add_argument("--state", help="state directory (SQLite); default: $DOCPOST_HOME/simulator")
    p.add_argument("--tls-cert", help="server certificate (PEM); enables HTTPS")
    p.add_argument("--tls-key", help="server private key (PEM)")
    p.add_argument("--client-ca", help="CA for client certificates: enables mutual TLS")
    p.add_argument("--make-test-pki", metavar="DIR",
                   help="create a throwaway CA, server and client certificate in DIR and use them")
    for key, flag in FAULT_FLAGS.items():
        kind = int if key == "retry_after" else float
        metavar = "SECONDS" if key.endswith("seconds") or key == "retry_after" else "SHARE"
        p.add_argument(flag, dest=f"fault_{key}", type=kind, default=None, metavar=metavar,
                       help=_FAULT_HELP[key])
    p.add_argument("--seed", type=int, default=0, help="seed for every random choice")
    p.add_argument("--default-recipient", choices=("digital", "physical", "unknown"),
                   default="digital", help="status of recipients not in the register")
    p.add_argument("--receipt-delay", type=float, default=0.2, help="seconds until a receipt")
    p.add_argument("--receipt-envelope", action="store_true",
                   help="publish receipts in Beskedfordeler envelopes")
    p.add_argument("--amqp-url", default=None,
                   help="also publish receipts as Beskedfordeler envelopes to this AMQP broker "
                        "(amqp://guest:guest@127.0.0.1:5672/%%2F)")
    p.add_argument("--amqp-queue", default="docpost.receipts", help="the queue receipts are published to")
    p.add_argument("--postmodtag-url", default=None,
                   help="push citizens' messages to this PostModtag endpoint, as the Postkomponent does")
    p.add_argument("--postmodtag-cert", default=None, help="client certificate (PEM) for the endpoint's mutual TLS")
    p.add_argument("--postmodtag-key", default=None, help="its private key (PEM)")
    p.add_argument("--postmodtag-ca", default=None, help="CA that signed the endpoint's server certificate")
    p.add_argument("--access-lifetime", type=float, default=3600.0,
                   help="access token lifetime in seconds")
    p.add_argument("--saml-lifetime", type=float, default=8 * 3600.0,
                   help="SAML token lifetime in seconds")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from docpost import config
    from docpost_testbench.simulator import SimulatorConfig, create_app, serve
    from docpost.commands._output import UsageError
    from docpost_testbench.simulator.runner import READY_PREFIX

    tls_cert, tls_key, client_ca = args.tls_cert, args.tls_key, args.client_ca
    if args.make_test_pki:
        from docpost_testbench.pki import create_test_pki

        pki = create_test_pki(Path(args.make_test_pki))
        tls_cert, tls_key, client_ca = str(pki.server_cert), str(pki.server_key), str(pki.ca_cert)
        print(f"test PKI in {args.make_test_pki}: client certificate {pki.client_cert}, "
              f"key {pki.client_key}, CA {pki.ca_cert}", flush=True)
    if bool(tls_cert) != bool(tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    if client_ca and not tls_cert:
        raise UsageError("--client-ca needs --tls-cert/--tls-key")
    faults = {key: getattr(args, f"fault_{key}") for key in FAULT_FLAGS
              if getattr(args, f"fault_{key}") is not None}
    faults["seed"] = args.seed
    state = Path(args.state) if args.state else config.settings().home / "simulator"
    app = create_app(state, args.register, faults, ca=client_ca, config=SimulatorConfig(
        default_recipient=args.default_recipient, receipt_delay=args.receipt_delay,
        receipt_envelope=args.receipt_envelope, access_lifetime=args.access_lifetime,
        saml_lifetime=args.saml_lifetime, sender_cvr=config.settings().sender_cvr,
        amqp_url=args.amqp_url, amqp_queue=args.amqp_queue, postmodtag_url=args.postmodtag_url,
        postmodtag_cert=args.postmodtag_cert, postmodtag_key=args.postmodtag_key, postmodtag_ca=args.postmodtag_ca))
    serve(app, host=args.host, port=args.port, tls_cert=tls_cert, tls_key=tls_key,
          client_ca=client_ca, announce=lambda url: print(READY_PREFIX + url, flush=True))
    return 0
