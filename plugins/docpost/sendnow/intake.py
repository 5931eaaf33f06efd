"""One submission through the door of the submit API: validated at once with the nightly's
validator, written to the inbox layout, registered in the ledger as collect would register it.

What an accepted submission leaves behind is what a drop leaves: its files and an empty
``_READY`` (last) under ``inbox/<source>/<date>/<id>/`` (the date is today's, Europe/Copenhagen),
and a RECEIVED message with the listing's identity (:func:`docpost.pipeline.fingerprint` over
names, sizes and ETags, a single-part upload's ETag being the MD5 of its bytes). A later nightly
collect of that folder finds it already known; the same id with other content is a conflict,
recorded in the ledger as for drops and never written to S3. Nothing is written before the
submission validated: a refusal leaves no trace in the inbox.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from docpost import model
from docpost.errors import DocpostError
from docpost.validation import (
    MAX_FILES, MAX_SUBMISSION_BYTES, FileTooLarge, SourceError, SubmissionSource, UnsafeFileName, validate,
)
from docpost.validation import display_name as display

log = logging.getLogger(__name__)

ACTOR = "sendnow"
TIMEZONE = ZoneInfo("Europe/Copenhagen")
MAX_UPLOAD_BYTES = MAX_SUBMISSION_BYTES + 1024 * 1024  # the files and the envelope around them
IO_THREADS = 8


class Refused(DocpostError):
    """The submission breaks the contract: answered 4xx with every problem, as a rejection report."""

    code = "submit.refused"
    status = 422

    def __init__(self, issues: list[dict], *, status: int | None = None) -> None:
        self.issues = issues
        if status:
            self.status = status
        codes = list(dict.fromkeys(i["code"] for i in issues))
        super().__init__("refused: " + ", ".join(codes), code=codes[0] if codes else None)


class Conflict(DocpostError):
    """The submission id is known (or its folder taken) with other content: 409, nothing written."""

    code = "submission.conflict"
    status = 409


def issue(code: str, message: str, file: str | None = None) -> dict:
    """One problem, in the shape of a rejection report's (``docpost validate --output json``)."""
    return {"code": code, "file": file, "line": None, "path": None, "message": message}


def today() -> dt.date:
    return dt.datetime.now(TIMEZONE).date()


# --------------------------------------------------------------------------- the files


class MemorySubmission(SubmissionSource):
    """A submission held in memory (an upload): the validator reads it like a folder; ``_READY``
    is the API's to add, the caller's answer being the marker."""

    def __init__(self, key: model.SubmissionKey, files: dict[str, bytes]) -> None:
        self.key = key
        self.files = {n: d for n, d in files.items() if n != model.READY_MARKER}

    def list_files(self) -> dict[str, int]:
        return {**{n: len(d) for n, d in self.files.items()}, model.READY_MARKER: 0}

    def read(self, name: str, max_bytes: int) -> bytes:
        if "/" in name or "\\" in name or name in ("", ".", "..") or "\0" in name:
            raise UnsafeFileName("file names may not contain path parts")
        if name not in self.files:
            raise SourceError("the file is not in the submission")
        if len(self.files[name]) > max_bytes:
            raise FileTooLarge(f"the file is larger than the {max_bytes} bytes allowed")
        return self.files[name]


def add_file(files: dict[str, bytes], name: str, data: bytes) -> None:
    """Add one uploaded file; a second file of the same name, too many files or too many bytes
    refuse the upload (before anything is validated)."""
    if name in files:
        raise Refused([issue("submit.duplicate-file", "two files of the same name in one submission",
                             display(name))], status=400)
    if len(files) + 1 >= MAX_FILES:  # _READY is the last of MAX_FILES
        raise Refused([issue("submission.too-many-files", f"at most {MAX_FILES - 1} files are allowed")], status=413)
    if sum(map(len, files.values())) + len(data) > MAX_SUBMISSION_BYTES:
        raise Refused([issue("submission.too-large", f"at most {MAX_SUBMISSION_BYTES} bytes in all are allowed")],
                      status=413)
    files[name] = data


def unzip(data: bytes) -> dict[str, bytes]:
    """The files of a zip upload (folders ignored), each read at most to the limits: a zip bomb or
    a lying header is cut off at the limit, never inflated in full."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        raise Refused([issue("submit.bad-zip", "the upload is not a readable zip archive")], status=400) from None
    if len(entries) >= MAX_FILES:
        raise Refused([issue("submission.too-many-files", f"at most {MAX_FILES - 1} files are allowed")], status=413)
    if sum(i.file_size for i in entries) > MAX_SUBMISSION_BYTES:  # honest headers: refused unread
        raise Refused([issue("submission.too-large", f"at most {MAX_SUBMISSION_BYTES} bytes in all are allowed")],
                      status=413)
    files: dict[str, bytes] = {}
    total = 0
    for info in entries:
        if info.flag_bits & 0x1:
            raise Refused([issue("submit.bad-zip", "encrypted zip entries are not accepted", display(info.filename))],
                          status=400)
        left = MAX_SUBMISSION_BYTES - total
        try:
            with archive.open(info) as handle:
                content = handle.read(left + 1)
        except (zipfile.BadZipFile, NotImplementedError, ValueError, EOFError, OSError):
            raise Refused([issue("submit.bad-zip", "a zip entry cannot be read", display(info.filename))],
                          status=400) from None
        if len(content) > left:
            raise Refused([issue("submission.too-large", f"at most {MAX_SUBMISSION_BYTES} bytes in all are allowed")],
                          status=413)
        total += len(content)
        add_file(files, info.filename, content)
    return files


# --------------------------------------------------------------------------- accepting


@dataclass(frozen=True)
class Accepted:
    """What the API answers for an accepted submission (a repeat answers the same)."""

    message_uuid: str
    source_system: str
    submission_date: dt.date
    submission_id: str
    state: str
    created: bool

    def as_dict(self) -> dict:
        return {"message_uuid": self.message_uuid, "state": self.state,
                "submission": f"{self.source_system}/{self.submission_date.isoformat()}/{self.submission_id}"}


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class Intake:
    """Accepts submissions into S3 and the ledger (thread-safe; one submission id at a time)."""

    def __init__(self, ledger=None, objects=None, on_registered=None, actor: str = ACTOR) -> None:  # noqa: ANN001
        self._ledger, self._objects = ledger, objects
        self.on_registered = on_registered or (lambda: None)
        self.actor = actor
        self._guard = threading.Lock()
        self._keys: dict[tuple[str, str], threading.Lock] = {}
        self._pool = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="sendnow-s3")

    def ledger(self):  # noqa: ANN201 - Ledger, made on first use (the API starts while the database is away)
        with self._guard:
            if self._ledger is None:
                from docpost.ledger import shared_ledger

                self._ledger = shared_ledger()
                self._ledger.upgrade()
            return self._ledger

    def objects(self):  # noqa: ANN201 - ObjectStore
        with self._guard:
            if self._objects is None:
                from docpost.storage import ObjectStore

                self._objects = ObjectStore()
            return self._objects

    def _lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._guard:
            if len(self._keys) > 10000:
                self._keys = {k: v for k, v in self._keys.items() if v.locked()}
            return self._keys.setdefault(key, threading.Lock())

    def accept(self, source_system: str, submission_id: str, files: dict[str, bytes]) -> Accepted:
        """Validate, write and register one submission; :class:`Refused` or :class:`Conflict` when
        it cannot be taken (nothing written), an infrastructure error when S3 or the ledger is away."""
        from docpost import pipeline
        from docpost.storage import folder_problems

        day = today()
        problems = folder_problems(source_system, day.isoformat(), submission_id)
        if problems:
            raise Refused([issue(code, message) for code, message in problems], status=400)
        key = model.SubmissionKey(source_system, day, submission_id)
        source = MemorySubmission(key, files)
        report = validate(source)
        if not report.valid:
            log.info("sendnow: refused a submission of %s: %s", source_system, ", ".join(report.codes))
            raise Refused(report.to_json()["errors"])
        files = {**source.files, model.READY_MARKER: b""}
        sizes = {n: len(d) for n, d in files.items()}
        registration = pipeline.registration(key, sizes, {n: f'"{_md5(d)}"' for n, d in files.items()})
        with self._lock((source_system, submission_id)):
            known = self.ledger().by_submission_id(submission_id, source_system)
            if known:
                if known[0].content_hash != registration.content_hash:
                    self.ledger().register([registration], actor=self.actor)  # recorded, as for a drop
                    raise Conflict("this submission id is registered with other content; write a submission once")
                message = known[0]
                return Accepted(message.message_uuid, source_system, message.submission_date, submission_id,
                                message.state.value, created=False)
            self._write(key, files)
            result = self.ledger().register([registration], actor=self.actor)
        if result.conflicts:
            raise Conflict("this submission id is registered with other content; write a submission once")
        registered = result.messages[0]
        if registered.created:
            log.info("sendnow: registered message %s from %s", registered.message_uuid, source_system)
            self.on_registered()
        return Accepted(registered.message_uuid, source_system, day, submission_id, registered.state.value,
                        created=registered.created)

    def _write(self, key: model.SubmissionKey, files: dict[str, bytes]) -> None:
        """The files, then ``_READY``; a folder already holding other files is a conflict (another
        drop of the same id today), never overwritten."""
        st = self.objects()
        there = st.list_objects(key.prefix)
        if there and {k[len(key.prefix):]: size for k, size in there.items()} != {n: len(d) for n, d in files.items()}:
            raise Conflict("the inbox folder of this submission id holds other files already")
        content = [(n, d) for n, d in files.items() if n != model.READY_MARKER]
        list(self._pool.map(lambda item: st.put_bytes(key.prefix + item[0], item[1]), content))
        st.put_bytes(key.prefix + model.READY_MARKER, b"")

    # -- status ----------------------------------------------------------------------------------

    def status(self, source_system: str, message_uuid: str) -> dict | None:
        """A message's state, channel, receipt and timeline, for the source system that sent it
        (None for any other, or none): no recipient, title, text or reason text."""
        led = self.ledger()
        message = led.get(message_uuid)
        if message is None or message.source_system != source_system:
            return None
        timeline = [{"state": e.to_state.value, "at": e.at.isoformat()} for e in led.history(message.id)]
        return {
            "message_uuid": message.message_uuid,
            "submission": f"{message.source_system}/{message.submission_date.isoformat()}/{message.submission_id}",
            "state": message.state.value,
            "channel": message.channel,
            "receipt": message.receipt_status,
            "reason_code": message.reason_code,
            "submitted_at": message.submitted_at.isoformat() if message.submitted_at else None,
            "updated_at": message.state_changed_at.isoformat(),
            "timeline": timeline,
        }

    def close(self) -> None:
        self._pool.shutdown(wait=False)
