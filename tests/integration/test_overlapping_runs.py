"""No letter left behind, none sent twice: two overlapping nights (a backfill of D-1 beside the
scheduled night D) run at the same time in two processes over the same letters, against a slow
SF1601 (every send takes longer than the claim lease) and a short lease.

Each process runs collect -> plan -> validate -> stamp -> render -> deliver for its night with its
own actor, as the DAG's tasks would (``dag:<dag id>/<run id>``). The lookback makes both nights
sweep the letters dropped for D-1. Claims are renewed while a stage works and every stage write is
fenced by the claim token, so the simulator must see each letter exactly once and no letter's
history may move backwards."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import time
import traceback

import pytest

from docpost import pipeline
from docpost.ledger import MessageState
from docpost.storage import ObjectStore, S3Sink
from pg_support import fresh_schema

pytestmark = [pytest.mark.integration, pytest.mark.slow]

D = dt.date(2026, 11, 26)
LEASE = 2  # seconds; a delivery chunk takes several times that against the slowed simulator
SLOW_SECONDS = 1.0  # every /kombi answer waits this long
CONCURRENCY = 4  # parallel sends per task: a chunk of 30 takes ~8 s
CHUNK = 30
S = MessageState
#: Forward order of the flow; anything that goes down it (or SUBMITTED -> RETRYING) is backwards.
ORDER = {S.RECEIVED: 0, S.VALIDATED: 1, S.STAMPED: 2, S.RENDERED: 3, S.SUBMITTED: 4}
STAGES = ("validate_chunk", "stamp_chunk", "render_chunk", "deliver_chunk")


def run_night(night: str, actor: str, start, ready, delay: float, results) -> None:
    """One DAG run in its own process: every stage over every chunk of the plan (a stage's mapped
    tasks one after the other); reports its counts, or the error that stopped it.

    Both runs start together; before delivery they meet (``ready``) and this one waits ``delay``
    seconds, so that the second run reaches delivery while the first is still sending its first
    chunk, a lease after the first claimed it: the overlap of the issue, every time."""
    try:
        start.wait(timeout=120)
        pipeline.collect(night, actor=actor)
        chunks = pipeline.plan_chunks(night, chunk_size=CHUNK)
        totals: dict[str, dict[str, int]] = {}
        for name in STAGES:
            stage = getattr(pipeline, name)
            if name == "deliver_chunk":
                ready.wait(timeout=120)
                time.sleep(delay)
            for chunk in chunks:
                out = stage(chunk, actor=actor)
                for k, v in out.items():
                    if isinstance(v, int) and k not in ("index", "count", "first_id", "last_id"):
                        totals.setdefault(name, {})[k] = totals.setdefault(name, {}).get(k, 0) + v
        results.put((actor, totals, None))
    except BaseException as exc:  # report to the test instead of dying silently
        results.put((actor, None, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from docpost_testbench.pki import create_test_pki

    return create_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture()
def shared_letters(tmp_path, s3_bucket, pg_url, pki, monkeypatch):
    """40 letters dropped for D-1 and 20 for D in S3, a migrated empty ledger, and a simulator that
    answers every send after SLOW_SECONDS and knows every recipient as a Digital Post user."""
    from docpost.ledger import Ledger, ledger_at
    from docpost_testbench.generate import generate_night
    from docpost_testbench.simulator.runner import start_simulator

    fresh_schema(pg_url)
    Ledger(pg_url).upgrade()  # once, before two processes would both migrate an empty database
    ledger_at.cache_clear()
    for name, value in {"DOCPOST_DB_URL": pg_url, "DOCPOST_CLAIM_LEASE_SECONDS": str(LEASE),
                        "DOCPOST_SF1601_CONCURRENCY": str(CONCURRENCY), "DOCPOST_SF1601_TIMEOUT": "20"}.items():
        monkeypatch.setenv(name, value)
    pipeline._client_for.cache_clear()
    store = ObjectStore()
    register: dict[str, str] = {}
    for day, count, seed in ((D - dt.timedelta(days=1), 40, 5), (D, 20, 6)):
        with S3Sink(store) as sink:
            generate_night(count, day, sink=sink, broken_share=0.0, seed=seed)
        register.update(dict.fromkeys(json.loads(store.get_bytes("recipients.json")), "digital"))
    (tmp_path / "recipients.json").write_text(json.dumps(register))
    sim = start_simulator(tmp_path / "sim", tmp_path / "recipients.json",
                          {"slow": 1.0, "slow_seconds": SLOW_SECONDS},
                          tls_cert=pki.server_cert, tls_key=pki.server_key, client_ca=pki.ca_cert,
                          client_cert=(pki.client_cert, pki.client_key), config={"receipt_delay": 0})
    monkeypatch.setenv("DOCPOST_SF1601_URL", sim.url)
    monkeypatch.setenv("DOCPOST_SF1601_CERT", str(pki.client_cert))
    monkeypatch.setenv("DOCPOST_SF1601_KEY", str(pki.client_key))
    monkeypatch.setenv("DOCPOST_SF1601_CA", str(pki.ca_cert))
    try:
        yield sim, 60
    finally:
        sim.stop()


def backwards_moves(history) -> list[str]:
    """The backwards steps of one letter's history (ledger events, oldest first)."""
    found = []
    for e in history:
        src, dst = e.from_state, e.to_state
        if src in ORDER and dst in ORDER and ORDER[dst] < ORDER[src]:
            found.append(f"{src}->{dst}")
        elif src is S.SUBMITTED and dst is S.RETRYING:
            found.append(f"{src}->{dst}")
    return found


def test_two_overlapping_nights_deliver_every_letter_exactly_once(shared_letters):
    sim, letters = shared_letters
    started = time.monotonic()
    ctx = multiprocessing.get_context("spawn")
    start, ready, results = ctx.Barrier(2), ctx.Barrier(2), ctx.Queue()
    runs = {  # the backfill of D-1 and the scheduled night D, as the DAG names its actors; (night, delay)
        "dag:docpost_nightly/backfill__2026-11-25T22:00:00+00:00": ((D - dt.timedelta(days=1)).isoformat(), 0.0),
        "dag:docpost_nightly/scheduled__2026-11-26T22:00:00+00:00": (D.isoformat(), 1.5 * LEASE),
    }
    procs = [ctx.Process(target=run_night, args=(night, actor, start, ready, delay, results))
             for actor, (night, delay) in runs.items()]
    for p in procs:
        p.start()
    got = {}
    for _ in procs:
        actor, totals, error = results.get(timeout=150)
        got[actor] = (totals, error)
    for p in procs:
        p.join(timeout=30)
    errors = {actor: error for actor, (_t, error) in got.items() if error}
    assert not errors, errors  # no run stopped (before: UnexpectedState for a whole batch)

    led = pipeline.ledger()
    msgs = led.messages(led.message_ids())
    assert len(msgs) == letters
    # every letter reached SF1601 exactly once: one request, one accepted transaction each
    stats = sim.stats()
    assert stats["duplicates"] == 0, stats  # a second send of the same transaction id
    assert stats["requests"] == stats["accepted"] == letters, stats
    assert sorted(stats["transactions"]) == sorted(m.message_uuid for m in msgs)
    assert set(stats["transactions"].values()) == {1}
    assert max(stats["deliveries"].values()) == 1
    # ... and the ledger says so: SUBMITTED (or already DELIVERED), one SUBMITTED event, no backwards move
    problems = {}
    for m in msgs:
        history = led.history(m.id)
        submitted = sum(1 for e in history if e.to_state is S.SUBMITTED)
        wrong = backwards_moves(history)
        if m.state not in (S.SUBMITTED, S.DELIVERED_DIGITAL) or submitted != 1 or wrong:
            problems[m.message_uuid] = (m.state.value, submitted, wrong)
    assert not problems, problems
    # both runs took part (the overlap happened), and together delivered each letter once
    delivered = sum(t.get("deliver_chunk", {}).get("submitted", 0) for t, _e in got.values())
    assert delivered == letters, got
    assert all(m.claimed_by is None for m in msgs)  # every claim released
    assert time.monotonic() - started < 90
