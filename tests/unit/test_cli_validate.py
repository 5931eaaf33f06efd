"""The real ``docpost`` console script: generate, then validate (text and JSON).

Exit codes: 0 all valid, 1 any rejected, 2 PATH is no folder (docpost.cli has the table)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCPOST = str(Path(sys.executable).with_name("docpost"))


def docpost(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DOCPOST, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "night"
    done = docpost("generate", "--count", "30", "--broken-share", "0.5", "--out", str(out),
                   "--date", "2026-02-03", "--seed", "5")
    assert done.returncode == 0, done.stderr
    assert "30 submissions" in done.stdout and "15 broken" in done.stdout
    return out


def test_validate_prints_rejections_and_summary(night):
    expected = json.loads((night / "expected.json").read_text())
    done = docpost("validate", str(night))
    assert done.returncode == 1, done.stderr  # ran, and rejected some
    assert done.stderr == ""  # data on stdout; no progress bar outside a terminal
    lines = done.stdout.splitlines()
    rejected = {line.split()[1].rstrip(":") for line in lines if line.startswith("REJECTED ")}
    assert rejected == {key for key, codes in expected.items() if codes}
    assert "30 submissions: 15 valid, 15 rejected" in done.stdout
    per_code: dict[str, int] = {}
    for codes in expected.values():
        for code in set(codes):
            per_code[code] = per_code.get(code, 0) + 1
    for code, n in per_code.items():
        assert any(line.split() == [code, str(n)] for line in lines), code


@pytest.mark.parametrize("flag", [("--output", "json"), ("--json",)])  # --json: deprecated alias
def test_validate_json_one_document(night, flag):
    expected = json.loads((night / "expected.json").read_text())
    done = docpost("validate", str(night), *flag)
    assert done.returncode == 1 and done.stderr == ""
    document = json.loads(done.stdout)
    assert set(document) == {"submissions", "summary"}
    objects = document["submissions"]
    assert len(objects) == 30
    for obj in objects:
        assert set(obj) == {"submission", "valid", "errors"}
        assert obj["valid"] is (not expected[obj["submission"]])
        assert {e["code"] for e in obj["errors"]} == set(expected[obj["submission"]])
    summary = document["summary"]
    assert (summary["submissions"], summary["valid"], summary["rejected"]) == (30, 15, 15)
    assert sum(summary["by_code"].values()) >= 15


def test_validate_one_folder_verbose(tmp_path):
    done = docpost("validate", str(ROOT / "examples/inbox/sbsys/2026-01-15/sbsys-000001"))
    assert done.returncode == 0 and "1 submissions: 1 valid, 0 rejected" in done.stdout
    broken = tmp_path / "inbox/dubu/2026-01-15/x"
    broken.mkdir(parents=True)
    (broken / "manifest.xml").write_text("<Manifest")
    (broken / "_READY").write_text("")
    done = docpost("validate", "-v", str(broken))
    assert done.returncode == 1
    assert "dubu/2026-01-15/x: REJECTED" in done.stdout and "xml.malformed: manifest.xml line 1" in done.stdout


def test_exit_code_when_it_cannot_run(tmp_path):
    done = docpost("validate", str(tmp_path / "missing"))
    assert done.returncode == 2 and "not a folder" in done.stderr and done.stdout == ""
    assert done.stderr.startswith("docpost: error: cli.usage: ")
    assert docpost("generate", "--count", "1", "--out", str(tmp_path), "--broken-share", "2").returncode == 2
