"""`docpost hierarchy check|show` through the real console script."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCPOST = Path(sys.executable).parent / "docpost"


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    assert DOCPOST.is_file(), f"console script missing at {DOCPOST}"
    return subprocess.run([str(DOCPOST), "hierarchy", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})}, cwd=ROOT)


def cp(n: int) -> str:
    return str(uuid.UUID(int=n, version=4))


def hierarchy_text(*extra: str) -> str:
    return "\n".join([
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<ContactHierarchy xmlns="urn:docpost:hierarchy:1" authority="Testby Kommune" version="t7">',
        '  <Mappe id="1" label="Borgerservice"/>',
        '  <Postkasse id="100" mappe="1" label="Borgerservice"/>',
        f'  <Emne id="1001" postkasse="100" label="Pas" mailbox="pas@testby.dk" contactPointID="{cp(1)}"/>',
        f'  <Emne id="1002" postkasse="100" label="Flytning" mailbox="pas@testby.dk" contactPointID="{cp(2)}"/>',
        '  <Postkasse id="110" mappe="1" label="Borgerservice Nord"/>',
        f'  <Emne id="1101" postkasse="110" label="Nord" mailbox="nord@testby.dk" contactPointID="{cp(3)}"/>',
        '  <Mappe id="3" label="Børn og Familie"/>',
        '  <Postkasse id="300" mappe="3" label="Børn og Familie"/>',
        f'  <Emne id="3002" postkasse="300" label="Familie" mailbox="sbsys://esdh.testby.dk/koe/familie" contactPointID="{cp(4)}" closed="2020-01-01"/>',
        *extra,
        "</ContactHierarchy>",
    ]) + "\n"


def line_of(text: str, marker: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if marker in line)


def test_check_accepts_the_shipped_hierarchy_and_profiles():
    result = run("check", "config/hierarchy.xml", "--profiles", "config/profiles.xml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "config/hierarchy.xml: valid" in result.stdout
    assert "config/profiles.xml: valid" in result.stdout


def test_check_reports_every_error_with_its_line(tmp_path):
    text = hierarchy_text(
        f'  <Emne id="4001" postkasse="400" label="Hjemmehjælp" mailbox="a@testby.dk" contactPointID="{cp(9)}"/>',
        f'  <Emne id="1003" postkasse="100" label="Uden postkasse" contactPointID="{cp(10)}"/>',
        f'  <Emne id="1001" postkasse="100" label="Dublet" mailbox="b@testby.dk" contactPointID="{cp(11)}"/>')
    path = tmp_path / "broken.xml"
    path.write_text(text, encoding="utf-8")
    result = run("check", str(path))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    orphan, no_mailbox = line_of(text, 'id="4001"'), line_of(text, 'id="1003"')
    duplicate, first = line_of(text, 'label="Dublet"'), line_of(text, 'id="1001"')
    assert lines == [
        f"{path}:{orphan}: Emne 4001 names Postkasse 400, which does not exist "
        "[hierarchy.orphan-emne]",
        f"{path}:{no_mailbox}: Emne 1003 has no functional mailbox (attribute "
        "mailbox: an e-mail address or a queue URI) [hierarchy.missing-mailbox]",
        f"{path}:{duplicate}: Emne id 1001 is used twice (first on line {first}) "
        "[hierarchy.duplicate-id]",
    ]
    assert "3 problem(s)" in result.stderr


def test_check_malformed_and_missing_files(tmp_path):
    path = tmp_path / "malformed.xml"
    path.write_text(hierarchy_text().replace("</ContactHierarchy>", "</ContactHierarki>"))
    result = run("check", str(path))
    assert result.returncode == 1
    assert re.match(rf"{re.escape(str(path))}:\d+: the file is not well-formed XML", result.stdout)
    assert "[hierarchy.malformed-xml]" in result.stdout
    result = run("check", str(tmp_path / "nowhere.xml"))
    assert result.returncode == 1 and "[hierarchy.not-found]" in result.stdout


def test_check_with_broken_profiles(tmp_path):
    hierarchy = tmp_path / "hierarchy.xml"
    hierarchy.write_text(hierarchy_text(), encoding="utf-8")
    # the shipped profiles name Emner this small hierarchy lacks
    result = run("check", str(hierarchy), "--profiles", "config/profiles.xml")
    assert result.returncode == 1
    assert "[profiles.unknown-postkasse]" in result.stdout or "[profiles.unknown-emne]" in result.stdout
    assert re.search(r"config/profiles\.xml:\d+: ", result.stdout)


def test_show_prints_the_tree_with_mailbox_counts(tmp_path):
    path = tmp_path / "hierarchy.xml"
    path.write_text(hierarchy_text(), encoding="utf-8")
    result = run("show", str(path), "--on", "2026-11-27")
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert out[0].startswith("Testby Kommune, contact hierarchy t7")
    assert "2 mapper, 3 postkasser, 4 emner, 3 mailboxes" in out[0]
    assert "Mappe 1 Borgerservice  (2 postkasser, 3 emner, 2 mailboxes)" in out
    assert "  Postkasse 100 Borgerservice  (2 emner, 1 mailboxes)" in out
    assert "  Postkasse 110 Borgerservice Nord  (1 emner, 1 mailboxes)" in out
    familie = next(line for line in out if "Emne 3002" in line)
    assert "sbsys://esdh.testby.dk/koe/familie" in familie and cp(4) in familie
    assert familie.endswith("[closed 2020-01-01]")
    # the tree order: each Emne under its Postkasse under its Mappe
    assert out.index("Mappe 1 Borgerservice  (2 postkasser, 3 emner, 2 mailboxes)") < \
        next(i for i, line in enumerate(out) if "Emne 1001" in line) < \
        next(i for i, line in enumerate(out) if line.startswith("Mappe 3"))


def test_show_defaults_to_the_config_dir(tmp_path):
    (tmp_path / "hierarchy.xml").write_text(hierarchy_text(), encoding="utf-8")
    result = run("show", env={"DOCPOST_CONFIG_DIR": str(tmp_path)})
    assert result.returncode == 0 and "Testby Kommune" in result.stdout
    shipped = run("show")
    assert shipped.returncode == 0 and "Postkasse 300 Børn og Familie" in shipped.stdout


def test_show_refuses_an_invalid_file(tmp_path):
    path = tmp_path / "broken.xml"
    text = hierarchy_text('  <Postkasse id="500" mappe="5" label="Byggeri"/>')
    path.write_text(text, encoding="utf-8")
    result = run("show", str(path))
    assert result.returncode == 1 and result.stdout == ""
    line = line_of(text, 'id="500"')
    assert f"{path}:{line}:" in result.stderr
    assert "[hierarchy.orphan-postkasse]" in result.stderr


@pytest.mark.parametrize("args", [("check",), ("frobnicate",)])
def test_usage_errors(args):
    assert run(*args).returncode == 2
