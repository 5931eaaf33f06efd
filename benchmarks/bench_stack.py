"""How long the embedded stack takes: moto, `airflow standalone`, one trivial DAG run over REST.

    .venv/bin/python benchmarks/bench_stack.py [--cold]

Prints seconds for: moto start, standalone start (API answering; with the cached metadata
database unless --cold), DAG parsed, a one-task run from trigger to success, and stop.
"""

from __future__ import annotations

import argparse
import tempfile
import textwrap
import time
from pathlib import Path

from docpost_testbench import stack

DAG = textwrap.dedent(
    """
    import pendulum
    from airflow.sdk import dag, task

    @dag(dag_id="bench_trivial", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
    def bench_trivial():
        @task
        def noop():
            return 1
        noop()

    bench_trivial()
    """
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="let standalone create the metadata schema")
    args = parser.parse_args()
    if not args.cold:
        t = time.perf_counter()
        stack.metadata_db_template()
        print(f"metadata template ready  {time.perf_counter() - t:6.1f} s (built once per Airflow version)")
    with tempfile.TemporaryDirectory(prefix="docpost-bench-stack-") as tmp:
        root = Path(tmp)
        (root / "dags").mkdir()
        (root / "dags" / "bench_trivial.py").write_text(DAG)
        t = time.perf_counter()
        moto = stack.start_moto()
        print(f"moto_server up           {time.perf_counter() - t:6.1f} s")
        try:
            env = stack.airflow_env(root / "airflow", root / "dags", s3_endpoint_url=moto.url)
            t = time.perf_counter()
            airflow = stack.start_standalone(root / "airflow", env, db_template=not args.cold)
            print(f"airflow standalone up    {time.perf_counter() - t:6.1f} s ({'cold' if args.cold else 'cached db'})")
            try:
                with airflow.api() as api:
                    t = time.perf_counter()
                    api.wait_for_dag("bench_trivial")
                    print(f"DAG parsed               {time.perf_counter() - t:6.1f} s after the API answered")
                    api.unpause("bench_trivial")
                    t = time.perf_counter()
                    run_id = api.trigger("bench_trivial")
                    state = api.wait_for_run("bench_trivial", run_id, poll=0.25)
                    print(f"one-task run             {time.perf_counter() - t:6.1f} s trigger to {state}")
            finally:
                t = time.perf_counter()
                airflow.stop()
                print(f"standalone stopped       {time.perf_counter() - t:6.1f} s, "
                      f"{len(stack.session_members(airflow.handle.pid))} processes left")
        finally:
            moto.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
