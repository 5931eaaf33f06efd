"""The night a nightly run handles, read from a task's context as Airflow 3 gives it."""

from __future__ import annotations

import datetime as dt

import pendulum
import pytest

from docpost.dag_defaults import night_of, run_night


def test_the_night_param_wins_over_the_data_interval():
    start = pendulum.datetime(2026, 3, 1, 23, 30, tz="UTC")
    assert run_night({"params": {"night": "2026-02-14"}, "data_interval_start": start}) == "2026-02-14"


def test_a_manual_run_without_logical_date_has_neither_key_in_its_context():
    # Airflow 3: a run triggered over REST with logical_date null carries no data_interval_start
    # and no logical_date in the task context (a KeyError on ``context[...]``).
    assert run_night({"params": {"night": "2026-04-06"}}) == "2026-04-06"
    with pytest.raises(ValueError, match="'night' param"):
        run_night({"params": {"night": None}})


def test_a_scheduled_run_handles_its_data_interval_start_in_copenhagen():
    # 23:30 UTC on 1 March is 00:30 on 2 March in Copenhagen: the night of the 2nd.
    start = pendulum.datetime(2026, 3, 1, 23, 30, tz="UTC")
    assert run_night({"params": {"night": None}, "data_interval_start": start, "logical_date": start}) == "2026-03-02"
    assert run_night({"params": {}, "data_interval_start": None, "logical_date": start}) == "2026-03-02"
    assert night_of(None, None) is None
    assert night_of("2026-03-05", None) == dt.date(2026, 3, 5)
