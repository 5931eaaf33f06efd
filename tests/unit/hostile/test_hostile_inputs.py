"""The hostile-input corpus: every case is rejected with its reason code, within bounds."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import hostile_corpus as corpus
import pytest

from docpost import validation

# Identifiers the corpus uses: none may appear in clear in any report.
IDENTIFIERS = ("2211771212", "2902010123", "0113801234", "3104161234", "34567809", "2512169996", "34567808")
READ_LIMIT = max(validation.MAX_METADATA_BYTES, validation.MAX_LETTER_BYTES, validation.MAX_PDF_BYTES)


class CountingSource:
    """A SubmissionSource that records every read (how often, with which limit, how many bytes)."""

    def __init__(self, inner: validation.LocalSubmission):
        self.inner = inner
        self.key = inner.key
        self.reads: dict[str, list[tuple[int, int]]] = {}

    def list_files(self) -> dict[str, int]:
        return self.inner.list_files()

    def read(self, name: str, max_bytes: int) -> bytes:
        data = self.inner.read(name, max_bytes)
        self.reads.setdefault(name, []).append((max_bytes, len(data)))
        return data

    @property
    def bytes_read(self) -> int:
        return sum(n for reads in self.reads.values() for _, n in reads)


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    for name in corpus.CASES:
        corpus.build(name, root)
    corpus.build_good(root, "a-citizen")
    corpus.build_good(root, "z-company")
    return root


def test_corpus_has_at_least_thirty_cases():
    assert len(corpus.CASES) >= 30


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", sorted(corpus.CASES))
def test_case_is_rejected_with_its_code(name, corpus_root):
    folder = corpus_root / "inbox" / "hostile" / "2026-01-15" / name
    source = CountingSource(validation.LocalSubmission(folder))
    report = validation.validate(source)

    expected = corpus.CASES[name][2]
    assert not report.valid and report.submission is None
    assert expected <= set(report.codes), report.to_text()
    assert report.to_json()["valid"] is False
    # bounded reading: each file at most once, within its limit; huge files are never read
    for file, reads in source.reads.items():
        assert len(reads) == 1, f"{file!r} read {len(reads)} times"
        limit, got = reads[0]
        assert got <= limit <= READ_LIMIT
    assert source.bytes_read < 4 * 1024 * 1024
    # no clear CPR/CVR number in any message
    shown = json.dumps(report.to_json(), ensure_ascii=False) + report.to_text()
    assert not any(identifier in shown for identifier in IDENTIFIERS)


def test_good_submissions_in_the_same_batch_are_unaffected(corpus_root):
    reports = {str(r.key): r for r in validation.validate_many(validation.discover(corpus_root))}
    assert len(reports) == len(corpus.CASES) + 2
    assert reports["good/2026-01-15/a-citizen"].valid
    assert reports["good/2026-01-15/z-company"].valid
    for name, (_, _, expected) in corpus.CASES.items():
        report = reports[f"hostile/2026-01-15/{name}"]
        assert not report.valid and expected <= set(report.codes), name


@pytest.mark.timeout(120)
def test_whole_corpus_in_bounded_memory_and_time(corpus_root):
    """The batch under a 1 GiB address-space limit and a 90 s CPU limit, in a child process."""
    script = textwrap.dedent(f"""
        import json, resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        resource.setrlimit(resource.RLIMIT_CPU, (90, 90))
        from docpost import validation
        out = {{}}
        for r in validation.validate_many(validation.discover({str(corpus_root)!r})):
            out[str(r.key)] = [r.valid, r.codes]
        # VmHWM: this program's own resident peak (ru_maxrss keeps the forking parent's, a large
        # pytest process late in the suite, across exec)
        peak = int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")))
        print(json.dumps({{"reports": out, "peak_kib": peak}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["peak_kib"] < 512 * 1024  # resident peak well under the limit
    reports = result["reports"]
    assert reports["good/2026-01-15/a-citizen"] == [True, []]
    assert all("validator.internal-error" not in codes for _, codes in reports.values())
    assert sum(1 for valid, _ in reports.values() if not valid) == len(corpus.CASES)
