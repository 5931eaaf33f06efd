"""Ledger pieces without a database server: state machine, identity, URLs, SQLite setup."""

from __future__ import annotations

import uuid

import pytest

from docpost.ledger import (
    BEFORE_SUBMISSION,
    FINAL,
    TRANSITIONS,
    IllegalTransition,
    LedgerConfigError,
    MessageState,
    is_legal,
    message_uuid,
    pseudonymise,
    recipient_hash,
    requeue_target,
    transaction_id,
)
from docpost.ledger.engine import create_ledger_engine, normalise_url, resolve_url

S = MessageState
ORDER = [S.RECEIVED, S.VALIDATED, S.STAMPED, S.RENDERED, S.SUBMITTED]


def test_every_state_has_its_transitions_and_final_states_lead_nowhere():
    assert set(TRANSITIONS) == set(MessageState)
    assert all(not TRANSITIONS[s] for s in FINAL | {S.FAILED})
    for state in MessageState:
        assert is_legal(state, state)  # re-entry is an idempotent no-op


def test_no_backwards_moves_along_the_pipeline():
    for i, later in enumerate(ORDER):
        for earlier in ORDER[:i]:
            assert not is_legal(later, earlier), (later, earlier)
    assert is_legal(S.RENDERED, S.SUBMITTED) and not is_legal(S.RECEIVED, S.RENDERED)


def test_cancel_only_before_submission():
    assert {s for s in MessageState if S.CANCELLED in TRANSITIONS[s]} == set(BEFORE_SUBMISSION)


def test_requeue_goes_back_to_where_a_message_can_be_resent():
    # a requeue is a new generation (new messageUUID): a letter rendered for the old one is rendered again
    assert requeue_target(S.SUBMITTED) is S.STAMPED
    assert requeue_target(S.RETRYING) is S.STAMPED
    assert requeue_target(S.RENDERED) is S.STAMPED
    assert requeue_target(S.STAMPED) is S.STAMPED
    assert requeue_target(S.VALIDATED) is S.VALIDATED
    assert requeue_target(None) is S.STAMPED


def test_illegal_transition_error_names_both_states_and_has_a_code():
    err = IllegalTransition("SUBMITTED", "CANCELLED", "abc", 3, why="too late")
    assert err.code == "ledger.illegal-transition"
    assert str(err) == "[ledger.illegal-transition] illegal transition SUBMITTED -> CANCELLED for message abc (and 2 more): too late"


def test_derived_ids_are_deterministic_version_4_and_distinct():
    a = message_uuid("sbsys", "S-1", "AB" * 32)
    assert a == message_uuid("sbsys", "S-1", "ab" * 32)  # hash case does not matter
    assert a == "8c1218f7-017d-43fe-896e-54718f14767e"  # pinned: the same message keeps its UUID across releases
    parsed = uuid.UUID(a)
    assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert transaction_id("sbsys", "S-1", "ab" * 32) == "65f50483-b0f1-4fb4-8577-50e43810d5aa"
    assert message_uuid("sbsys", "S-1", "cd" * 32) != a
    assert message_uuid("momentum", "S-1", "ab" * 32) != a
    assert message_uuid("sbsys", "S-2", "ab" * 32) != a
    # field boundaries matter: ("a", "bc") is not ("ab", "c")
    assert message_uuid("a", "bc", "00") != message_uuid("ab", "c", "00")


def test_pseudonymise_masks_and_hashes_with_the_key():
    masked, hashed = pseudonymise("CPR", "010190-1234", b"k1")
    assert masked == "010190-****"
    assert hashed == recipient_hash("CPR", "0101901234", b"k1")  # dash or not: same person
    assert hashed != recipient_hash("CPR", "0101901234", b"k2")  # keyed
    assert hashed != recipient_hash("CVR", "0101901234", b"k1")
    assert "0101901234" not in hashed and len(hashed) == 64
    assert pseudonymise("CVR", "29189846", b"k1")[0] == "2918****"


def test_urls_use_psycopg_and_refuse_other_databases():
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("sqlite:////tmp/x.db").drivername == "sqlite"
    with pytest.raises(LedgerConfigError):
        normalise_url("mysql://u@h/db")
    with pytest.raises(LedgerConfigError):
        normalise_url("not a url")


def test_without_a_pseudonym_key_lookups_work_and_recipients_are_refused(monkeypatch, tmp_path):
    import datetime as dt

    from docpost.errors import ConfigurationError
    from docpost.ledger import Ledger, Registration

    monkeypatch.delenv("DOCPOST_PSEUDONYM_KEY", raising=False)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.upgrade()
    assert ledger.get(str(uuid.uuid4())) is None  # a lookup by message UUID needs no key
    with pytest.raises(ConfigurationError) as refused:  # storing a recipient does
        ledger.register([Registration("sbsys", "s-1", dt.date(2026, 11, 2), "h" * 64, "inbox/sbsys/2026-11-02/s-1/",
                                      recipient_id_type="CPR", recipient_identifier="0101901234")], actor="t")
    assert refused.value.code == "config.missing"
    assert ledger.message_ids() == []  # nothing was registered
    with pytest.raises(ConfigurationError):
        ledger.by_recipient("CPR", "0101901234")


def test_resolve_url_prefers_docpost_db_url_then_the_default(monkeypatch, tmp_path):
    monkeypatch.delenv("AIRFLOW_CONN_DOCPOST_LEDGER", raising=False)
    monkeypatch.setenv("DOCPOST_HOME", str(tmp_path))
    monkeypatch.delenv("DOCPOST_DB_URL", raising=False)
    assert resolve_url() == f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("DOCPOST_DB_URL", "postgresql://x@y/z")
    assert resolve_url(airflow=True) == "postgresql://x@y/z"


@pytest.mark.slow
def test_under_airflow_a_missing_ledger_connection_fails_closed(monkeypatch, tmp_path):
    monkeypatch.delenv("DOCPOST_DB_URL", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_DOCPOST_LEDGER", raising=False)
    monkeypatch.setenv("DOCPOST_HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "docpost_nightly")  # what a task's environment says
    with pytest.raises(LedgerConfigError, match="docpost_ledger"):
        resolve_url()
    assert not (tmp_path / "ledger.db").exists()  # no SQLite file of the worker's own
    monkeypatch.delenv("AIRFLOW_CTX_DAG_ID")
    assert resolve_url() == f"sqlite:///{tmp_path / 'ledger.db'}"  # outside Airflow: the default


@pytest.mark.slow
def test_airflow_connection_supplies_the_url_when_configured(monkeypatch, tmp_path):
    monkeypatch.delenv("DOCPOST_DB_URL", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_DOCPOST_LEDGER", "postgres://ledger:s3cret@db.example:5433/docpost")
    assert resolve_url() == "postgresql+psycopg://ledger:s3cret@db.example:5433/docpost"
    monkeypatch.setenv("AIRFLOW_CONN_DOCPOST_LEDGER", f'{{"conn_type": "sqlite", "host": "{tmp_path}/l.db"}}')
    assert resolve_url() == f"sqlite:///{tmp_path}/l.db"


def test_library_does_not_import_airflow_without_the_connection():
    import subprocess
    import sys

    code = ("import os, sys; os.environ.pop('AIRFLOW_CONN_DOCPOST_LEDGER', None); "
            "os.environ['DOCPOST_DB_URL'] = 'sqlite://'; "
            "from docpost.ledger import Ledger; Ledger.from_settings().upgrade(); "
            "import docpost.commands.ledger; print('airflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_sqlite_uses_wal_and_a_busy_timeout(tmp_path):
    engine = create_ledger_engine(f"sqlite:///{tmp_path / 'deep' / 'ledger.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
    assert (tmp_path / "deep" / "ledger.db").exists()


def test_database_errors_do_not_carry_the_bound_values(tmp_path):
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_ledger_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    with pytest.raises(SQLAlchemyError) as info, engine.connect() as conn:
        conn.execute(text("INSERT INTO no_such_table VALUES (:title)"), {"title": "Afgørelse for Jens Hansen"})
    engine.dispose()
    assert "no_such_table" in str(info.value) and "Jens Hansen" not in str(info.value)
