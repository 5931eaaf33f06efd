"""docpost_nightly at night scale through a real scheduler: chunked mapped tasks against one task per letter.

    .venv/bin/python benchmarks/bench_nightly.py [--count 20000] [--naive-count 200]
        [--chunk-size 500] [--parallelism 4] [--keep] [--skip-naive]

Starts a moto S3 server (subprocess, with its access log), the SF1601 simulator (subprocess,
mutual TLS with a throwaway CA) and the production topology natively
(``docpost_testbench.topology.start``, LocalExecutor: api-server, scheduler, dag-processor,
triggerer; Airflow's metadata and the ledger in scratch PostgreSQL databases, dropped after).
It unpauses ``docpost_nightly`` and lets the night Airflow schedules at once run on an empty
inbox, drops ``--count`` generated submissions (5 % broken) for one night into S3 (timed on its
own), triggers ``docpost_nightly`` for that night over the REST API and waits for the run.

Prints, for the run:
- per stage (collect, prepare: validate, stamp, render and the delivery request in one pass per
  letter, deliver): task instances, summed task seconds, the stage's wall span (first start to
  last end, the tasks running side by side), letters moved (ledger events), letters/s over the
  span and per task-second, S3 requests per letter (moto's access log, by key prefix);
- S3 requests per letter in all, against the files per submission;
- CPU seconds of docpost's task processes, of Airflow's own processes, of moto and of the
  simulator (psutil, sampled every second: a process's last second may be missed) and the peak
  RSS of each task process (the largest printed).
Then the naive design on ``--naive-count`` letters in a topology of its own: a temporary DAG
maps ONE task per message id, each calling validate -> stamp -> render -> deliver with a
one-message chunk; the ratio naive/chunked of seconds per letter closes the report.
Every process it started is stopped in ``finally`` (also on SIGTERM).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from docpost_testbench import stack
from docpost_testbench.measure import CpuSampler, moto_requests

NIGHT = dt.date(2026, 11, 2)
NAIVE_NIGHT = dt.date(2026, 11, 3)
BROKEN_SHARE = 0.05
# the ledger state each step moves messages out of (collect: none, it creates them)
STEP_FROM = {"validate": ("RECEIVED",), "stamp": ("VALIDATED",), "render": ("STAMPED",),
             "deliver": ("RENDERED", "RETRYING")}

NAIVE_DAG = '''\
"""Benchmark only: the naive design, one mapped task per letter (not part of docpost)."""
import pendulum
from airflow.sdk import dag, task

NIGHT = "{night}"


def _actor(context):
    return f"dag:{{context['dag'].dag_id}}/{{context['run_id']}}"


@dag(dag_id="docpost_naive", schedule=None, catchup=False,
     start_date=pendulum.datetime(2026, 1, 1, tz="Europe/Copenhagen"))
def docpost_naive():
    @task
    def collect(**context):
        from docpost import pipeline

        return pipeline.collect(NIGHT, actor=_actor(context))

    @task
    def message_ids(collected, **context):
        from docpost import pipeline
        from docpost.ledger import MessageState

        return pipeline.ledger().message_ids(states=[MessageState.RECEIVED])

    @task(pool="docpost_sf1601")
    def letter(message_id, **context):
        from docpost import pipeline

        chunk = pipeline.Chunk(NIGHT, message_id, 1, message_id, message_id)
        actor = _actor(context)
        counts = {{}}
        for stage in (pipeline.validate_chunk, pipeline.stamp_chunk, pipeline.render_chunk,
                      pipeline.deliver_chunk):
            counts.update(stage(chunk, actor=actor))
        return {{k: v for k, v in counts.items() if isinstance(v, int)}}

    @task(trigger_rule="all_done")
    def summary(results, **context):
        from docpost import pipeline

        return pipeline.summarize(NIGHT, actor=_actor(context))

    summary(letter.expand(message_id=message_ids(collect())))


docpost_naive()
'''


# which stage made a request: (method, first key part)
STAGE_OF = {("GET", "(bucket)"): "collect", ("GET", "inbox"): "prepare", ("PUT", "rendered"): "prepare",
            ("PUT", "outbox"): "prepare", ("PUT", "rejected"): "prepare", ("GET", "outbox"): "deliver",
            ("GET", "rendered"): "deliver", ("PUT", "reports"): "summary", ("GET", "recipients.json"): "bench"}


# --------------------------------------------------------------------------- one design


@dataclass
class Design:
    name: str
    night: dt.date
    bucket: str
    home: Path
    figures: dict = field(default_factory=dict)


def drop(design: Design, moto_url: str, count: int, seed: int) -> Path:
    """The night's submissions into the design's bucket (timed); returns the recipients register."""
    from docpost.storage import ObjectStore, S3Sink
    from docpost_testbench.generate import generate_night

    design.home.mkdir(parents=True, exist_ok=True)
    store = ObjectStore(design.bucket, endpoint_url=moto_url, backend="boto3")
    store.ensure_bucket()
    t = time.perf_counter()
    with S3Sink(store) as sink:
        generate_night(count, design.night, sink=sink, broken_share=BROKEN_SHARE, seed=seed)
    design.figures["drop_s"] = time.perf_counter() - t
    print(f"[{design.name}] dropped {count} submissions for {design.night} in {design.figures['drop_s']:.1f} s",
          flush=True)
    register = design.home / "recipients.json"
    register.write_bytes(store.get_bytes("recipients.json"))
    return register


def ledger_figures(ledger_url: str) -> tuple[Counter, dict[str, dict], dict[str, float]]:
    """Final state counts; per step the letters moved and the first-to-last event span; the
    submissions' files (mean, content files and with ``_READY``)."""
    from sqlalchemy import create_engine, func, select

    from docpost.ledger.schema import events, messages

    engine = create_engine(ledger_url)
    try:
        with engine.connect() as conn:
            states = Counter(dict(conn.execute(select(messages.c.state, func.count()).group_by(messages.c.state)).all()))
            rows = conn.execute(select(events.c.from_state, func.count(), func.min(events.c.at), func.max(events.c.at))
                                .where(events.c.from_state != events.c.to_state)
                                .group_by(events.c.from_state)).all()
            listings = [r[0] for r in conn.execute(select(messages.c.listing)).all()]
    finally:
        engine.dispose()
    steps: dict[str, dict] = {}
    for from_state, n, first, last in rows:
        step = next((s for s, src in STEP_FROM.items() if from_state in src), None)
        if step:
            entry = steps.setdefault(step, {"moved": 0, "first": first, "last": last})
            entry["moved"] += n
            entry["first"], entry["last"] = min(entry["first"], first), max(entry["last"], last)
    import json

    sizes = [json.loads(x) if isinstance(x, str) else x for x in listings if x]
    files = {"with_ready": sum(len(s) for s in sizes) / max(len(sizes), 1),
             "content": sum(sum(1 for n in s if n != "_READY") for s in sizes) / max(len(sizes), 1)}
    return states, steps, files


def _ts(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def task_figures(tis: list[dict]) -> dict[str, dict]:
    """Per task (mapped instances together): count, summed seconds, wall span, states."""
    out: dict[str, dict] = {}
    for ti in tis:
        name = ti["task_id"].rsplit(".", 1)[-1]
        e = out.setdefault(name, {"tasks": 0, "seconds": 0.0, "first": None, "last": None, "states": Counter()})
        e["tasks"] += 1
        e["states"][ti["state"]] += 1
        s, f = _ts(ti.get("start_date")), _ts(ti.get("end_date"))
        if s and f:
            e["seconds"] += (f - s).total_seconds()
            e["first"] = min(filter(None, (e["first"], s)))
            e["last"] = max(filter(None, (e["last"], f)))
    for e in out.values():
        e["span"] = (e["last"] - e["first"]).total_seconds() if e["first"] else 0.0
    return out


def run_design(design: Design, dag_id: str, count: int, conf: dict, args, moto, pki,
               dags_folder: Path | None, stoppers: list) -> None:
    """Drop, start the simulator and a LocalExecutor topology, run ``dag_id`` over REST, measure."""
    from docpost_testbench import topology
    from docpost_testbench.simulator.runner import start_simulator

    register = drop(design, moto.url, count, args.seed)
    sim = start_simulator(design.home / "simulator", register, {}, tls_cert=pki.server_cert,
                          tls_key=pki.server_key, client_ca=pki.ca_cert,
                          client_cert=(pki.client_cert, pki.client_key), subprocess_mode=True)
    stoppers.append(sim.stop)
    extra = {"SF1601_URL": sim.url, "SF1601_CERT_FILE": str(pki.client_cert), "SF1601_KEY_FILE": str(pki.client_key),
             "SF1601_CA_FILE": str(pki.ca_cert), "AIRFLOW__CORE__MAX_MAP_LENGTH": str(max(count + 10, 1024))}
    topo = topology.start(design.home / "airflow", executor="LocalExecutor", bucket=design.bucket,
                          s3_endpoint_url=moto.url, extra_env=extra, dags_folder=dags_folder,
                          parallelism=args.parallelism)
    stoppers.append(topo.stop)
    api = topo.api()
    api.wait_for_dag(dag_id, timeout=300)
    api.unpause(dag_id)
    settled(api, dag_id)  # docpost_nightly: the latest night Airflow schedules at once (it collects no letter
    sampler = CpuSampler({"Airflow": [h.pid for h in topo.components.values()], "moto": [moto.handle.pid],
                          "simulator": [sim.pid]}).start()  # of the benchmark's night, long before the window)
    _counts, mark = moto_requests(moto.handle.log_path, design.bucket)
    t = time.perf_counter()
    run_id = api.trigger(dag_id, conf=conf)
    print(f"[{design.name}] triggered {dag_id} run {run_id} ...", flush=True)
    deadline = time.monotonic() + args.timeout
    while (state := api.run(dag_id, run_id)["state"]) not in ("success", "failed"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{dag_id} run still {state} after {args.timeout:.0f} s")
        time.sleep(10)
    wall = time.perf_counter() - t
    procs = sampler.stop()
    requests, _n = moto_requests(moto.handle.log_path, design.bucket, since=mark)
    states, steps, files = ledger_figures(topo.ledger_url)
    design.figures.update(state=state, wall_s=wall, procs=procs, requests=requests, states=states, steps=steps,
                          files=files, tasks=task_figures(api.task_instances(dag_id, run_id)),
                          delivered=sim_deliveries(sim))
    print(f"[{design.name}] run {state} in {wall:.1f} s", flush=True)


def settled(api, dag_id: str, wait: float = 20.0, timeout: float = 300.0) -> None:
    """Until no run of ``dag_id`` is queued or running (after ``wait`` seconds for one to appear)."""
    time.sleep(wait)
    deadline = time.monotonic() + timeout
    while any(r["state"] not in ("success", "failed") for r in api.runs(dag_id)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"a run of {dag_id} is still not done after {timeout:.0f} s")
        time.sleep(2)


def sim_deliveries(sim) -> dict:
    """What the simulator counted: requests, letters accepted, and sends of a transaction already seen."""
    stats = sim.get("/sim/stats")
    return {k: stats[k] for k in ("requests", "accepted", "duplicates", "rejected")}


# --------------------------------------------------------------------------- report


def rate(n: float, seconds: float) -> str:
    return f"{n / seconds:9.1f}" if seconds >= 1 else "        -"


def report_chunked(design: Design, count: int) -> None:
    f = design.figures
    letters = sum(f["states"].values())
    tasks, steps, req = f["tasks"], f["steps"], f["requests"]
    by_stage: Counter = Counter()
    for key, n in req.items():
        by_stage[STAGE_OF.get(key, "other")] += n
    print()
    print(f"chunked design: {count} submissions, {letters} registered, night {design.night}, run {f['state']}, "
          f"wall {f['wall_s']:.1f} s, {letters / f['wall_s']:.1f} letters/s")
    print(f"  {'stage':9} {'tasks':>5} {'task s':>8} {'span s':>7} {'letters':>7} {'/s span':>9} {'/s task':>9} "
          f"{'S3/letter':>9}")
    for stage, step_names in (("collect", ()), ("prepare", ("validate", "stamp", "render")), ("deliver", ("deliver",))):
        t = tasks.get(stage, {"tasks": 0, "seconds": 0.0, "span": 0.0})
        moved = letters if stage == "collect" else steps.get(step_names[-1], {}).get("moved", 0)
        if stage == "prepare":  # letters the pass worked on: validated (or rejected by validation)
            moved = steps.get("validate", {}).get("moved", 0)
        print(f"  {stage:9} {t['tasks']:5d} {t['seconds']:8.1f} {t['span']:7.1f} {moved:7d} {rate(moved, t['span'])} "
              f"{rate(moved, t['seconds'])} {by_stage[stage] / max(letters, 1):9.2f}")
    for step in ("validate", "stamp", "render", "deliver"):
        s = steps.get(step)
        if s:
            span = (s["last"] - s["first"]).total_seconds()
            print(f"    ledger {step:8} {s['moved']:7d} letters moved, events over {span:7.1f} s {rate(s['moved'], span)} /s")
    total = sum(req.values())
    print(f"  S3 requests: {total} ({dict(sorted((f'{m} {p}', n) for (m, p), n in req.items()))})")
    print(f"  S3 requests per letter: {total / max(letters, 1):.2f}; files per submission {f['files']['content']:.2f} "
          f"(+ _READY: {f['files']['with_ready']:.2f})")
    cpu = f["procs"]["cpu"]
    print("  CPU seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]))
          + f" (total {sum(cpu.values()):.0f} of {2 * f['wall_s']:.0f} on 2 cores)")
    print(f"  peak RSS of a task process: {f['procs']['peak_rss_mib']:.0f} MiB ({f['procs']['task_processes']} task processes)")
    print(f"  simulator: {f['delivered']}")
    print(f"  final states: {dict(sorted(f['states'].items()))}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000, help="submissions for the chunked run")
    parser.add_argument("--naive-count", type=int, default=200, help="submissions for the naive run")
    parser.add_argument("--chunk-size", type=int, default=500)
    parser.add_argument("--parallelism", type=int, default=4, help="Airflow's core.parallelism (LocalExecutor)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds per run")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: (_ for _ in ()).throw(KeyboardInterrupt(f"signal {signum}")))

    from docpost_testbench.pki import create_test_pki

    root = Path(tempfile.mkdtemp(prefix="docpost-bench-nightly-"))
    print(f"temp dir {root}", flush=True)
    moto = stack.start_moto(log_path=root / "moto.log")
    stoppers: list = [moto.stop]
    try:
        os.environ.update({"DOCPOST_S3_ENDPOINT_URL": moto.url, "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1"})
        pki = create_test_pki(root / "pki")
        chunked = Design("chunked", NIGHT, "bench-chunked", root / "chunked")
        run_design(chunked, "docpost_nightly", args.count, {"night": NIGHT.isoformat(), "chunk_size": args.chunk_size},
                   args, moto, pki, None, stoppers)
        report_chunked(chunked, args.count)
        naive = None
        if not args.skip_naive:
            for stop in reversed(stoppers[1:]):  # the chunked topology and simulator: the machine is shared
                stop()
            del stoppers[1:]
            dags = root / "naive-dags"
            dags.mkdir()
            (dags / "docpost_naive.py").write_text(NAIVE_DAG.format(night=NAIVE_NIGHT.isoformat()))
            naive = Design("naive", NAIVE_NIGHT, "bench-naive", root / "naive")
            run_design(naive, "docpost_naive", args.naive_count, {}, args, moto, pki, dags, stoppers)
            n = sum(naive.figures["states"].values())
            print(f"\nnaive design: {args.naive_count} submissions, {n} registered, run {naive.figures['state']}, "
                  f"wall {naive.figures['wall_s']:.1f} s, {naive.figures['wall_s'] / max(n, 1):.3f} s per letter")
        c = chunked.figures
        per_c = c["wall_s"] / max(sum(c["states"].values()), 1)
        print(f"\nseconds per letter (wall): chunked {per_c:.4f}", end="")
        if naive:
            per_n = naive.figures["wall_s"] / max(sum(naive.figures["states"].values()), 1)
            print(f", naive {per_n:.3f}; ratio naive/chunked {per_n / per_c:.1f}x")
        else:
            print()
        return int(c["state"] != "success" or bool(naive and naive.figures["state"] != "success"))
    finally:
        for stop in reversed(stoppers):
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - stop what can be stopped, say what could not
                print(f"  (cleanup: {type(exc).__name__}: {exc})", file=sys.stderr)
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
