"""The poison corpus (tests/poison/submissions.py) mixed into a night of good letters, run through
the stage functions on the real parts: moto S3 over HTTP, the ledger on PostgreSQL and the SF1601
simulator over HTTPS with mutual TLS.

Every poison passes validation and breaks a later stage; the night must give each its expected
state and reason code, deliver every good letter, and never let one letter stop a stage. Later
nights must change nothing but the letters held with ``internal.*``, which are quarantined as
FAILED after DOCPOST_MAX_FAULTS runs."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections import Counter

import pytest

from docpost import pipeline
from docpost_testbench.generate import generate_night
from docpost.ledger import MessageState
from docpost.model import SubmissionKey
from docpost.storage import ObjectStore, S3Sink, folder_problems
from poison.submissions import FAILED, REJECTED, STAMPED, SUBMITTED, Poison, corpus, drop, recipients
from pg_support import fresh_schema

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NIGHT = dt.date(2026, 11, 26)
GOOD = 20
CHUNK = 9  # a few chunks, each holding good letters and poisons
MAX_FAULTS = 3
CPR_PLACEHOLDER = "0000000000"  # a CPR recipient's number in a ForsendelseI (the simulator files print under it)


class MemorySubmission:
    """A submission's files in memory, as ``docpost.validation`` reads a source."""

    def __init__(self, key: SubmissionKey, files: dict[str, bytes]) -> None:
        self.key = key
        self.files = {**files, "_READY": b""}

    def list_files(self) -> dict[str, int]:
        return {name: len(data) for name, data in self.files.items()}

    def read(self, name: str, max_bytes: int) -> bytes:
        return self.files[name]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from docpost_testbench.pki import create_test_pki

    return create_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture()
def poisoned_night(tmp_path, s3_bucket, pg_url, pki, monkeypatch):
    """A generated night of good letters and the poison corpus in S3, a fresh ledger schema, and a
    simulator whose register knows the generated recipients and the poisons' special ones."""
    from docpost.ledger import ledger_at
    from docpost_testbench.simulator.runner import start_simulator

    fresh_schema(pg_url)
    monkeypatch.setenv("DOCPOST_DB_URL", pg_url)
    monkeypatch.setenv("DOCPOST_MAX_FAULTS", str(MAX_FAULTS))
    monkeypatch.setenv("DOCPOST_WINDOW_CONTENT", "cover")
    ledger_at.cache_clear()
    pipeline._client_for.cache_clear()
    store = ObjectStore()
    poisons = corpus(NIGHT)
    with S3Sink(store) as sink:
        generate_night(GOOD, NIGHT, sink=sink, broken_share=0.0, seed=29)
    drop(store, poisons)
    expected = json.loads(store.get_bytes("expected.json"))
    register = {**json.loads(store.get_bytes("recipients.json")), **recipients(poisons)}
    (tmp_path / "recipients.json").write_text(json.dumps(register))
    sim = start_simulator(tmp_path / "sim", tmp_path / "recipients.json", {}, tls_cert=pki.server_cert,
                          tls_key=pki.server_key, client_ca=pki.ca_cert,
                          client_cert=(pki.client_cert, pki.client_key), config={"receipt_delay": 0})
    monkeypatch.setenv("DOCPOST_SF1601_URL", sim.url)
    monkeypatch.setenv("DOCPOST_SF1601_CERT", str(pki.client_cert))
    monkeypatch.setenv("DOCPOST_SF1601_KEY", str(pki.client_key))
    monkeypatch.setenv("DOCPOST_SF1601_CA", str(pki.ca_cert))
    try:
        yield store, sim, poisons, expected
    finally:
        sim.stop()


STAGES = (("validate", pipeline.validate_chunk), ("stamp", pipeline.stamp_chunk),
          ("render", pipeline.render_chunk), ("deliver", pipeline.deliver_chunk))


def run_night(actor: str) -> tuple[dict, dict[str, Counter], list[dict]]:
    """collect, plan, then every chunk through validate, stamp, render, deliver, in order. Any
    exception a stage raises fails the test: a poison must never stop a stage."""
    collected = pipeline.collect(NIGHT, actor=actor)
    chunks = pipeline.plan_chunks(NIGHT, chunk_size=CHUNK)
    totals: dict[str, Counter] = {name: Counter() for name, _ in STAGES}
    for chunk in chunks:
        for name, stage in STAGES:
            result = stage(chunk, actor=actor)
            totals[name].update({k: v for k, v in result.items()
                                 if isinstance(v, int) and k not in ("night", "index", "count", "first_id", "last_id")})
    return collected, totals, chunks


def snapshot(led, ids) -> dict[int, tuple]:
    """What may not change for a settled letter: its row's state, reasons, counters, times, PDF, events."""
    return {m.id: (m.state, m.reason_code, m.reason_text, m.attempts, m.faults, m.pdf_sha256, m.updated_at,
                   m.state_changed_at, len(led.history(m.id)))
            for m in led.messages(ids)}


def sub_key(p: Poison) -> tuple[str, str]:
    return p.source_system, p.submission_id


def main_file(p: Poison) -> str:
    """The file name of the poison's main document (from its manifest)."""
    from lxml import etree

    from docpost.model import NS_MANIFEST

    root = etree.fromstring(p.files["manifest.xml"])
    return root.find(f"{{{NS_MANIFEST}}}Documents/{{{NS_MANIFEST}}}MainDocument").get("filename")


def test_poison_corpus_through_three_nights(poisoned_night):
    store, sim, poisons, expected = poisoned_night
    from pypdf import PdfReader

    from docpost.rendering import check_print_ready
    from docpost.validation import validate

    # -- the corpus is what it claims to be ----------------------------------------------------
    assert len(poisons) >= 15 and len({p.folder for p in poisons}) == len(poisons)
    assert {REJECTED, STAMPED, SUBMITTED} <= {s for p in poisons for s in p.states}  # FAILED: quarantine, receipts
    refused = [p for p in poisons if p.refused_folder]
    registered = [p for p in poisons if not p.refused_folder]
    held = [p for p in registered if p.quarantined]
    assert refused and held and all(p.code and p.code.startswith("internal.") for p in held)
    for p in poisons:
        report = validate(MemorySubmission(SubmissionKey(p.source_system, NIGHT, p.submission_id), p.files))
        assert report.valid, (p.name, report.codes)
        problems = folder_problems(p.source_system, p.date_folder, p.submission_id)
        if p.refused_folder:
            assert p.states == frozenset() and problems and problems[0][0] == p.code, (p.name, problems)
        else:
            assert not problems, (p.name, problems)
            assert len(p.states) == 1, p.name
            assert (p.code is None) == (p.states == {SUBMITTED}), p.name

    # -- night 1 -------------------------------------------------------------------------------
    collected, totals, chunks = run_night("night-1")
    assert collected["refused"] == len(refused), collected
    assert collected["new"] == GOOD + len(registered), collected
    led = pipeline.ledger()
    msgs = led.messages(led.message_ids())
    by_key = {(m.source_system, m.submission_id): m for m in msgs}
    assert len(msgs) == len(by_key) == GOOD + len(registered)
    good = [m for m in msgs if f"{m.source_system}/{m.submission_date.isoformat()}/{m.submission_id}" in expected]
    assert len(good) == GOOD and all(not codes for codes in expected.values())
    poison_ids = {by_key[sub_key(p)].id for p in registered}
    good_ids = {m.id for m in good}
    assert any(poison_ids & set(range(c["first_id"], c["last_id"] + 1)) and
               good_ids & set(range(c["first_id"], c["last_id"] + 1)) for c in chunks), \
        "no chunk mixes poisons and good letters"
    assert len(chunks) > 1

    # every good letter is SUBMITTED
    bad_good = {m.submission_id: (m.state, m.reason_code) for m in good if m.state != MessageState.SUBMITTED}
    assert not bad_good, bad_good
    assert all(m.reason_code is None and m.pdf_sha256 for m in good)

    # every poison in its state with its code
    wrong = {}
    for p in registered:
        m = by_key[sub_key(p)]
        if m.state not in p.states or m.reason_code != p.code:
            wrong[p.name] = (m.state.value, m.reason_code, (m.reason_text or "")[:200])
    assert not wrong, json.dumps(wrong, indent=1, ensure_ascii=False)

    # the stages counted what the corpus says, and none of them refused a poison at validation
    def count(state, prefix=None):
        return sum(1 for p in registered if p.states == {state} and (prefix is None or p.code.startswith(prefix)))
    assert totals["validate"]["rejected"] == 0 and totals["validate"]["held"] == 0, totals["validate"]
    assert totals["validate"]["validated"] == GOOD + len(registered)
    assert totals["stamp"]["rejected"] == count(REJECTED, "stamping."), totals["stamp"]
    assert totals["render"]["rejected"] == count(REJECTED) - count(REJECTED, "stamping."), totals["render"]
    assert totals["render"]["held"] == len(held) and totals["render"]["quarantined"] == 0, totals["render"]
    assert totals["deliver"]["failed"] == count(FAILED), totals["deliver"]
    assert totals["deliver"]["submitted"] == GOOD + count(SUBMITTED), totals["deliver"]
    assert totals["deliver"].get("retrying", 0) == 0

    # rejection reports: for every REJECTED poison (its stage, its code first) and refused folder
    for p in registered:
        m = by_key[sub_key(p)]
        if p.states == {REJECTED}:
            report = json.loads(store.get_bytes(p.rejection_key))
            assert report["errors"][0]["code"] == p.code, (p.name, report["errors"])
            assert report["stage"] == ("stamp" if p.code.startswith("stamping.") else "render"), p.name
            assert report["message_uuid"] == m.message_uuid
        elif p.states == {FAILED}:
            assert m.reason_text and m.failed_from == MessageState.RENDERED.value, (p.name, m.failed_from)
        elif p.states == {STAMPED}:
            assert m.faults == 1 and m.reason_text and "1 of 3" in m.reason_text, (p.name, m.faults, m.reason_text)
            assert not store.exists(p.rejection_key)
    for p in refused:
        assert not led.by_submission_id(p.submission_id, p.source_system), p.name
        assert store.exists(p.rejection_key[:-len("json")] + "txt"), p.name
        report = json.loads(store.get_bytes(p.rejection_key))
        assert report["stage"] == "collect" and report["message_uuid"] is None, p.name
        assert report["errors"][0]["code"] == p.code, (p.name, report["errors"])
        assert report["submission"] == p.folder[len("inbox/"):].rstrip("/")

    # what SF1601 received: each submitted letter once; the printed copies with a cover page pass
    # the print check; a digital letter's supplied PDF goes unchanged; the service fails some later
    stats = sim.stats()
    assert stats["rejected"] == 0, stats
    submitted = [m for m in led.messages(led.message_ids()) if m.state == MessageState.SUBMITTED]
    transactions = {k.lower(): v for k, v in stats["transactions"].items()}
    assert {m.message_uuid.lower() for m in submitted} == set(transactions)
    assert set(transactions.values()) == {1}

    def printed(p: Poison, m) -> bytes:
        rid = CPR_PLACEHOLDER if len(p.recipient) == 10 else p.recipient
        with sim.http() as client:
            response = client.get(f"/sim/mailbox/{rid}/{m.message_uuid.lower()}/pdf")
            response.raise_for_status()
            return response.content

    def pages(pdf: bytes) -> int:
        return len(PdfReader(io.BytesIO(pdf)).pages)

    for p in [p for p in registered if p.cover_page]:
        m = by_key[sub_key(p)]
        copy = printed(p, m)
        main = p.files[main_file(p)]
        attached = sum(pages(data) for name, data in p.files.items()
                       if name.endswith(".pdf") and name != main_file(p))
        assert pages(copy) == 1 + pages(main) + attached, p.name
        assert check_print_ready(copy, max_pages=10**6) == [], p.name
        assert check_print_ready(main), f"{p.name}: the supplied PDF itself should need the cover page"
        assert "Adresseside" in PdfReader(io.BytesIO(copy)).pages[0].extract_text(), p.name
    for name in ("byg-000002", "poison-window-digital", "poison-landscape-digital"):
        p = next(p for p in registered if p.submission_id == name)
        m = by_key[sub_key(p)]
        with sim.http() as client:
            letters = client.get(f"/sim/mailbox/{p.recipient}").json()["letters"]
        mine = [x for x in letters if x["message_uuid"] == m.message_uuid.lower()]
        assert len(mine) == 1 and mine[0]["channel"] == "digital" and mine[0]["status"] == "delivered", (name, mine)
        supplied = p.files[main_file(p)]
        with sim.http() as client:
            body = client.get(f"/sim/mailbox/{p.recipient}/{m.message_uuid.lower()}/pdf").content
        assert body == supplied, f"{name}: Digital Post must get the supplied PDF unchanged"
        assert store.get_bytes(pipeline.rendered_key(m.ref)) == supplied
    for p in [p for p in registered if p.receipt_code]:
        m = by_key[sub_key(p)]
        with sim.http() as client:
            letters = client.get(f"/sim/mailbox/{p.recipient}").json()["letters"]
        mine = [x for x in letters if x["message_uuid"] == m.message_uuid.lower()]
        assert len(mine) == 1 and mine[0]["status"] == "failed" and mine[0]["error_code"] == p.receipt_code, \
            (p.name, mine)

    # -- nights 2 and 3: only the held letters move; quarantined as FAILED at the limit --------
    held_ids = {by_key[sub_key(p)].id for p in held}
    others = sorted(set(led.message_ids()) - held_ids)
    before = snapshot(led, others)
    objects_before = store.list_objects("")
    requests_before = sim.stats()["requests"]
    for night in range(2, MAX_FAULTS + 1):
        collected, totals, chunks = run_night(f"night-{night}")
        assert collected["new"] == 0 and collected["refused"] == len(refused), collected
        assert {c["messages"] for c in chunks} and sum(c["messages"] for c in chunks) == len(held), chunks
        assert totals["validate"]["claimed"] == 0 and totals["stamp"]["claimed"] == 0
        assert totals["render"]["claimed"] == len(held), totals["render"]
        last = night == MAX_FAULTS
        assert totals["render"]["quarantined"] == (len(held) if last else 0), totals["render"]
        assert totals["render"]["held"] == (0 if last else len(held)), totals["render"]
        assert totals["deliver"]["claimed"] == 0
        for p in held:
            m = led.messages([by_key[sub_key(p)].id])[0]
            assert m.reason_code == p.code, (p.name, m.reason_code)
            if last:
                assert m.state == MessageState.FAILED and "quarantined" in (m.reason_text or ""), (p.name, m)
                assert m.failed_from == MessageState.STAMPED.value
            else:
                assert m.state == MessageState.STAMPED and m.faults == night, (p.name, m.state, m.faults)
        assert snapshot(led, others) == before, f"night {night} changed a letter it should have left alone"
        assert store.list_objects("") == objects_before
        assert sim.stats()["requests"] == requests_before
    final = Counter(m.state for m in led.messages(led.message_ids()))
    assert MessageState.STAMPED not in final and not pipeline.plan_chunks(NIGHT, chunk_size=CHUNK), final
