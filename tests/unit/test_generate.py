"""docpost_testbench.generate: realistic, deterministic nights with known broken submissions."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pypdf
import pytest

from docpost import validation
from docpost_testbench import generate

SOURCES = {"sbsys", "momentum", "opus-debitor", "kmd-ydelse", "dubu", "byggesag"}


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> tuple[Path, generate.NightResult]:
    out = tmp_path_factory.mktemp("night")
    result = generate.generate_night(240, "2026-01-15", out, broken_share=0.2, seed=7)
    return out, result


def test_byte_identical_for_a_seed_and_different_for_another(tmp_path):
    generate.generate_night(30, "2026-01-15", tmp_path / "a", broken_share=0.3, seed=3)
    generate.generate_night(30, "2026-01-15", tmp_path / "b", broken_share=0.3, seed=3)
    generate.generate_night(30, "2026-01-15", tmp_path / "c", broken_share=0.3, seed=4)
    a, b, c = tree(tmp_path / "a"), tree(tmp_path / "b"), tree(tmp_path / "c")
    assert a == b
    assert a != c


def test_a_submission_does_not_depend_on_the_count(tmp_path):
    generate.generate_night(5, "2026-01-15", tmp_path / "five", seed=1)
    generate.generate_night(12, "2026-01-15", tmp_path / "twelve", seed=1)
    five, twelve = tree(tmp_path / "five" / "inbox"), tree(tmp_path / "twelve" / "inbox")
    assert five and all(twelve[name] == data for name, data in five.items())


def test_layout_and_side_files(night):
    out, result = night
    folders = sorted(p for p in (out / "inbox").glob("*/*/*") if p.is_dir())
    assert len(folders) == 240
    assert {p.parts[-3] for p in folders} == SOURCES
    assert {p.parts[-2] for p in folders} == {"2026-01-15"}
    expected = json.loads((out / "expected.json").read_text())
    assert expected == result.expected and len(expected) == 240
    assert sum(1 for codes in expected.values() if codes) == 48 == result.broken
    recipients = json.loads((out / "recipients.json").read_text())
    assert set(recipients.values()) <= {"digital", "physical", "unknown"}
    assert len(recipients) == 192  # one per good submission
    digital = sum(v == "digital" for v in recipients.values()) / len(recipients)
    assert 0.65 < digital < 0.92
    assert any(len(k) == 10 for k in recipients) and any(len(k) == 8 for k in recipients)


def test_every_kind_of_broken_submission_appears_and_is_rejected_with_its_codes(night):
    out, result = night
    assert {tuple(c) for c in result.expected.values() if c} == set(generate.BROKEN_KINDS.values())
    for report in validation.validate_many(validation.discover(out)):
        codes = result.expected[str(report.key)]
        if codes:
            assert not report.valid and set(report.codes) == set(codes), report.to_text()
        else:
            assert report.valid, report.to_text()


def test_realistic_content(night):
    out, _ = night
    good = [validation.validate(s).submission for s in validation.discover(out)]
    good = [s for s in good if s is not None]
    names = " ".join(s.manifest.recipient.name for s in good)
    assert any(ch in names for ch in "æøåÆØÅ")
    kinds = {s.manifest.recipient.id_type.value for s in good}
    assert kinds == {"CPR", "CVR"}
    companies = [s for s in good if s.manifest.recipient.id_type.value == "CVR"]
    citizens = [s for s in good if s.manifest.recipient.id_type.value == "CPR"]
    share = lambda subs: sum(s.attention is not None for s in subs) / len(subs)  # noqa: E731
    assert share(companies) > share(citizens)
    assert any(s.case is not None for s in good)
    assert any(s.manifest.attachments for s in good)
    assert any(s.manifest.main_file.role.value == "main" for s in good)
    assert {s.manifest.reply_override for s in good if s.manifest.reply_override} >= {
        validation.model.ReplyOverride(postkasse_id=100, emne_id=1001),
        validation.model.ReplyOverride(postkasse_id=300, emne_id=3002),
        validation.model.ReplyOverride(no_reply=True),
    }
    letters = [s.letter for s in good if s.letter]
    assert any(any(isinstance(b, validation.model.Table) for b in l.blocks) for l in letters)
    assert any(any(isinstance(b, validation.model.BulletList) for b in l.blocks) for l in letters)
    sizes = [sum(len(getattr(b, "text", "")) for b in l.blocks) for l in letters]
    assert min(sizes) > 800 and max(sizes) > 6000  # one to three pages of text
    pages = set()
    for s in good:
        for data in s.documents.values():
            pages.add(len(pypdf.PdfReader(io.BytesIO(data)).pages))
    assert pages == {1, 2, 3}


def test_sink_gets_ready_last_per_submission():
    writes: list[str] = []
    generate.generate_night(15, "2026-01-15", sink=lambda key, data: writes.append(key), broken_share=0.0, seed=2)
    prefixes = {}
    for n, key in enumerate(writes):
        if key.startswith("inbox/"):
            prefixes.setdefault(key.rsplit("/", 1)[0], []).append((n, key.rsplit("/", 1)[1]))
    assert len(prefixes) == 15
    for entries in prefixes.values():
        assert entries[-1][1] == "_READY" and all(name != "_READY" for _, name in entries[:-1])
    assert writes[-2:] == ["recipients.json", "expected.json"]


def test_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError):
        generate.generate_night(1, "2026-01-15")
    with pytest.raises(ValueError):
        generate.generate_night(1, "2026-01-15", tmp_path, broken_share=1.5)
