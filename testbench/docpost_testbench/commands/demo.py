"""``docpost demo``: the nightly job end to end on the embedded stack (``make demo`` / ``make ui``).

Ctrl-C, SIGTERM and SIGHUP stop the whole stack; the exit code is then 130, 143 or 129.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run docpost_nightly on a generated night with embedded S3, SF1601 simulator and Airflow",
        description=__doc__,
    )
    p.add_argument("--count", type=int, default=200, help="submissions in the generated night (default 200)")
    p.add_argument("--night", type=dt.date.fromisoformat, default=None, help="YYYY-MM-DD (default: yesterday)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--broken-share", type=float, default=0.1)
    p.add_argument("--home", type=Path, default=None, help="where the stack keeps its files (default .docpost/demo)")
    p.add_argument("--ui", action="store_true",
                   help="start airflow standalone and leave its UI running (Ctrl-C, SIGTERM or SIGHUP stop it)")
    # tests only: the S3 endpoint the DAGs see (e.g. a closed port), unlike the one the night is put in
    p.add_argument("--dag-s3-endpoint-url", default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from docpost_testbench import demo

    return demo.run(count=args.count, night=args.night, seed=args.seed, broken_share=args.broken_share,
                    home=args.home, ui=args.ui, dag_s3_endpoint_url=args.dag_s3_endpoint_url)
