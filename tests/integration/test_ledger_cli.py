"""The ledger commands against a real ledger on both databases."""

from __future__ import annotations

import json

import pytest
from ledger_support import DAY, S, advance, cpr, ledger, postgresql_ledger, registration, sqlite_ledger  # noqa: F401

from docpost.cli import main
from docpost.ledger import Ledger, Receipt

pytestmark = pytest.mark.integration


def run(*argv: str) -> int:
    """The command through docpost.cli.main: its one error path and exit codes (0 ok, 1 a problem
    found or the request refused, 2 usage error, 3 configuration/infrastructure)."""
    return main(list(argv))


@pytest.fixture()
def db(ledger, monkeypatch) -> str:
    url = ledger.url.render_as_string(hide_password=False)
    monkeypatch.setenv("DOCPOST_DB_URL", url)
    monkeypatch.setenv("DOCPOST_PSEUDONYM_KEY", "ledger-test-pseudonym-key")
    return url


def test_status_prints_the_timeline_with_the_recipient_masked(ledger, db, capsys):
    ids = ledger.register([registration(i) for i in range(12)], actor="dag:nightly/run-1").ids
    advance(ledger, ids[:1], S.SUBMITTED)
    m = ledger.messages(ids[:1])[0]
    ledger.apply_receipts([Receipt(m.message_uuid, S.DELIVERED_DIGITAL, "Digital Post", "Afleveret Digital Post")])

    assert run("status", m.message_uuid) == 0
    out = capsys.readouterr().out
    assert m.message_uuid in out and m.transaction_id in out
    assert f"CPR {cpr(0)[:6]}-****" in out and cpr(0) not in out
    lines = [line.split() for line in out.splitlines()]
    timeline = [parts[3] for parts in lines if len(parts) > 4 and parts[1].endswith("Z")]
    assert timeline == ["RECEIVED", "VALIDATED", "STAMPED", "RENDERED", "SUBMITTED", "DELIVERED_DIGITAL"]
    assert "dag:nightly/run-1" in out and "receipt: Afleveret Digital Post" in out

    assert run("status", "SUB-000003") == 0
    assert capsys.readouterr().out.count("Message ") == 1
    assert run("status", "SAG-0000") == 0  # case number: every letter of the case
    assert capsys.readouterr().out.count("Message ") == 10
    assert run("status", "no-such-thing") == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "no message matches" in captured.err

    assert run("status", m.message_uuid, "--output", "json") == 0
    data = json.loads(capsys.readouterr().out)
    (one,) = data["messages"]
    assert one["message_uuid"] == m.message_uuid and one["state"] == "DELIVERED_DIGITAL"
    assert (one["recipient_id_type"], one["recipient_masked"]) == ("CPR", f"{cpr(0)[:6]}-****")
    assert cpr(0) not in json.dumps(data) and "recipient_hash" not in one and "title" not in one
    assert [e["to"] for e in one["history"]][-1] == "DELIVERED_DIGITAL"
    assert run("status", "no-such-thing", "--output", "json") == 1
    assert json.loads(capsys.readouterr().out)["messages"] == []


def test_report_as_tables_and_json(ledger, db, capsys):
    ids = ledger.register([registration(i) for i in range(5)] + [registration(9, source="dubu")], actor="t").ids
    advance(ledger, ids[:2], S.SUBMITTED)
    ledger.transition(ids[:1], S.DELIVERED_PHYSICAL, "r", channel="physical")
    ledger.register([registration(3, content="other")], actor="t")

    assert run("report", "--date", DAY.isoformat()) == 0
    out = capsys.readouterr().out
    tables = out.split("conflicts (")[0]
    rows = {line.split()[0]: line.split()[1:] for line in tables.splitlines() if line.strip()}
    assert rows["RECEIVED"] == ["4"] and rows["SUBMITTED"] == ["1"] and rows["DELIVERED_PHYSICAL"] == ["1"]
    assert rows["physical"] == ["1"] and rows["none"] == ["5"]
    assert rows["sbsys"] == ["5", "1", "0", "0", "0", "4"] and rows["dubu"] == ["1", "0", "0", "0", "0", "1"]
    assert "SUB-000003" in out  # the conflict is listed
    header = next(line for line in out.splitlines() if line.startswith("source system  total"))
    value = next(line for line in out.splitlines() if line.startswith("sbsys "))
    assert header.index("total") + len("total") == value.index("5") + 1  # right-aligned columns

    for flag in (("--output", "json"), ("--json",)):  # --json: the deprecated alias
        assert run("report", "--date", DAY.isoformat(), *flag) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["total"] == 6 and data["by_state"]["RECEIVED"] == 4
        assert data["by_source_system"]["dubu"] == {"RECEIVED": 1}
        assert [c["submission_id"] for c in data["conflicts"]] == ["SUB-000003"]
    assert run("report", "--date", "27-11-2026") == 2  # argparse's usage error
    captured = capsys.readouterr()
    assert captured.out == "" and "YYYY-MM-DD" in captured.err


def test_cancel_requeue_and_purge_commands(ledger, db, capsys):
    ids = ledger.register([registration(i) for i in range(3)], actor="t").ids
    advance(ledger, ids[1:], S.SUBMITTED)
    ledger.transition(ids[1:2], S.FAILED, "send", reason_code="E", reason_text="boom")
    first, failed, submitted = ledger.messages(ids)

    assert run("cancel", first.message_uuid, "--reason", "sent by mistake", "--actor", "operator:jane") == 0
    assert "cancelled 1 message(s)" in capsys.readouterr().out
    assert run("cancel", submitted.message_uuid, "--reason", "too late") == 1  # refused
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("docpost: error: ledger.illegal-transition: ")
    assert "SUBMITTED -> CANCELLED" in captured.err
    assert run("cancel", first.message_uuid, "--reason", "again", "--output", "json") == 0
    assert json.loads(capsys.readouterr().out) == {"already_cancelled": [first.message_uuid], "cancelled": []}
    assert run("requeue", failed.message_uuid, "--reason", "fixed") == 0
    assert "now STAMPED, generation 1" in capsys.readouterr().out
    assert run("requeue", "11111111-2222-4333-8444-555555555555") == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("docpost: error: ledger.unknown-message: ")
    a, b, _ = ledger.messages(ids)
    assert a.state is S.CANCELLED and ledger.history(a.id)[-1].actor == "operator:jane"
    assert b.state is S.STAMPED and b.generation == 1

    assert run("purge", "--older-than", "-1") == 2
    assert "zero or more days" in capsys.readouterr().err
    assert run("purge", "--older-than", "0") == 0
    assert "1 settled message" in capsys.readouterr().out
    assert run("purge", "--older-than", "0", "--output", "json") == 0
    assert json.loads(capsys.readouterr().out) == {"messages": 0, "older_than_days": 0.0, "replies": 0}
    assert ledger.messages(ids[:1])[0].recipient_masked is None


def test_db_upgrade_works_from_any_directory(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'state' / 'ledger.db'}"
    monkeypatch.setenv("DOCPOST_DB_URL", url)
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    from docpost.migrations import head_revision

    head = head_revision()
    assert head != "0001_ledger"  # later migrations (reply routing) chain after the ledger's
    assert run("db", "upgrade") == 0
    assert head in capsys.readouterr().out
    assert run("db", "upgrade", "--output", "json") == 0
    assert json.loads(capsys.readouterr().out)["revision"] == head
    fresh = Ledger(url)
    assert fresh.revision() == head
    assert fresh.register([registration(1)], actor="t").created
    fresh.close()
    assert not list(elsewhere.iterdir())  # nothing written into the working directory
