"""Send now on a real Airflow: ``airflow standalone`` (scheduler, API server, dag-processor), the
submit API as its own process (``docpost sendnow serve``) raising the ``docpost_send_now`` asset
event through Airflow's REST API, PostgreSQL as the ledger, moto S3, the SF1601 simulator over
mutual TLS. One Airflow start serves both tests: a single letter followed step by step through
its status URL to SUBMITTED and, after its receipt, DELIVERED; then a burst handled in a handful
of asset-triggered runs, every letter delivered once by the simulator's count.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from docpost_testbench import stack
from docpost_testbench.generate import build_submission
from docpost.commands.submit import SubmitClient
from docpost.model import READY_MARKER
from docpost.sendnow import DAG_ID, READY_PREFIX
from docpost.sendnow.intake import today

pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.integration, pytest.mark.timeout(900)]

TOKEN = "caseworker-token-0123456789"
BURST = 30
SENT = {"SUBMITTED", "DELIVERED_DIGITAL", "DELIVERED_PHYSICAL"}


def letter(index: int) -> dict[str, bytes]:
    _key, files, _draft = build_submission(1901, today(), index)
    return {n: d for n, d in files.items() if n != READY_MARKER}


def start_api(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    """``docpost sendnow serve --port 0`` in a session of its own; its URL from its first line."""
    proc = subprocess.Popen([str(Path(sys.executable).parent / "docpost"), "sendnow", "serve", "--port", "0"],
                            env=env, stdout=subprocess.PIPE, stderr=log.open("w"), text=True, start_new_session=True)
    line = proc.stdout.readline()
    assert line.startswith(READY_PREFIX), (line, log.read_text()[-2000:])
    return proc, line[len(READY_PREFIX):].strip()


@pytest.fixture(scope="module")
def now_stack(tmp_path_factory, pg_url):
    from docpost_testbench.pki import create_test_pki
    from docpost_testbench.simulator.runner import start_simulator

    from docpost.storage import ObjectStore

    tmp = tmp_path_factory.mktemp("now")
    moto = stack.start_moto()
    stoppers = [moto.stop]
    try:
        bucket = "docpost-now"
        ObjectStore(bucket, endpoint_url=moto.url, backend="boto3").ensure_bucket()
        pki = create_test_pki(tmp / "pki")
        register = tmp / "recipients.json"
        register.write_text("{}")
        sim = start_simulator(tmp / "sim", register, {}, tls_cert=pki.server_cert, tls_key=pki.server_key,
                              client_ca=pki.ca_cert, client_cert=(pki.client_cert, pki.client_key))
        stoppers.append(sim.stop)
        sf1601 = {"DOCPOST_SF1601_URL": sim.url, "DOCPOST_SF1601_CERT": str(pki.client_cert),
                  "DOCPOST_SF1601_KEY": str(pki.client_key), "DOCPOST_SF1601_CA": str(pki.ca_cert)}
        home = tmp / "airflow"
        env = stack.airflow_env(home, s3_endpoint_url=moto.url, bucket=bucket,
                                extra_env={"DOCPOST_DB_URL": pg_url, "DOCPOST_SENDNOW_CHUNK_SIZE": "15", **sf1601})
        stack.install_metadata_db(env)
        pool = subprocess.run([str(Path(sys.executable).parent / "airflow"), "pools", "set", "docpost_sf1601", "2",
                               "SF1601 delivery"], env=env, capture_output=True, text=True, timeout=300)
        assert pool.returncode == 0, pool.stderr[-2000:]
        airflow = stack.start_standalone(home, env)
        stoppers.append(airflow.stop)
        api = airflow.api()
        stoppers.append(api.close)
        api.wait_for_dag(DAG_ID, timeout=180)
        assert not api.import_errors()
        api.unpause(DAG_ID)
        docpost_env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        docpost_env.update({
            "DOCPOST_DB_URL": pg_url, "DOCPOST_BUCKET": bucket, "DOCPOST_S3_ENDPOINT_URL": moto.url,
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
            "DOCPOST_SENDNOW_TOKENS": f"sbsys={TOKEN}", "DOCPOST_AIRFLOW_API_URL": airflow.url,
            "DOCPOST_AIRFLOW_API_USER": airflow.username, "DOCPOST_AIRFLOW_API_PASSWORD": airflow.password,
            **sf1601,
        })
        proc, url = start_api(docpost_env, tmp / "sendnow.log")
        stoppers.append(lambda: (os.killpg(proc.pid, 15), proc.wait(20)))
        yield {"url": url, "api": api, "sim": sim, "env": docpost_env, "airflow": airflow, "log": tmp / "sendnow.log"}
    finally:
        for stop in reversed(stoppers):
            stop()


def status(now_stack, url: str) -> dict:
    answer = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def settle_receipts(now_stack, monkeypatch) -> None:
    """What ``docpost_receipts`` runs every 15 minutes, once, here: the simulator's receipts."""
    from docpost import pipeline

    for k, v in now_stack["env"].items():
        if k.startswith(("DOCPOST_", "AWS_")):
            monkeypatch.setenv(k, v)
    pipeline.fetch_receipts(actor="test:receipts")


def now_runs(now_stack) -> list[dict]:
    return now_stack["api"].runs(DAG_ID)


def test_a_letter_sent_now_is_submitted_within_minutes_and_delivered_after_its_receipt(now_stack, monkeypatch):
    with SubmitClient(now_stack["url"], TOKEN) as client:
        code, answer = client.post("now-single-1", letter(0))
    assert code == 202, answer
    seen, started = [], time.monotonic()
    while time.monotonic() - started < 240:
        state = status(now_stack, answer["status_url"])["state"]
        if not seen or seen[-1] != state:
            seen.append(state)
        if state in SENT or state in ("REJECTED", "FAILED"):
            break
        time.sleep(0.5)
    took = time.monotonic() - started
    assert seen[-1] == "SUBMITTED", (seen, [(r["run_id"], r["state"]) for r in now_runs(now_stack)],
                                     now_stack["airflow"].handle.log_tail(40))
    assert took < 180, took
    runs = now_runs(now_stack)
    assert runs and all(r["run_type"] == "asset_triggered" for r in runs), runs

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        settle_receipts(now_stack, monkeypatch)
        final = status(now_stack, answer["status_url"])
        if final["state"].startswith("DELIVERED"):
            break
        time.sleep(1)
    assert final["state"] in ("DELIVERED_DIGITAL", "DELIVERED_PHYSICAL"), final
    assert final["channel"] and final["receipt"] and final["submitted_at"]
    steps = [t["state"] for t in final["timeline"]]
    assert steps[:5] == ["RECEIVED", "VALIDATED", "STAMPED", "RENDERED", "SUBMITTED"]
    assert steps[-1] == final["state"]
    for run in runs:  # a failed run would look failed
        assert now_stack["api"].wait_for_run(DAG_ID, run["dag_run_id"], timeout=120) == "success"


def test_a_burst_is_a_handful_of_runs_and_every_letter_is_delivered_once(now_stack):
    before = {r["dag_run_id"] for r in now_runs(now_stack)}
    sends_before = dict(now_stack["sim"].stats()["deliveries"])
    with SubmitClient(now_stack["url"], TOKEN) as client, ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda i: client.post(f"now-burst-{i:03d}", letter(100 + i)), range(BURST)))
    assert all(code == 202 for code, _a in answers), [a for code, a in answers if code != 202][:3]
    urls = [a["status_url"] for _c, a in answers]
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        states = [status(now_stack, u)["state"] for u in urls]
        if all(s in SENT for s in states):
            break
        time.sleep(2)
    assert all(s in SENT for s in states), sorted(states)
    api = now_stack["api"]
    runs = [r for r in now_runs(now_stack) if r["dag_run_id"] not in before]
    for run in runs:
        assert api.wait_for_run(DAG_ID, run["dag_run_id"], timeout=300) == "success", run
    assert 1 <= len(runs) <= 6, len(runs)  # a handful of runs, not one per letter
    deliveries = now_stack["sim"].stats()["deliveries"]
    new = {k: v for k, v in deliveries.items() if k not in sends_before}
    assert len(new) == BURST and set(new.values()) == {1}
    assert {k: v for k, v in deliveries.items() if k in sends_before} == sends_before
