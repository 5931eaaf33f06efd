"""The submit API's door without services: uploads read within the limits (zip bombs, lying headers,
duplicate names, too many files), tokens, the in-memory submission the validator reads, and the
notifier that turns a burst of pokes into a few asset events and tries a failed one again."""

from __future__ import annotations

import io
import threading
import time
import warnings
import zipfile

import pytest

from docpost.errors import ConfigurationError, Unavailable
from docpost.model import READY_MARKER, SubmissionKey
from docpost.sendnow.app import parse_tokens
from docpost.sendnow.intake import MemorySubmission, Refused, unzip
from docpost.sendnow.notify import AssetNotifier
from docpost.validation import MAX_FILES, MAX_SUBMISSION_BYTES, FileTooLarge, UnsafeFileName


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names on purpose
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def _codes(exc: Refused) -> list[str]:
    return [i["code"] for i in exc.issues]


def test_unzip_gives_the_files_and_skips_folders():
    data = _zip([("manifest.xml", b"<m/>"), ("sub/", b""), ("brev.xml", b"<b/>")])
    assert unzip(data) == {"manifest.xml": b"<m/>", "brev.xml": b"<b/>"}


def test_a_zip_bomb_is_refused_by_its_headers_before_inflating():
    bomb = _zip([("a.pdf", b"\0" * (MAX_SUBMISSION_BYTES + 1))])
    assert len(bomb) < 1_000_000
    with pytest.raises(Refused) as caught:
        unzip(bomb)
    assert caught.value.status == 413 and _codes(caught.value) == ["submission.too-large"]


def test_a_lying_size_header_is_cut_off_at_the_limit():
    data = bytearray(_zip([("a.pdf", b"\0" * (MAX_SUBMISSION_BYTES + 10))]))
    # claim 1 byte in the central directory (uncompressed size at offset 24 of each record)
    central = data.rfind(b"PK\x01\x02")
    data[central + 24:central + 28] = (1).to_bytes(4, "little")
    with pytest.raises(Refused) as caught:
        unzip(bytes(data))
    assert caught.value.status in (400, 413)
    assert _codes(caught.value)[0] in ("submission.too-large", "submit.bad-zip")


@pytest.mark.parametrize("data, code, status", [
    (b"not a zip", "submit.bad-zip", 400),
    (_zip([("a.xml", b"1"), ("a.xml", b"2")]), "submit.duplicate-file", 400),
    (_zip([(f"f{i}.pdf", b"x") for i in range(MAX_FILES)]), "submission.too-many-files", 413),
])
def test_malformed_uploads_are_refused_with_their_code(data, code, status):
    with pytest.raises(Refused) as caught:
        unzip(data)
    assert _codes(caught.value) == [code] and caught.value.status == status


def test_memory_submission_reads_like_a_folder_and_lists_ready():
    source = MemorySubmission(SubmissionKey("sbsys", __import__("datetime").date(2026, 1, 2), "x"),
                              {"manifest.xml": b"<m/>", READY_MARKER: b"ignored"})
    assert source.list_files() == {"manifest.xml": 4, READY_MARKER: 0}
    assert source.read("manifest.xml", 10) == b"<m/>"
    with pytest.raises(FileTooLarge):
        source.read("manifest.xml", 3)
    with pytest.raises(UnsafeFileName):
        source.read("../manifest.xml", 10)


def test_tokens_name_source_systems_and_short_tokens_are_refused():
    assert parse_tokens("sbsys=aaaaaaaaaaaaaaaa, byggesag=bbbbbbbbbbbbbbbbbb") == {
        "aaaaaaaaaaaaaaaa": "sbsys", "bbbbbbbbbbbbbbbbbb": "byggesag"}
    assert parse_tokens(None) == {}
    for bad in ("sbsys", "sbsys=short", "=aaaaaaaaaaaaaaaa"):
        with pytest.raises(ConfigurationError):
            parse_tokens(bad)


class Assets:
    """Airflow's side, recorded: each post's letters; the first ``fail`` posts fail as unreachable."""

    def __init__(self, fail: int = 0) -> None:
        self.events: list[int] = []
        self.fail = fail
        self.done = threading.Event()

    def post_event(self, extra: dict) -> None:
        if self.fail:
            self.fail -= 1
            raise Unavailable("Airflow's API is unreachable (ConnectError)")
        self.events.append(extra["letters"])
        self.done.set()

    def close(self) -> None:
        pass


def _wait_for(assets: Assets, letters: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while sum(assets.events) < letters and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_burst_of_pokes_is_a_few_events_carrying_every_letter():
    assets = Assets()
    notifier = AssetNotifier(assets, interval=0.2)
    for _ in range(500):
        notifier.poke()
    _wait_for(assets, 500)
    notifier.stop()
    assert sum(assets.events) == 500 and len(assets.events) <= 3


def test_a_failed_event_is_posted_again_with_its_letters():
    assets = Assets(fail=2)
    notifier = AssetNotifier(assets, interval=0.05)
    for _ in range(3):
        notifier.poke()
    _wait_for(assets, 3)
    notifier.stop()
    assert sum(assets.events) == 3 and notifier.failures == 2


def test_without_airflow_configured_a_poke_does_nothing():
    notifier = AssetNotifier(None)
    notifier.poke()
    assert notifier.posted == 0
