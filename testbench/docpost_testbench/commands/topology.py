"""``docpost topology``: the production topology on this machine, left running for an operator.

Airflow's api-server, scheduler, dag-processor, triggerer and Celery workers as separate
processes on scratch PostgreSQL databases (127.0.0.1:5432) and Redis (127.0.0.1:6379), set up by
docker/airflow-init.sh as docker-compose's init step is; moto for S3, the SF1601 simulator (mutual
TLS) and a mail sink. Once it runs it prints where everything answers (the UI's address and login,
the ledger, S3, SF1601, SMTP; ``--output json`` for scripts) and stays up; Ctrl-C, SIGTERM or SIGHUP
stop it all and drop the databases (exit code 130, 143 or 129). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from docpost.commands._output import add_output_argument, emit, iso_date


def register(subparsers) -> None:
    p = subparsers.add_parser("topology", help="run the production topology (Celery, PostgreSQL, Redis) locally",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--home", type=Path, default=Path(".docpost/topology"),
                   help="where its files and logs go (default .docpost/topology)")
    p.add_argument("--executor", choices=("CeleryExecutor", "LocalExecutor"), default="CeleryExecutor",
                   help="LocalExecutor: no broker and no workers, the scheduler runs the tasks")
    p.add_argument("--workers", type=int, default=2, help="Celery workers (default 2)")
    p.add_argument("--count", type=int, default=200, help="letters in the generated night in S3 (0: none)")
    p.add_argument("--night", type=iso_date, default=None, help="its date, YYYY-MM-DD (default yesterday)")
    p.add_argument("--seed", type=int, default=1)
    add_output_argument(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import sys

    from docpost_testbench import topology

    night = args.night or dt.date.today() - dt.timedelta(days=1)
    def ready(where: dict) -> None:
        emit(args, where, text="\n".join(f"{key:16}{value}" for key, value in where.items() if value is not None))
        sys.stdout.flush()

    return topology.serve(args.home, executor=args.executor, workers=args.workers, count=args.count,
                          night=night, seed=args.seed, say=lambda line: print(line, file=sys.stderr, flush=True),
                          ready=ready)
