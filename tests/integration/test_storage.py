"""docpost.storage against a real moto S3 server on loopback (boto3 and S3Hook paths)."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import boto3
import pytest

from docpost import storage
from docpost.model import READY_MARKER, SubmissionKey
from docpost_testbench.generate import generate_night
from docpost.storage import (
    InboxGuardError,
    ObjectNotFound,
    ObjectStore,
    ObjectTooLarge,
    S3Sink,
    S3Submission,
    SinkOrderError,
)
from docpost.validation import FileTooLarge, SourceError, UnsafeFileName, validate

pytestmark = pytest.mark.integration

NIGHT = dt.date(2026, 3, 2)


def _raw(s3_endpoint):
    return boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="eu-west-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )


def _drop(raw, bucket, key: SubmissionKey, files: dict[str, bytes], ready: bool = True) -> None:
    for name, data in files.items():
        raw.put_object(Bucket=bucket, Key=key.prefix + name, Body=data)
    if ready:
        raw.put_object(Bucket=bucket, Key=key.prefix + READY_MARKER, Body=b"")


@pytest.fixture()
def store(s3_bucket) -> ObjectStore:
    return ObjectStore(backend="boto3")


def test_only_folders_with_ready_are_listed(store, s3_bucket, s3_endpoint):
    raw = _raw(s3_endpoint)
    ready_a = SubmissionKey("sbsys", NIGHT, "a-1")
    ready_b = SubmissionKey("momentum", NIGHT, "b-7")
    half = SubmissionKey("sbsys", NIGHT, "a-2")
    other_night = SubmissionKey("sbsys", NIGHT + dt.timedelta(days=1), "a-3")
    _drop(raw, s3_bucket, ready_a, {"manifest.xml": b"<m/>", "letter.xml": b"<l/>"})
    _drop(raw, s3_bucket, ready_b, {"manifest.xml": b"<m/>"})
    _drop(raw, s3_bucket, half, {"manifest.xml": b"<m/>"}, ready=False)
    _drop(raw, s3_bucket, other_night, {"manifest.xml": b"<m/>"})
    # Noise that must not be mistaken for submissions.
    raw.put_object(Bucket=s3_bucket, Key=f"inbox/sbsys/{NIGHT}/_READY", Body=b"")
    raw.put_object(Bucket=s3_bucket, Key="inbox/sbsys/2026-3-2/x/_READY", Body=b"")
    raw.put_object(Bucket=s3_bucket, Key="reports/2026-03-02/summary.json", Body=b"{}")

    assert store.list_ready_submissions(NIGHT) == sorted([ready_a, ready_b], key=str)
    scan = store.scan_inbox(NIGHT)
    assert scan.pending == [half]
    assert scan.files[ready_a] == {"manifest.xml": 4, "letter.xml": 4, READY_MARKER: 0}
    assert store.list_ready_submissions(NIGHT, source_systems=["momentum"]) == [ready_b]
    assert store.list_ready_submissions(NIGHT, source_systems=["dubu"]) == []

    # The half-written folder becomes visible the moment its _READY lands.
    raw.put_object(Bucket=s3_bucket, Key=half.prefix + READY_MARKER, Body=b"")
    assert half in store.list_ready_submissions(NIGHT)


def test_listing_costs_one_request_per_source_system_not_per_object(store, s3_bucket, s3_endpoint):
    raw = _raw(s3_endpoint)
    for i in range(30):
        _drop(raw, s3_bucket, SubmissionKey("sbsys", NIGHT, f"s{i:03}"), {"manifest.xml": b"m", "a.pdf": b"p"})
    for i in range(5):
        _drop(raw, s3_bucket, SubmissionKey("dubu", NIGHT, f"d{i:03}"), {"manifest.xml": b"m"})
    store.reset_calls()
    ready = store.list_ready_submissions(NIGHT)
    assert len(ready) == 35
    # one delimited listing of inbox/ + one listing per source system (each fits one page)
    assert store.calls == 3
    assert store.calls_by_op == {"ListObjectsV2": 3}


def test_listing_pages_through_more_than_a_thousand_objects(store, s3_bucket, s3_endpoint):
    raw = _raw(s3_endpoint)
    keys = [SubmissionKey("opus-debitor", NIGHT, f"p{i:04}") for i in range(520)]
    for key in keys:
        _drop(raw, s3_bucket, key, {"manifest.xml": b"m"})  # 1,040 objects
    store.reset_calls()
    assert store.list_ready_submissions(NIGHT, source_systems=["opus-debitor"]) == keys
    assert store.calls == 2


def test_late_drops_are_swept_up_by_a_later_night(store, s3_bucket, s3_endpoint):
    raw = _raw(s3_endpoint)
    on_time = SubmissionKey("sbsys", NIGHT - dt.timedelta(days=1), "on-time")
    late = SubmissionKey("byggesag", NIGHT - dt.timedelta(days=2), "late")
    too_old = SubmissionKey("sbsys", NIGHT - dt.timedelta(days=30), "ancient")
    tonight = SubmissionKey("sbsys", NIGHT, "tonight")
    _drop(raw, s3_bucket, on_time, {"manifest.xml": b"m"})
    _drop(raw, s3_bucket, too_old, {"manifest.xml": b"m"})
    _drop(raw, s3_bucket, tonight, {"manifest.xml": b"m"})
    _drop(raw, s3_bucket, late, {"manifest.xml": b"m"}, ready=False)

    # The night of `late` ran while it had no _READY: it was pending, not listed.
    assert store.list_ready_submissions(late.date) == []
    assert store.scan_inbox(late.date).pending == [late]
    time.sleep(1.1)  # S3 stamps LastModified in whole seconds
    since = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    raw.put_object(Bucket=s3_bucket, Key=late.prefix + READY_MARKER, Body=b"")
    swept = store.list_ready_submissions_before(NIGHT, lookback_days=7)
    assert swept == sorted([on_time, late], key=str)  # neither tonight's nor the ancient one
    assert store.list_ready_submissions_before(NIGHT, lookback_days=1) == [on_time]
    assert store.list_ready_submissions_before(NIGHT, 7, ready_since=since) == [late]
    assert store.list_ready_submissions_before(NIGHT, 7, source_systems=["sbsys"]) == [on_time]


def test_submission_reads_files_from_one_listing_with_a_size_guard(store, s3_bucket, s3_endpoint):
    raw = _raw(s3_endpoint)
    key = SubmissionKey("kmd-ydelse", NIGHT, "k-1")
    big = b"%PDF-" + b"x" * 5000
    _drop(raw, s3_bucket, key, {"manifest.xml": "<m>æøå</m>".encode(), "bilag.pdf": big, "sub/evil": b"x"})
    sub = S3Submission(store, key)
    store.reset_calls()
    files = sub.list_files()
    assert files == {"manifest.xml": 13, "bilag.pdf": len(big), "sub/evil": 1, READY_MARKER: 0}
    assert sub.list_files() == files
    assert store.calls == 1  # listed once, cached

    assert sub.read("manifest.xml", max_bytes=100) == "<m>æøå</m>".encode()
    assert sub.read("bilag.pdf", max_bytes=len(big)) == big
    assert sub.read(READY_MARKER, max_bytes=10) == b""
    calls = store.calls
    with pytest.raises(FileTooLarge) as too_large:
        sub.read("bilag.pdf", max_bytes=len(big) - 1)
    assert too_large.value.code == "files.too-large"
    assert store.calls == calls  # refused from the listing, nothing fetched
    with pytest.raises(SourceError):
        sub.read("missing.pdf", max_bytes=100)
    with pytest.raises(UnsafeFileName):
        sub.read("sub/evil", max_bytes=100)


def test_a_hostile_folder_is_listed_in_one_request(store, s3_bucket, s3_endpoint):
    raw = _raw(s3_endpoint)
    key = SubmissionKey("sbsys", NIGHT, "flood")
    _drop(raw, s3_bucket, key, {f"f{i:04}.pdf": b"x" for i in range(25)})

    class SmallSubmission(S3Submission):
        MAX_ENTRIES = 20  # the real cut is 1,000 (validation's LocalSubmission has the same)

    store.reset_calls()
    files = SmallSubmission(store, key).list_files()
    assert len(files) == 20
    assert store.calls == 1
    assert S3Submission.MAX_ENTRIES == 1000


def test_size_guard_holds_when_an_object_grows_after_listing(store, s3_bucket, s3_endpoint):
    raw = _raw(s3_endpoint)
    key = SubmissionKey("sbsys", NIGHT, "grows")
    _drop(raw, s3_bucket, key, {"manifest.xml": b"small"})
    sub = S3Submission(store, key)
    sub.list_files()
    raw.put_object(Bucket=s3_bucket, Key=key.prefix + "manifest.xml", Body=b"y" * 10_000)
    with pytest.raises(FileTooLarge):
        sub.read("manifest.xml", max_bytes=100)
    with pytest.raises(ObjectTooLarge):
        store.get_bytes(key.prefix + "manifest.xml", max_bytes=9_999)
    assert store.get_bytes(key.prefix + "manifest.xml", max_bytes=10_000) == b"y" * 10_000


def test_an_unreachable_store_fails_loudly_instead_of_rejecting(s3_bucket):
    key = SubmissionKey("sbsys", NIGHT, "down")
    down = ObjectStore(endpoint_url=f"http://127.0.0.1:{_closed_port()}", backend="boto3")
    with pytest.raises(storage.StorageUnavailable) as failed:
        S3Submission(down, key).list_files()
    assert not isinstance(failed.value, SourceError)
    assert failed.value.code == "storage.unavailable"


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_generated_night_through_the_sink_validates_from_s3(store, s3_bucket, tmp_path):
    """The generator's sink writes a night; the validator reads it back through S3Submission."""
    with S3Sink(store) as sink:
        night = generate_night(12, NIGHT, sink=sink, broken_share=0.25, seed=7)
    scan = store.scan_inbox(NIGHT)
    assert {str(k) for k in scan.ready + scan.pending} == set(night.expected)
    for key in scan.pending:  # the generator's "missing _READY" kind: left alone, not listed
        assert night.expected[str(key)] == ["submission.not-ready"]
    assert len(scan.ready) >= 9
    local = generate_night(12, NIGHT, tmp_path, broken_share=0.25, seed=7)
    assert local.expected == night.expected
    store.reset_calls()
    for key in scan.ready:
        report = validate(S3Submission(store, key, files=scan.files[key]))
        expected = night.expected[str(key)]
        if expected:
            assert not report.valid and set(expected) <= set(report.codes), (key, report.codes)
        else:
            assert report.valid, (key, report.codes)
    gets = store.calls_by_op["GetObject"]
    assert store.calls == gets  # nothing but the file reads: no listing, no HEAD


def test_scan_files_spare_the_per_submission_listing(store, s3_bucket, s3_endpoint):
    raw = _raw(s3_endpoint)
    key = SubmissionKey("sbsys", NIGHT, "pre")
    _drop(raw, s3_bucket, key, {"manifest.xml": b"<m/>"})
    scan = store.scan_inbox(NIGHT, ["sbsys"])
    sub = S3Submission(store, key, files=scan.files[key])
    store.reset_calls()
    assert sub.read("manifest.xml", 100) == b"<m/>"
    assert store.calls_by_op == {"GetObject": 1}


def test_objects_round_trip_and_exist(store, s3_bucket):
    store.put_json("reports/2026-03-02/summary.json", {"b": 2, "a": "Søby"})
    store.put_text("reports/2026-03-02/summary.txt", "Søby Kommune\n")
    store.put_bytes("reports/2026-03-02/x.bin", b"\x00\x01")
    raw = store.get_bytes("reports/2026-03-02/summary.json")
    assert json.loads(raw) == {"a": "Søby", "b": 2}
    assert raw.index(b'"a"') < raw.index(b'"b"')  # stable key order
    assert store.get_json("reports/2026-03-02/summary.json")["a"] == "Søby"
    assert store.get_bytes("reports/2026-03-02/summary.txt").decode() == "Søby Kommune\n"
    assert store.exists("reports/2026-03-02/x.bin")
    assert not store.exists("reports/2026-03-02/nothing")
    with pytest.raises(ObjectNotFound):
        store.get_bytes("reports/nothing")


def test_delete_prefix_guards_the_inbox(store, s3_bucket, s3_endpoint):
    raw = _raw(s3_endpoint)
    key = SubmissionKey("sbsys", NIGHT, "keep")
    _drop(raw, s3_bucket, key, {"manifest.xml": b"m"})
    for i in range(3):
        store.put_bytes(f"rejected/sbsys/{NIGHT}/r/{i}.json", b"{}")
    for bad in (key.prefix, "inbox/", "/inbox/sbsys/", "", "/"):
        with pytest.raises(InboxGuardError) as refused:
            store.delete_prefix(bad)
        assert refused.value.code == "storage.inbox-guard"
    assert store.list_ready_submissions(NIGHT) == [key]

    assert store.delete_prefix(f"rejected/sbsys/{NIGHT}/") == 3
    assert store.list_objects("rejected/") == {}
    assert store.delete_prefix(key.prefix, originals_final=True) == 2
    assert store.list_ready_submissions(NIGHT) == []


class _RecordingStore(ObjectStore):
    """Records the order in which puts complete (the real moto server does the writing)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.completed: list[str] = []
        self._order_lock = threading.Lock()

    def put_bytes(self, key, data, content_type=None):
        if not key.endswith(READY_MARKER) and key.endswith("slow.pdf"):
            threading.Event().wait(0.2)  # a slow upload that _READY must wait for
        super().put_bytes(key, data, content_type)
        with self._order_lock:
            self.completed.append(key)


def test_sink_holds_ready_until_the_folders_files_are_written(s3_bucket):
    rec = _RecordingStore(backend="boto3")
    subs = [SubmissionKey("dubu", NIGHT, f"g{i:02}") for i in range(20)]
    with S3Sink(rec, prefix="", workers=8, max_pending=16) as sink:
        for key in subs:
            sink(key.prefix + "manifest.xml", "<m/>")
            sink(key.prefix + "slow.pdf", b"%PDF-1.4")
            sink(key.prefix + READY_MARKER, b"")
        sink("recipients.json", b"{}")
    assert sink.written == 20 * 3 + 1
    position = {k: i for i, k in enumerate(rec.completed)}
    for key in subs:
        ready = position[key.prefix + READY_MARKER]
        assert ready > position[key.prefix + "slow.pdf"]
        assert ready > position[key.prefix + "manifest.xml"]
    assert rec.list_ready_submissions(NIGHT) == subs
    assert rec.get_bytes(subs[3].prefix + "manifest.xml") == b"<m/>"


def test_sink_refuses_files_after_ready_and_reports_failed_writes(s3_bucket, s3_endpoint):
    store = ObjectStore(backend="boto3")
    key = SubmissionKey("sbsys", NIGHT, "order")
    sink = S3Sink(store, prefix="night-1")
    sink(key.prefix + "manifest.xml", b"m")
    sink(key.prefix + READY_MARKER, b"")
    with pytest.raises(SinkOrderError):
        sink(key.prefix + "late.pdf", b"x")
    sink.close()
    assert store.list_objects("night-1/") == {
        "night-1/" + key.prefix + "manifest.xml": 1,
        "night-1/" + key.prefix + READY_MARKER: 0,
    }

    broken = ObjectStore(bucket="no-such-bucket-here", backend="boto3")
    failing = S3Sink(broken, workers=2)
    failing(key.prefix + "manifest.xml", b"m")
    failing(key.prefix + READY_MARKER, b"")
    with pytest.raises(storage.BucketNotFound) as failed:
        failing.close()
    assert failed.value.code == "storage.no-bucket"
    assert isinstance(failed.value, storage.StorageUnavailable)


def test_ensure_bucket_creates_it_once(s3_bucket):
    fresh = ObjectStore(bucket=f"{s3_bucket}-new", backend="boto3")
    with pytest.raises(storage.BucketNotFound):
        fresh.put_bytes("reports/x", b"0")
    fresh.ensure_bucket()
    fresh.ensure_bucket()
    fresh.put_bytes("reports/x", b"1")
    assert fresh.get_bytes("reports/x") == b"1"
    fresh.delete_prefix("reports/")
    with pytest.raises(storage.StorageRefused) as refused:  # a permanent error, not "unavailable"
        ObjectStore(bucket="b", backend="boto3").ensure_bucket()
    assert refused.value.s3_code == "InvalidBucketName"
    assert not isinstance(refused.value, storage.StorageUnavailable)


def test_calls_are_counted_per_operation(store, s3_bucket):
    store.reset_calls()
    store.put_bytes("reports/a", b"1")
    store.get_bytes("reports/a")
    store.exists("reports/a")
    assert store.calls == 3
    assert store.calls_by_op == {"PutObject": 1, "GetObject": 1, "HeadObject": 1}


def test_s3hook_backed_store_uses_the_airflow_connection(s3_bucket, s3_endpoint, monkeypatch, tmp_path):
    """With AIRFLOW_CONN_DOCPOST_S3 set, the store takes its client from the Amazon provider."""
    pytest.importorskip("airflow.providers.amazon.aws.hooks.s3")
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    monkeypatch.delenv("DOCPOST_S3_ENDPOINT_URL")  # the endpoint must come from the connection
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AIRFLOW_CONN_DOCPOST_S3", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": s3_endpoint, "region_name": "eu-west-1"},
    }))
    hooked = ObjectStore()
    key = SubmissionKey("sbsys", NIGHT, "via-hook")
    with S3Sink(hooked) as sink:
        sink(key.prefix + "manifest.xml", b"<m/>")
        sink(key.prefix + READY_MARKER, b"")
    assert hooked.backend_used == "hook"
    assert hooked.client.meta.endpoint_url == s3_endpoint
    assert hooked.list_ready_submissions(NIGHT) == [key]
    assert S3Submission(hooked, key).read("manifest.xml", 100) == b"<m/>"
    assert hooked.calls >= 4

    # A connection id that does not exist falls back to boto3 (which has no endpoint now).
    monkeypatch.setenv("DOCPOST_S3_ENDPOINT_URL", s3_endpoint)
    fallback = ObjectStore(aws_conn_id="no_such_conn")
    assert fallback.list_ready_submissions(NIGHT) == [key]
    assert fallback.backend_used == "boto3"
