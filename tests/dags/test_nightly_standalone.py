"""docpost_nightly on a real Airflow: ``airflow standalone`` (scheduler, API server, dag-processor,
triggerer) on SQLite in a temporary AIRFLOW_HOME, triggered and backfilled through the REST API.

The ledger is the embedded default (a SQLite file), S3 a moto server subprocess, delivery the
SF1601 simulator over mutual TLS. One night is triggered over REST; then an Airflow backfill over
two nights (the one already run, and the next) processes each night's drops exactly once. (Three
nights through ``dag.test()`` are in test_nightly_dag.py: every task instance costs seconds here.)
The scenario (standalone_night.py) is the session's one standalone night, shared with the
operator view's browser test (test_ui_browser.py).
"""

from __future__ import annotations

import pytest
from standalone_night import NIGHTS, Night, standalone_night

from docpost.ledger import MessageState

pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.integration, pytest.mark.timeout(1800)]

DONE = {MessageState.REJECTED, MessageState.SUBMITTED, MessageState.FAILED,
        MessageState.DELIVERED_DIGITAL, MessageState.DELIVERED_PHYSICAL}


@pytest.fixture()
def night(request, tmp_path_factory) -> Night:
    return standalone_night(request, tmp_path_factory)


def test_nightly_on_standalone_airflow_rest_trigger_and_backfill(night: Night):
    assert night.state == "success"
    mapped = [t for t in night.tis if t["task_id"] == "process.prepare"]
    assert len(mapped) == 2  # 16 letters (less the one without _READY) in chunks of 10
    runs = night.backfill_runs
    assert len(runs) == len(NIGHTS) and all(r["state"] == "success" for r in runs), runs

    for day in NIGHTS:
        msgs = night.messages[day]
        names = {f"{m.source_system}/{day.isoformat()}/{m.submission_id}": m for m in msgs}
        ready = {k for k, v in night.expected.items() if k.split("/")[1] == day.isoformat()
                 and "submission.not-ready" not in v}
        assert set(names) == ready, day  # each night's drops registered once
        assert all(m.state in DONE for m in msgs), {m.state for m in msgs}
        assert night.store.exists(f"reports/{day.isoformat()}/summary.json")
    # the night run twice (REST, then again inside the backfill) moved nothing the second time
    assert {m.id: (m.state, m.attempts) for m in night.messages[NIGHTS[0]]} == night.first
    deliveries = night.deliveries
    assert max(deliveries.values()) == 1
    assert {k: v for k, v in deliveries.items() if k in night.sends_after_first} == night.sends_after_first
