"""The repository is self-contained: no code, test, benchmark or build file reads the team's shared
folder beside the checkout (the reference samples the tests use live in tests/fixtures/reference)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCOPE = ["plugins", "testbench", "tests", "dags", "benchmarks", "Makefile", ".ci"]
FORBIDDEN = ["../shared", "/shared/reference", 'parent / "shared"']
#: These name the old location on purpose: the provenance notes and this test.
EXEMPT = {"tests/fixtures/reference/PROVENANCE.md", "tests/unit/test_repository.py"}


def _files() -> list[str]:
    """The tracked files in scope, and new ones not yet added (untracked but not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *SCOPE],
        cwd=ROOT, capture_output=True, check=True, timeout=60,
    ).stdout.decode().split("\0")
    return sorted({name for name in listed if name and name not in EXEMPT and (ROOT / name).is_file()})


def test_nothing_reads_the_shared_folder_outside_the_repository():
    files = _files()
    assert "tests/conftest.py" in files and "Makefile" in files  # the listing did work
    offenders = []
    for name in files:
        data = (ROOT / name).read_bytes()
        if b"\0" in data[:8192]:  # binary (PDF, PNG): not code
            continue
        text = data.decode("utf-8", errors="replace")
        offenders += [f"{name}: {needle}" for needle in FORBIDDEN if needle in text]
    assert offenders == [], "read the data from tests/fixtures/reference, not ../shared"

