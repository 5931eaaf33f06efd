"""The conventions every ``docpost`` command keeps (the table is in docpost/cli.py's docstring):
``--output table|json`` where it prints data, data on stdout and errors on stderr, one error path
(``docpost: error: <code>: <message>``), exit codes that mean the same in every command, and no
progress bar outside a terminal."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
from pathlib import Path

import pytest

from docpost import cli
from docpost.commands import _output
from docpost.errors import ConfigurationError, DocpostError, Unavailable

ROOT = Path(__file__).resolve().parents[2]
GOOD = ROOT / "examples/inbox/sbsys/2026-01-15/sbsys-000001"
HIERARCHY = ROOT / "config/hierarchy.xml"

#: commands that print no data, so have no --output: the bench's servers and demo runner
NO_DATA = {"demo", "simulator", "postmodtag"}  # servers: no data printed


def leaf_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every runnable (sub-)command: (its words, its parser)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for action in subs:
        for name, child in action.choices.items():
            yield from leaf_parsers(child, (*path, name))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------------------ --output


def test_every_command_that_prints_data_accepts_output():
    leaves = dict(leaf_parsers(cli.build_parser()))
    assert ("validate",) in leaves and ("hierarchy", "show") in leaves and ("db", "upgrade") in leaves
    assert not any(words[0].startswith("_") for words in leaves)  # _output is no command
    missing = [" ".join(words) for words, parser in leaves.items()
               if words[0] not in NO_DATA and not _output.accepts_output(parser)]
    assert missing == []
    for words, parser in leaves.items():
        if _output.accepts_output(parser):
            action = next(a for a in parser._actions if "--output" in a.option_strings)
            assert tuple(action.choices) == ("table", "json") and action.default == "table", words
        assert callable(parser.get_default("func")), words


@pytest.mark.parametrize("argv", [("validate", "--output", "yaml", str(GOOD)), ("frobnicate",), ("validate",)])
def test_usage_errors_exit_2_on_stderr(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == _output.EXIT_USAGE == 2 and out == "" and "usage: docpost" in err


def test_help_exits_0(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "exit codes" in out


# ------------------------------------------------------------------------------ json parses


def night_with_rejects(tmp_path: Path) -> Path:
    """A tree with one good submission and one without its _READY marker."""
    good = tmp_path / "tree/inbox/sbsys/2026-01-15/sbsys-000001"
    shutil.copytree(GOOD, good)
    broken = tmp_path / "tree/inbox/sbsys/2026-01-15/sbsys-000002"
    shutil.copytree(GOOD, broken)
    (broken / "_READY").unlink()
    return tmp_path / "tree"


def json_of(capsys, *argv: str, code: int = 0):
    got, out, err = run(capsys, *argv, "--output", "json")
    assert got == code, err
    return json.loads(out)


def test_json_output_parses(tmp_path, capsys):
    tree = night_with_rejects(tmp_path)
    data = json_of(capsys, "validate", str(tree), code=1)
    assert data["summary"]["rejected"] == 1 and len(data["submissions"]) == 2
    assert json_of(capsys, "hierarchy", "check", str(HIERARCHY))["valid"] is True
    shown = json_of(capsys, "hierarchy", "show", str(HIERARCHY), "--on", "2026-01-01")
    assert shown["on"] == "2026-01-01" and shown["mapper"][0]["postkasser"][0]["emner"][0]["contact_point_id"]
    assert json_of(capsys, "memo", "check", str(HIERARCHY), code=1)["files"][0]["valid"] is False
    rendered = json_of(capsys, "render", str(GOOD), "--out", str(tmp_path / "x.pdf"))
    assert rendered["pages"] >= 1 and rendered["print_ready"] is True and len(rendered["sha256"]) == 64
    made = json_of(capsys, "generate", "-n", "2", "-o", str(tmp_path / "gen"), "--date", "2026-02-03")
    assert made == {"broken": 0, "count": 2, "date": "2026-02-03", "good": 2, "out": str(tmp_path / "gen")}


def test_ledger_commands_json_on_an_empty_ledger(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DOCPOST_PSEUDONYM_KEY", "cli-conventions-test-key")
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    assert json_of(capsys, "db", "upgrade", "--db-url", url)["revision"]
    report = json_of(capsys, "report", "--date", "2026-01-15", "--db-url", url)
    assert report["total"] == 0 and report["date"] == "2026-01-15"
    assert json_of(capsys, "status", "SUB-404", "--db-url", url, code=1) == {"messages": [], "query": "SUB-404"}
    assert json_of(capsys, "purge", "--older-than", "30", "--db-url", url, "--actor", "t")["messages"] == 0
    assert json_of(capsys, "replies", "manual", "--db-url", url) == {"queue": []}


# ------------------------------------------------------------------------------ streams, exit codes


def test_validate_exits_1_when_it_rejects_and_0_when_all_are_valid(tmp_path, capsys):
    code, out, err = run(capsys, "validate", str(GOOD))
    assert code == 0 and "1 submissions: 1 valid, 0 rejected" in out and err == ""
    code, out, err = run(capsys, "validate", str(night_with_rejects(tmp_path)))
    assert code == _output.EXIT_PROBLEM == 1
    assert "REJECTED sbsys/2026-01-15/sbsys-000002: submission.not-ready" in out and err == ""


def test_validate_of_a_missing_path_is_a_usage_error_on_stderr(tmp_path, capsys):
    code, out, err = run(capsys, "validate", str(tmp_path / "missing"))
    assert code == 2 and out == ""
    assert err.startswith("docpost: error: cli.usage: ") and "not a folder" in err


def test_render_of_a_poison_letter_one_error_line_without_personal_data(tmp_path, capsys):
    from poison.submissions import READY, corpus

    poison = next(p for p in corpus(dt.date(2026, 1, 15)) if p.code == "stamping.unknown-profile")
    folder = tmp_path / poison.folder
    folder.mkdir(parents=True)
    for name, data in {**poison.files, READY: b""}.items():
        (folder / name).write_bytes(data)
    code, out, err = run(capsys, "render", str(folder), "--out", str(tmp_path / "p.pdf"))
    assert code == 1 and out == ""
    assert err.startswith("docpost: error: stamping.unknown-profile: ") and err.count("\n") == 1
    assert poison.recipient not in err


def test_hierarchy_show_of_an_invalid_file_prints_nothing_on_stdout(tmp_path, capsys):
    bad = tmp_path / "h.xml"
    bad.write_text("<ContactHierarchy", encoding="utf-8")
    code, out, err = run(capsys, "hierarchy", "show", str(bad), "--output", "json")
    assert code == 1 and out == "" and "[hierarchy.malformed-xml]" in err


class Secret(Exception):
    pass


@pytest.mark.parametrize(("exc", "code", "line"), [
    (DocpostError("nothing to do", code="test.refused"), 1, "docpost: error: test.refused: nothing to do"),
    (_output.UsageError("bad argument"), 2, "docpost: error: cli.usage: bad argument"),
    (ConfigurationError("no profiles"), 3, "docpost: error: config.invalid: no profiles"),
    (Unavailable("S3 unreachable", code="storage.unavailable"), 3,
     "docpost: error: storage.unavailable: S3 unreachable"),
    (ConnectionRefusedError("at 10.0.0.1 for 0101011234"), 3, "docpost: error: infrastructure.unavailable: "),
    (Secret("CPR 0101011234"), 4, "docpost: internal error: internal.Secret"),
    (KeyboardInterrupt(), 130, "docpost: interrupted"),
])
def test_exit_code_and_stderr_per_class_of_outcome(monkeypatch, capsys, exc, code, line):
    from docpost.commands import memo

    def fail(args):
        print("partial data")
        raise exc

    monkeypatch.delenv("DOCPOST_TRACEBACK", raising=False)
    monkeypatch.setattr(memo, "_check", fail)
    got, out, err = run(capsys, "memo", "check", "x.xml")
    assert got == code
    assert out == "partial data\n"  # nothing of the error on stdout
    assert err.startswith(line)
    assert "0101011234" not in err  # a non-docpost exception's text is never shown
    if code == 4:
        assert "test_cli_conventions.py" in err and "in fail" in err  # where, to find the bug
        assert "Traceback" not in err


def test_full_traceback_on_request(monkeypatch, capsys):
    from docpost.commands import memo

    monkeypatch.setattr(memo, "_check", lambda args: 1 / 0)
    monkeypatch.setenv("DOCPOST_TRACEBACK", "1")
    code, out, err = run(capsys, "memo", "check", "x.xml")
    assert code == 4 and out == "" and "Traceback (most recent call last)" in err
    assert "ZeroDivisionError" in err


def test_broken_pipe_ends_quietly(monkeypatch, capsys):
    from docpost.commands import memo

    def closed(args):
        raise BrokenPipeError

    monkeypatch.setattr(memo, "_check", closed)
    monkeypatch.setattr(cli, "_quiet_stdout", lambda: None)  # capsys' stdout has no descriptor
    assert run(capsys, "memo", "check", "x.xml") == (0, "", "")


# ------------------------------------------------------------------------------ rendering, progress


def test_table_is_plain_aligned_text_outside_a_terminal(capsys):
    _output.emit("table", [{"code": "a", "n": 1}, {"code": "longer", "n": 22}], right=("n",))
    assert capsys.readouterr().out.splitlines() == ["code     n", "------  --", "a        1", "longer  22"]
    _output.emit("json", {"b": dt.date(2026, 1, 2), "a": [1]})
    assert json.loads(capsys.readouterr().out) == {"a": [1], "b": "2026-01-02"}


def test_table_is_a_rich_table_on_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(_output, "is_tty", lambda stream=None: True)
    _output.emit("table", [{"code": "a", "n": 1}])
    out = capsys.readouterr().out
    assert "code" in out and "─" in out  # rich's rule under the header


def test_no_progress_outside_a_terminal(tmp_path, capsys):
    code, out, err = run(capsys, "generate", "-n", "3", "-o", str(tmp_path / "g"))
    assert code == 0 and err == "" and "wrote 3 submissions" in out
    code, out, err = run(capsys, "validate", str(tmp_path / "g"))
    assert err == ""


def test_progress_on_stderr_when_it_is_a_terminal(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_output, "is_tty", lambda stream=None: stream is sys.stderr)
    monkeypatch.setenv("COLUMNS", "100")
    code, out, err = run(capsys, "generate", "-n", "3", "-o", str(tmp_path / "g"))
    assert code == 0 and out.startswith("wrote 3 submissions") and out.count("\n") == 1
    assert "generating" in err
    code, out, err = run(capsys, "validate", str(tmp_path / "g"), "--output", "json")
    assert code == 0 and json.loads(out)["summary"]["valid"] == 3 and "validating" in err
