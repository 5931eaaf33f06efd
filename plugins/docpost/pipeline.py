"""Per-chunk stage functions: what the DAGs (and the CLI) call, one call per task.

The stages themselves (validation, stamping, rendering, memo/fjernprint, the SF1601 channel)
know nothing of each other; this module composes them around the ledger and the object store.

Every function is an idempotent transaction over the ledger: a stage works only on messages in
its input state, claims them (no two workers get the same message), records each outcome with
its event, and releases them. Rerunning a stage, a night or a backfill finds nothing left to do
for what is done, and picks up what a killed run left behind (claims expire after a lease).

What goes back to Airflow (XCom) is small: chunk descriptors (night, index, id range) and counts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Iterable

from docpost import config
from docpost.errors import ConfigurationError, DocpostError, Unavailable, describe, internal_code, is_infrastructure
from docpost.ledger import Ledger, MessageRef, MessageState, Move, Registration, shared_ledger
from docpost.model import ReplyType, Submission, SubmissionKey
from docpost.storage import ObjectStore, S3Submission, StorageError

log = logging.getLogger(__name__)
S = MessageState

IO_THREADS = 8  # parallel S3 reads per chunk task (S3 latency, not CPU)
SEND_BATCH = 200  # letters whose delivery requests deliver holds at once (about 150 KiB each)
WORKABLE = (S.RECEIVED, S.VALIDATED, S.STAMPED, S.RENDERED, S.RETRYING)


# --------------------------------------------------------------------------- plumbing


def ledger() -> Ledger:
    """The ledger of the current settings, shared in this process (see ``shared_ledger``)."""
    return shared_ledger()


def store() -> ObjectStore:
    """The object store of the current settings."""
    return ObjectStore()


def _date(night: str | dt.date) -> dt.date:
    return night if isinstance(night, dt.date) else dt.date.fromisoformat(str(night))


def _key(ref: MessageRef) -> SubmissionKey:
    return SubmissionKey(ref.source_system, ref.submission_date, ref.submission_id)


def etag_value(etag: str | None) -> str:
    """An S3 ETag as compared: without its quotes, lower case ("" when S3 gave none)."""
    return (etag or "").strip().strip('"').lower()


def fingerprint(files: dict[str, int], etags: dict[str, str] | None = None) -> str:
    """Content identity of a submission from the listing collect already has (no GET): sha256
    over every file but ``_READY`` in sorted name order, each as ``name NUL size NUL etag LF``
    (UTF-8; the ETag as :func:`etag_value`). A single-part upload's ETag is the MD5 of its bytes,
    so other bytes of the same length give another identity (docs/submission-contract.md)."""
    etags = etags or {}
    digest = hashlib.sha256()
    for name in sorted(files):
        if name == "_READY":
            continue
        line = f"{name}\0{int(files[name])}\0{etag_value(etags.get(name))}\n"
        digest.update(line.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def registration(key: SubmissionKey, files: dict[str, int], etags: dict[str, str]) -> Registration:
    """What the ledger registers of a READY submission folder (``files``: name -> size, ``_READY``
    included; ``etags``: name -> ETag as S3 gives it): its identity, fingerprint and listing."""
    return Registration(
        source_system=key.source_system, submission_id=key.submission_id, submission_date=key.date,
        content_hash=fingerprint(files, etags), s3_prefix=key.prefix,
        listing={name: (size, etags.get(name, "")) for name, size in files.items()},
    )


@dataclass(frozen=True)
class Chunk:
    """One mapped task's share of a night: messages with ids in [first_id, last_id]."""

    night: str
    index: int
    count: int
    first_id: int
    last_id: int

    @classmethod
    def of(cls, value: dict | Chunk) -> Chunk:
        if isinstance(value, Chunk):
            return value
        return cls(**{k: value[k] for k in ("night", "index", "count", "first_id", "last_id")})

    def as_dict(self, **counts: int) -> dict:
        return {"night": self.night, "index": self.index, "count": self.count,
                "first_id": self.first_id, "last_id": self.last_id, **counts}


def _ids_in(chunk: Chunk, states: Iterable[MessageState]) -> list[int]:
    """Ids of the messages in ``states`` within the chunk's id range, whatever their submission
    date (a letter left RETRYING or requeued weeks ago is worked on like tonight's), lowest first."""
    return ledger().message_ids(states=list(states), first_id=chunk.first_id, last_id=chunk.last_id)


class Claims:
    """One stage task's claims: the letters (``refs``), the worker, the fence token every write of
    the stage carries, and the claims found lost (by the heartbeat, a check, or a fenced write).

    While the task works, a heartbeat thread renews the lease every third of it
    (:meth:`Ledger.renew`), so a task may take as long as SF1601 needs while a killed task's
    claims are free again after one lease: the heartbeat dies with its process, nothing renews
    them, they expire, and the task's retry (same worker name) takes them back at once.

    Renewal, not an ``execution_timeout`` shorter than the lease: a stage's time is set by others
    (SF1601's latency, S3), and a timeout short enough to stay inside the lease would kill slow
    but healthy deliveries mid-send, only for the retry to send the same letters again; a long
    lease instead would keep a killed task's letters waiting for hours. With a heartbeat the lease
    stays short and the work unbounded. The fence covers what renewal cannot promise (a process
    paused, or the database unreachable, for longer than the lease): a claim taken over meanwhile
    is found lost and the old worker's writes are skipped, never applied.
    """

    def __init__(self, led: Ledger, worker: str, token: str, lease: float) -> None:
        import threading

        self.led, self.worker, self.token, self.lease = led, worker, token, lease
        self.refs: list[MessageRef] = []
        self._lost: set[int] = set()
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.renewals = 0
        self.renew_failures = 0

    @property
    def lost(self) -> set[int]:
        with self._guard:
            return set(self._lost)

    def note_lost(self, ids: Iterable[int]) -> None:
        ids = set(ids)
        if ids:
            with self._guard:
                new = ids - self._lost
                self._lost |= ids
            if new:
                log.warning("%s: %d claim(s) lost (lease expired and taken over, or cleared): those letters are "
                            "skipped by this task", self.worker, len(new))

    def held(self, refs: Iterable) -> list:
        """``refs`` (or ``(ref, anything)`` pairs) whose claim is not known lost."""
        lost = self.lost
        return [r for r in refs if (r[0] if isinstance(r, tuple) else r).id not in lost]

    def renew(self) -> set[int]:
        """Renew every claim not known lost, now; returns the ids found lost by it."""
        ids = [r.id for r in self.refs if r.id not in self.lost]
        if not ids:
            return set()
        kept = set(self.led.renew(ids, self.worker, self.token, self.lease))
        self.renewals += 1
        gone = set(ids) - kept
        self.note_lost(gone)
        return gone

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.renew()
            except Exception as exc:  # noqa: BLE001 - the database may be away: try again next beat
                self.renew_failures += 1
                log.warning("%s: could not renew claims (%s); trying again in %.0f s", self.worker,
                            describe(exc), interval)

    def start(self) -> None:
        """Start the heartbeat (not for an in-memory SQLite ledger: one connection, no second thread)."""
        import threading

        from sqlalchemy.pool import StaticPool

        if not self.refs or self.lease <= 0 or isinstance(self.led.engine.pool, StaticPool):
            return
        self._thread = threading.Thread(target=self._beat, args=(max(self.lease / 3, 0.05),),
                                        name=f"claims:{self.worker}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


@contextmanager
def _claimed(chunk: Chunk, states: Iterable[MessageState], actor: str, stage: str) -> Iterator[Claims]:
    """This chunk's messages in ``states``, claimed for the stage's worker (one fence token for
    the whole task), renewed while the stage works (see :class:`Claims`) and released after.

    Claims this same task left behind when its process was killed are taken back first (a retry
    of the task has the same worker name); another run's claims expire after the lease unless
    their own task is still alive and renewing them.
    """
    import uuid

    led, states = ledger(), list(states)
    worker = f"{actor}#{stage}:{chunk.index}"
    ids = _ids_in(chunk, states)
    claims = Claims(led, worker, str(uuid.uuid4()), config.settings().claim_lease_seconds)
    step = led.chunk_size
    try:
        for start in range(0, len(ids), step):
            part = ids[start:start + step]
            led.release(part, worker)
            claims.refs.extend(led.claim(states, len(part), worker, claims.lease, message_ids=part,
                                         token=claims.token))
        claims.start()
        yield claims
    except BaseException:
        claims.stop()
        try:  # the stage's own error is the one to raise; unreleased claims expire after the lease
            led.release([r.id for r in claims.refs], worker, token=claims.token)
        except Exception as exc:  # noqa: BLE001
            log.warning("%s: could not release claims (%s); they expire after the lease", worker, describe(exc))
        raise
    else:
        claims.stop()
        led.release([r.id for r in claims.refs], worker, token=claims.token)


def _rows(refs: list[MessageRef], claims: Claims | None = None) -> dict:
    """The ledger rows of the claimed messages, by id; with ``claims``, a row that no longer holds
    the claim's token is noted lost (and left out)."""
    rows = {m.id: m for m in ledger().messages([r.id for r in refs])}
    if claims is not None:
        gone = [mid for mid, m in rows.items() if m.claim_token != claims.token]
        claims.note_lost(gone)
        for mid in gone:
            del rows[mid]
    return rows


class StageIncomplete(Unavailable):
    """Some messages of a chunk could not be worked on (infrastructure trouble): they keep their
    state, the rest is recorded, and the task fails so that Airflow retries it (idempotently)."""

    code = "stage.incomplete"


def _source(st: ObjectStore, ref: MessageRef, rows: dict[int, Any]) -> S3Submission:
    """The message's submission as registered: its recorded listing, every read pinned to the
    ETag it had then (no listing request; a file replaced since is reported, never read)."""
    listing = rows[ref.id].listing
    if not listing:  # registered without a listing (before migration 0003): list the folder
        return S3Submission(st, _key(ref))
    return S3Submission(st, _key(ref), files={n: size for n, (size, _e) in listing.items()},
                        etags={n: etag for n, (_s, etag) in listing.items() if etag})


def _load(refs: list[MessageRef], rows: dict[int, Any]) -> Iterator[tuple[MessageRef, Any]]:
    """Each message's submission as registered, validated (safe parsing), streamed in order:
    ``(ref, ValidationReport)``, or ``(ref, exception)`` for what stopped reading it (handled,
    like any other, by the stage runner). Reads run in parallel, at most ``2 * IO_THREADS``
    letters ahead of the consumer, so a chunk's documents are never all in memory at once."""
    from docpost.validation import schemas, validate

    # libxml2 initialises its schema types lazily and not thread-safely: compile the XSDs here,
    # in this thread, before the pool's threads validate (else: "not a built-in type" errors).
    schemas()
    st = store()

    def one(ref: MessageRef):
        try:
            return validate(_source(st, ref, rows))
        except (Exception, RecursionError, MemoryError) as exc:  # noqa: BLE001 - judged by the runner
            return exc

    with ThreadPoolExecutor(max_workers=IO_THREADS) as pool:
        ahead: deque = deque()
        for ref in refs:
            ahead.append((ref, pool.submit(one, ref)))
            if len(ahead) >= 2 * IO_THREADS:
                ref_, fut = ahead.popleft()
                yield ref_, fut.result()
        while ahead:
            ref_, fut = ahead.popleft()
            yield ref_, fut.result()


# --------------------------------------------------------------------------- rejection reports


def _issue(code: str, message: str, file: str | None = None, path: str | None = None) -> dict:
    """One problem in a rejection report (the shape ``docpost validate --output json`` prints)."""
    return {"code": code, "file": file, "line": None, "path": path, "message": message}


def _put_rejection(st: ObjectStore, prefix: str, submission: str, message_uuid: str | None,
                   issues: list[dict], stage: str) -> None:
    """A rejection report, machine- and human-readable, as ``<prefix>rejection.{json,txt}``; a
    rerun writes the same."""
    import json

    doc = {"submission": submission, "message_uuid": message_uuid, "stage": stage, "valid": False,
           "errors": issues}
    lines = [f"Afvist / rejected: {submission} ({f'besked {message_uuid}, ' if message_uuid else ''}trin {stage})", ""]
    for issue in issues:
        where = ":".join(str(p) for p in (issue.get("file"), issue.get("line")) if p)
        lines.append(f"- [{issue['code']}] {where + ' ' if where else ''}{issue['message']}")
    st.put_text(prefix + "rejection.json", json.dumps(doc, ensure_ascii=False, indent=2), "application/json")
    st.put_text(prefix + "rejection.txt", "\n".join(lines) + "\n")


def _write_reports(st: ObjectStore, refs_issues: list[tuple[MessageRef, list[dict], str]]) -> None:
    """Each letter's rejection report (``(ref, issues, stage)``) under ``rejected/<sys>/<date>/<id>/``
    (in parallel)."""
    def write(item):
        ref, issues, stage = item
        submission = f"{ref.source_system}/{ref.submission_date.isoformat()}/{ref.submission_id}"
        _put_rejection(st, f"rejected/{submission}/", submission, ref.message_uuid, issues, stage)

    with ThreadPoolExecutor(max_workers=IO_THREADS) as pool:
        list(pool.map(write, refs_issues))


# --------------------------------------------------------------------------- collect and plan


def _refused_key(folder: str) -> str:
    """Where a refused folder's report goes: beside the others (``rejected/<sys>/<date>/<id>/``),
    or, for a path S3 could not take longer, under a digest of it."""
    mirrored = "rejected/" + folder[len("inbox/"):]
    if len(mirrored.encode()) < 900:
        return mirrored
    return f"rejected/_folders/{hashlib.sha256(folder.encode()).hexdigest()[:32]}/"


def _refuse_folders(st: ObjectStore, refused: dict[str, list[tuple[str, str]]]) -> None:
    """A report for each READY folder whose path breaks the contract; it is never registered."""
    for folder, problems in sorted(refused.items()):
        prefix = _refused_key(folder)
        _put_rejection(st, prefix, folder[len("inbox/"):].rstrip("/"), None,
                       [_issue(code, message, None, folder) for code, message in problems], "collect")
        log.warning("collect: refused a folder (%s); report at %s", ", ".join(c for c, _m in problems), prefix)


def collect(night: str | dt.date, *, source_systems: list[str] | None = None, actor: str) -> dict:
    """Register READY submissions of ``night`` (and late drops of the
    ``settings().collect_lookback_days`` days before) as RECEIVED.

    A READY folder whose source system, date or submission id breaks the contract is refused
    alone, with a report under ``rejected/``; the others are registered. A READY folder dated
    before the sweep window is never collected here: :func:`audit` reports it."""
    day = _date(night)
    led, st = ledger(), store()
    led.upgrade()
    scan = st.scan_inbox(day, source_systems)
    late = st.scan_inbox_before(day, config.settings().collect_lookback_days, source_systems)
    refused = {**scan.refused, **late.refused}
    _refuse_folders(st, refused)
    registrations = [
        registration(key, files, found.etags[key])
        for found in (scan, late)
        for key, files in ((k, found.files[k]) for k in found.ready)
    ]
    result = led.register(registrations, actor=actor)
    counts = {
        "night": day.isoformat(),
        "found": len(scan.ready),
        "late_found": len(late.ready),
        "new": len(result.created),
        "existing": len(result.existing),
        "conflicts": len(result.conflicts),
        "pending_not_ready": len(scan.pending),
        "refused": len(refused),
    }
    log.info("collect %s: %s", day, counts)
    return counts


def plan_chunks(night: str | dt.date, *, chunk_size: int | None = None) -> list[dict]:
    """Split every outstanding message (a WORKABLE state, whatever its submission date: a letter
    left RETRYING or requeued long ago is planned like tonight's) into id-range chunks, oldest
    (lowest id) first. ``night`` only labels the chunks."""
    size = chunk_size or config.settings().chunk_size
    day = _date(night)
    ids = ledger().message_ids(states=WORKABLE)
    slices = [ids[n:n + size] for n in range(0, len(ids), size)]
    chunks = [Chunk(day.isoformat(), n, len(slices), part[0], part[-1]).as_dict(messages=len(part))
              for n, part in enumerate(slices)]
    log.info("plan %s: %d outstanding messages in %d chunks", day, len(ids), len(chunks))
    return chunks


# --------------------------------------------------------------------------- the stage runner


class NoLongerValid(DocpostError):
    """A submission that validated once and no longer does (a file replaced after ``_READY``)."""

    code = "submission.changed"

    def __init__(self, issues: list[dict]) -> None:
        self.issues = issues
        super().__init__("no longer valid: " + ", ".join(dict.fromkeys(i["code"] for i in issues)))


def _issues_of(exc: DocpostError, file: str | None) -> list[dict]:
    """The rejection report's problems for a letter's error: its own list where it has one."""
    found = getattr(exc, "issues", None) or []
    if isinstance(exc, NoLongerValid):
        return list(found)
    issues = [_issue(getattr(i, "code", exc.code), getattr(i, "message", exc.message), file,
                     f"page {i.page}" if getattr(i, "page", None) else getattr(i, "path", None))
              for i in found]
    return issues or [_issue(exc.code, exc.message, file)]


def _reason(issues: list[dict]) -> tuple[str, str]:
    """The ledger's reason code and text for a list of problems."""
    codes = list(dict.fromkeys(i["code"] for i in issues))
    text = "; ".join(i["message"] for i in issues[:3]) + (f" (+{len(issues) - 3} more)" if len(issues) > 3 else "")
    return codes[0], f"{', '.join(codes)}: {text}"


def _not_the_letters(exc: BaseException) -> bool:
    """Infrastructure (:func:`docpost.errors.is_infrastructure`), and here also any S3 error while
    working on a letter and any database error: never the letter's fault."""
    from sqlalchemy.exc import DBAPIError

    return is_infrastructure(exc) or isinstance(exc, (StorageError, DBAPIError))


@dataclass(frozen=True)
class Stage:
    """One step of the flow: the states it takes, the state it gives, what a letter's own
    problem makes of the letter (REJECTED while nothing was sent; FAILED at delivery)."""

    name: str
    takes: tuple[MessageState, ...]
    gives: MessageState
    refuses: MessageState = S.REJECTED


VALIDATE = Stage("validate", (S.RECEIVED,), S.VALIDATED)
STAMP = Stage("stamp", (S.VALIDATED,), S.STAMPED)
RENDER = Stage("render", (S.STAMPED,), S.RENDERED)
DELIVER = Stage("deliver", (S.RENDERED, S.RETRYING), S.SUBMITTED, refuses=S.FAILED)


class StageRun:
    """One chunk through one stage, every letter on its own.

    For each claimed letter, :meth:`each` calls the stage's work and sorts what happened:

    - the work's result: collected for the stage (``done``);
    - a :class:`DocpostError` of the letter's own: REJECTED with a report under ``rejected/``
      (FAILED at delivery), with its code;
    - infrastructure trouble (:func:`_not_the_letters`): the letter keeps its state, and at the
      end the task fails (:class:`StageIncomplete`) so that Airflow retries it;
    - anything else (a bug, a library's exception): the letter keeps its state with
      ``internal.<ExceptionType>`` and is tried again by later runs; after
      ``settings().max_faults`` such faults it is FAILED as quarantined.

    The rest of the chunk goes on in every case. Only codes and exception types are logged.
    """

    def __init__(self, stage: Stage, claims: Claims, actor: str) -> None:
        self.stage, self.claims, self.refs, self.actor = stage, claims, claims.refs, actor
        self.fence = claims.token
        self.rows = _rows(self.refs, claims)
        self.refused: list[tuple[MessageRef, list[dict]]] = []
        self.faults: list[tuple[MessageRef, BaseException]] = []
        self.kept: list[tuple[MessageRef, BaseException]] = []
        self.settled: set[int] = set()  # moved meanwhile by a receipt or an operator: a no-op here
        self.at: dict[int, str] = {}  # the step a letter was in, where one stage runs several (prepare)

    def each(self, work) -> list[tuple[MessageRef, Any]]:
        """``work(ref, message_row, submission)`` for every letter that (still) validates and whose
        claim is not known lost (submissions streamed in order, see :func:`_load`)."""
        done = []
        for ref, report in _load([r for r in self.refs if r.id not in self.claims.lost], self.rows):
            if ref.id in self.claims.lost:
                continue
            try:
                if isinstance(report, BaseException):
                    raise report
                if not report.valid:
                    if ref.state == S.RECEIVED:  # never validated: rejected by validation
                        self.at[ref.id] = VALIDATE.name
                        self.refused.append((ref, report.to_json()["errors"]))
                        continue
                    raise NoLongerValid(report.to_json()["errors"])
                done.append((ref, work(ref, self.rows[ref.id], report.submission)))
            except (Exception, RecursionError, MemoryError) as exc:  # noqa: BLE001 - sorted below
                self.trouble(ref, exc)
        return done

    def trouble(self, ref: MessageRef, exc: BaseException, file: str | None = "manifest.xml") -> None:
        """Sort one letter's exception (see the class docstring)."""
        step = self.at.get(ref.id, self.stage.name)
        if _not_the_letters(exc):
            log.warning("message %s: %s: kept for a retry: %s", ref.message_uuid, step, describe(exc))
            self.kept.append((ref, exc))
        elif isinstance(exc, DocpostError):
            log.info("message %s: %s: %s", ref.message_uuid, step, exc.code)
            self.refused.append((ref, _issues_of(exc, getattr(exc, "file", None) or file)))
        else:
            log.warning("message %s: %s: unexpected %s", ref.message_uuid, step, describe(exc, trace=True))
            self.faults.append((ref, exc))

    def confirm(self, items: list) -> list:
        """Renew the claims now and keep only ``items`` (refs or ``(ref, ...)`` pairs) still held:
        the last check before something leaves that cannot be taken back (a send to SF1601)."""
        self.claims.renew()
        return self.claims.held(items)

    def record(self, result) -> int:
        """Note what a fenced write skipped (lost claims, letters settled meanwhile); returns how
        many of its letters it did not apply."""
        self.claims.note_lost(result.lost)
        self.settled.update(result.settled)
        return len(result.lost) + len(result.settled)

    def finish(self, moves: list[Move], **more: Any) -> dict:
        """Record every outcome: reports, then refusals, faults, the done moves; then the verdict.

        Every write carries the claim's fence: a letter whose claim was lost is skipped (counted
        ``lost``), one settled meanwhile by a receipt or an operator is a no-op (``settled``)."""
        led, st = ledger(), store()
        self.refused = self.claims.held(self.refused)
        refused = len(self.refused)
        if self.refused:  # the source system reads why under rejected/, whether REJECTED or FAILED
            _write_reports(st, [(ref, issues, self.at.get(ref.id, self.stage.name)) for ref, issues in self.refused])
            if self.stage.refuses is S.REJECTED:
                refused -= self.record(led.reject_many([(ref.id, *_reason(issues)) for ref, issues in self.refused],
                                                       self.actor, fence=self.fence))
            else:
                refused -= self.record(led.transition_each(
                    [Move(ref.id, f"{code}: {text}", {"reason_code": code, "reason_text": text})
                     for ref, issues in self.refused for code, text in [_reason(issues)]],
                    S.FAILED, self.actor, expected_from=list(self.stage.takes), fence=self.fence))
        quarantined = self._record_faults(led)
        done = led.transition_each(moves, self.stage.gives, self.actor, expected_from=list(self.stage.takes),
                                   fence=self.fence)
        skipped = self.record(done)
        result = {"claimed": len(self.refs), self.stage.gives.value.lower(): len(moves) - skipped,
                  "rejected" if self.stage.refuses is S.REJECTED else "failed": refused,
                  "held": len(self.faults) - quarantined, "quarantined": quarantined,
                  "lost": len(self.claims.lost), "settled": len(self.settled), **more}
        if self.kept:
            first = self.kept[0][1]
            raise StageIncomplete(
                f"{self.stage.name}: {len(self.kept)} of {len(self.refs)} letters could not be worked on "
                f"({getattr(first, 'code', type(first).__name__)}); they keep their state and are taken up "
                f"by the retry (first: message {self.kept[0][0].message_uuid})")
        return result

    def _record_faults(self, led: Ledger) -> int:
        """Hold letters with an unexpected fault; FAILED (quarantined) after ``max_faults``."""
        limit = config.settings().max_faults
        hold, quarantine = [], []
        for ref, exc in self.faults:
            code, tries = internal_code(exc), ref.faults + 1
            if tries >= limit:
                text = f"quarantined after {tries} unexpected failures ({type(exc).__name__} in {self.stage.name})"
                quarantine.append(Move(ref.id, f"{code}: {text}", {"reason_code": code, "reason_text": text}))
            else:
                hold.append((ref.id, code, f"unexpected {type(exc).__name__} in {self.stage.name}; "
                                           f"tried again by a later run ({tries} of {limit})"))
        led.hold(hold, self.actor, fence=self.fence)
        return len(quarantine) - self.record(led.transition_each(quarantine, S.FAILED, self.actor,
                                                                 expected_from=list(self.stage.takes),
                                                                 fence=self.fence))


def _run(chunk: dict | Chunk, stage: Stage, actor: str, body) -> dict:
    """Claim the chunk's letters in the stage's states (renewed while ``body`` works, see
    :class:`Claims`), run ``body(StageRun)``, release them."""
    chunk = Chunk.of(chunk)
    with _claimed(chunk, stage.takes, actor, stage.name) as claims:
        counts = body(StageRun(stage, claims, actor))
    return chunk.as_dict(**counts)


# --------------------------------------------------------------------------- the stages


def _validated(ref: MessageRef, sub: Submission) -> Move:
    """The VALIDATED move: what the ledger keeps of a valid submission."""
    case = sub.case
    return Move(ref.id, None, {
        "recipient": sub.manifest.recipient,
        "title": sub.manifest.title,
        "document_type": sub.manifest.document_type,
        "case_number": (case.case_number if case else None) or sub.manifest.case_reference,
        "case_uuid": case.case_uuid if case else None,
        "document_number": case.document_number if case else None,
        "document_uuid": case.document_uuid if case else None,
    })


def validate_chunk(chunk: dict | Chunk, *, actor: str) -> dict:
    """RECEIVED -> VALIDATED | REJECTED (with a rejection report under ``rejected/``)."""
    return _run(chunk, VALIDATE, actor,
                lambda run: run.finish([_validated(ref, sub) for ref, sub in run.each(lambda r, _m, sub: sub)]))


def _profiles():
    from docpost.stamping import load_profiles

    return load_profiles()


def _stamped(ref: MessageRef, stamp_result) -> Move:
    """The STAMPED move: the reply Postkasse/Emne/contact point on the ledger."""
    reply = stamp_result.reply
    detail = (f"{reply.rule}: ikkeMuligt" if reply.reply_type is ReplyType.NOT_POSSIBLE
              else f"{reply.rule}: Postkasse {reply.postkasse_id} / Emne {reply.emne_id}")
    return Move(ref.id, detail, {
        "reply_type": reply.reply_type.value,
        "reply_postkasse_id": reply.postkasse_id,
        "reply_emne_id": reply.emne_id,
        "reply_contact_point_id": reply.contact_point_id,
    })


def stamp_chunk(chunk: dict | Chunk, *, actor: str) -> dict:
    """VALIDATED -> STAMPED (reply Postkasse/Emne/contact point on the ledger) | REJECTED."""
    from docpost.stamping import stamp

    profiles = _profiles()
    return _run(chunk, STAMP, actor, lambda run: run.finish(
        [m for _r, m in run.each(lambda ref, _m, sub: _stamped(ref, stamp(sub, profiles)))]))


def rendered_key(ref: MessageRef) -> str:
    """Where the rendered (or checked, supplied) main PDF of a message is kept."""
    return f"rendered/{ref.source_system}/{ref.submission_date.isoformat()}/{ref.submission_id}/{ref.message_uuid}.pdf"


def _created(message) -> dt.datetime:
    """The letter's fixed creation time: when its message was registered (stable across reruns)."""
    return message.created_at.replace(microsecond=0)


def short_reference(message_uuid: str) -> str:
    return message_uuid.split("-")[0].upper()


def _letter_pdf(ref: MessageRef, message, submission: Submission, stamp_result, *, for_print: bool = False) -> bytes:
    """The main PDF: rendered from the letter text, or the supplied one once it passes the print
    check (only a letter that may be printed is checked: see ``rendering.check_supplied``). With
    ``for_print``, a supplied PDF that needs an address cover page must be able to get one."""
    from docpost.model import FileRole
    from docpost.rendering import NotPrintReady, check_print_ready, check_supplied, printed_copy, render_letter
    from docpost.rendering.supplied import may_be_printed
    from docpost.stamping import letter_reference, reply_line

    main = submission.manifest.main_file
    if main.role is FileRole.MAIN:
        pdf, wish = submission.documents[main.name], submission.manifest.channel_wish
        if may_be_printed(wish):
            policy, found = config.settings().window_content, check_print_ready(pdf)  # checked once
            issues = check_supplied(pdf, wish, window_policy=policy, issues=found)
            if issues:
                raise NotPrintReady(issues)
            if for_print:
                printed_copy(submission, stamp_result.letterhead, pdf, [], window_policy=policy, issues=found)
        return pdf
    short = short_reference(ref.message_uuid)
    case_reference = letter_reference(submission)
    return render_letter(
        submission, stamp_result.letterhead,
        reply_line(stamp_result.reply, case_reference or short),
        short, _created(message),
    )


def _check_address(sub: Submission) -> None:
    """A letter that may be printed must have an address that fits print before it is sent (a
    rejection with a report, not a failure at delivery); none: the print service looks it up."""
    from docpost.fjernprint import check_print_address
    from docpost.model import ChannelWish

    if sub.manifest.channel_wish is not ChannelWish.DIGITAL and sub.manifest.recipient.address is not None:
        check_print_address(sub.manifest.recipient.address)


def delivery_key(ref: MessageRef) -> str:
    """Where the delivery request of a message (its SF1601 ``kombi_request``, built once from the
    submission, the stamp and the PDF) is kept: all delivery reads to send the letter."""
    return f"outbox/{ref.source_system}/{ref.submission_date.isoformat()}/{ref.submission_id}/{ref.message_uuid}.xml"


PDF_SHA256 = "pdf-sha256"  # the delivery request's S3 metadata: the PDF it was built with


class _Writer:
    """Each letter's objects stored in parallel while the next letter is worked on, at most
    ``2 * IO_THREADS`` letters' objects held in memory; a failed write is that letter's trouble."""

    def __init__(self, st: ObjectStore) -> None:
        import threading

        self.st = st
        self.pool = ThreadPoolExecutor(max_workers=IO_THREADS)
        self.slots = threading.BoundedSemaphore(2 * IO_THREADS)
        self.pending: list[tuple[MessageRef, Any]] = []

    def _put(self, objects: list[tuple[str, bytes, str, dict | None]]) -> None:
        try:
            for key, data, content_type, metadata in objects:
                self.st.put_bytes(key, data, content_type, metadata=metadata)
        finally:
            self.slots.release()

    def put(self, ref: MessageRef, objects: list[tuple[str, bytes, str, dict | None]]) -> None:
        self.slots.acquire()
        self.pending.append((ref, self.pool.submit(self._put, objects)))

    def settle(self, run: StageRun) -> set[int]:
        """Wait for every write; the ids whose objects are all stored (the others: ``run.trouble``)."""
        stored = set()
        try:
            for ref, fut in self.pending:
                exc = fut.exception()
                if exc is None:
                    stored.add(ref.id)
                else:
                    run.trouble(ref, exc)
        finally:
            self.pool.shutdown()
        return stored


def _rendered(writer: _Writer, ref: MessageRef, message, sub: Submission, stamp_result) -> str:
    """Render (or check the supplied main PDF), build the delivery request, queue both for storing;
    the PDF's sha256."""
    from docpost.rendering import RenderError

    try:
        pdf = _letter_pdf(ref, message, sub, stamp_result, for_print=True)
        _check_address(sub)
    except RenderError as exc:  # reported against the main document
        exc.file = sub.manifest.main_file.name
        raise
    digest = hashlib.sha256(pdf).hexdigest()
    request = _kombi_request(ref, message, sub, stamp_result, pdf)
    writer.put(ref, [(rendered_key(ref), pdf, "application/pdf", None),
                        (delivery_key(ref), request, "application/xml", {PDF_SHA256: digest})])
    return digest


def _rendered_moves(done: list[tuple[MessageRef, str]], stored: set[int]) -> list[Move]:
    return [Move(ref.id, f"pdf sha256 {digest[:16]}", {"pdf_sha256": digest}) for ref, digest in done
            if ref.id in stored]


def render_chunk(chunk: dict | Chunk, *, actor: str) -> dict:
    """STAMPED -> RENDERED (PDF kept under ``rendered/``, its sha256 on the ledger, the delivery
    request under ``outbox/``) | REJECTED."""
    from docpost.stamping import stamp

    profiles = _profiles()

    def body(run: StageRun) -> dict:
        writer = _Writer(store())
        done = run.each(lambda ref, message, sub: _rendered(writer, ref, message, sub, stamp(sub, profiles)))
        return run.finish(_rendered_moves(done, writer.settle(run)))

    return _run(chunk, RENDER, actor, body)


PREPARE = Stage("prepare", (S.RECEIVED, S.VALIDATED, S.STAMPED), S.RENDERED)
FIRST_STEP = {S.RECEIVED: VALIDATE, S.VALIDATED: STAMP, S.STAMPED: RENDER}  # where prepare takes a letter up


def prepare_chunk(chunk: dict | Chunk, *, actor: str) -> dict:
    """RECEIVED | VALIDATED | STAMPED -> RENDERED | REJECTED: the CPU stages of a chunk in one pass.

    Each letter's files are read once (pinned to the ETags collect recorded), then it is
    validated, stamped and rendered, and its delivery request built, one letter after the other;
    the PDF and the delivery request are stored while the next letter is worked on. The ledger
    records VALIDATED, STAMPED and RENDERED in bulk with their events, as the separate stages
    would, so a letter's history, ``docpost status`` and a resumed run are the same; a letter's
    problem rejects it at the step it happened in (report under ``rejected/`` naming that step)."""
    from docpost.stamping import stamp

    profiles = _profiles()

    def body(run: StageRun) -> dict:
        writer = _Writer(store())
        validated: list[Move] = []
        stamped: list[Move] = []
        run.at.update({ref.id: FIRST_STEP[ref.state].name for ref in run.refs})

        def work(ref: MessageRef, message, sub: Submission) -> str:
            if ref.state == S.RECEIVED:
                validated.append(_validated(ref, sub))
            run.at[ref.id] = STAMP.name
            result = stamp(sub, profiles)
            if ref.state in (S.RECEIVED, S.VALIDATED):
                stamped.append(_stamped(ref, result))
            run.at[ref.id] = RENDER.name
            return _rendered(writer, ref, message, sub, result)

        done = run.each(work)
        stored = writer.settle(run)
        led = ledger()
        run.record(led.transition_each(validated, S.VALIDATED, actor, [S.RECEIVED], fence=run.fence))
        run.record(led.transition_each(stamped, S.STAMPED, actor, [S.VALIDATED], fence=run.fence))
        return run.finish(_rendered_moves(done, stored), validated=len(validated), stamped=len(stamped))

    return _run(chunk, PREPARE, actor, body)


@lru_cache(maxsize=2)
def _client_for(url: str, cvr: str, cert: str | None, key: str | None, ca: str | None,
                timeout: float, connections: int):
    from docpost.channels.sf1601 import SF1601Client

    return SF1601Client(url, cvr, cert=(cert, key) if cert else None, ca=ca, timeout=timeout,
                        max_connections=connections)


def sf1601_client():
    """The SF1601 client of the current settings (tokens cached per process)."""
    s = config.settings()
    if not s.sf1601_url:
        raise ConfigurationError("DOCPOST_SF1601_URL is not set: no SF1601 endpoint (or simulator) to deliver to",
                                 code="config.no-sf1601-url")
    return _client_for(s.sf1601_url, s.sender_cvr, s.sf1601_cert, s.sf1601_key, s.sf1601_ca,
                       s.sf1601_timeout, s.sf1601_concurrency)


def _kombi_request(ref: MessageRef, message, submission: Submission, stamp_result, pdf: bytes) -> bytes:
    from docpost.fjernprint import build_forsendelse, build_kombi_request, kombi_valg_for
    from docpost.memo import OutboundLetter, build_memo
    from docpost.model import ChannelWish, FileRole
    from docpost.rendering import printed_copy

    s = config.settings()
    attachments = [(f.name, f.label or f.name, submission.documents[f.name])
                   for f in submission.manifest.attachments]
    letter = OutboundLetter(
        message_uuid=ref.message_uuid, transaction_id=ref.transaction_id, submission=submission,
        reply=stamp_result.reply, pdf=pdf, attachments=attachments, sender_cvr=s.sender_cvr,
        sender_label=stamp_result.letterhead.municipality, created=_created(message),
        channel_wish=submission.manifest.channel_wish,
    )
    wish = submission.manifest.channel_wish
    memo_xml = build_memo(letter) if wish is not ChannelWish.PHYSICAL else None
    forsendelse = None
    if wish is not ChannelWish.DIGITAL:  # paper needs one PDF: attachments appended, and a supplied main
        # PDF a cover page if its window needs one (a rendered letter's window holds its address: no check)
        rendered = submission.manifest.main_file.role is not FileRole.MAIN
        printed = printed_copy(submission, stamp_result.letterhead, pdf, [a[2] for a in attachments],
                               window_policy=s.window_content, issues=[] if rendered else None)
        forsendelse = build_forsendelse(replace(letter, pdf=printed, attachments=[]))
    return build_kombi_request(kombi_valg_for(wish), memo_xml, forsendelse)


class RenderedMissing(DocpostError):
    """The rendered PDF is not where the render stage put it, or is not the one it recorded."""

    code = "deliver.rendered-pdf-missing"


def _rendered_pdf(st: ObjectStore, ref: MessageRef, message, sub: Submission, stamp_result) -> bytes:
    """The PDF the render stage recorded; made again (and kept) if it is gone, the same letter
    being rendered the same way; a PDF that is there but not the recorded one is refused."""
    from docpost.storage import ObjectNotFound

    try:
        pdf = st.get_bytes(rendered_key(ref))
    except ObjectNotFound:
        pdf = _letter_pdf(ref, message, sub, stamp_result)
        if hashlib.sha256(pdf).hexdigest() != message.pdf_sha256:
            raise RenderedMissing("the rendered PDF is gone and rendering it again gave another document") from None
        st.put_bytes(rendered_key(ref), pdf, "application/pdf")
        log.info("message %s: rendered PDF was missing; rendered again", ref.message_uuid)
        return pdf
    if hashlib.sha256(pdf).hexdigest() != message.pdf_sha256:
        raise RenderedMissing("the rendered PDF does not match the recorded sha256",
                              code="deliver.rendered-pdf-changed")
    return pdf


def deliver_chunk(chunk: dict | Chunk, *, actor: str, dry_run: bool = False) -> dict:
    """RENDERED | RETRYING -> SUBMITTED | RETRYING | FAILED, through SF1601 (same transaction id on retry)."""
    from docpost.channels.sf1601 import Outcome
    from docpost.stamping import stamp

    if dry_run:
        return Chunk.of(chunk).as_dict(claimed=0, submitted=0, retrying=0, failed=0, dry_run=1)
    from docpost.storage import ObjectNotFound
    from docpost.validation import validate

    st, s, profiles = store(), config.settings(), _profiles()

    def rebuilt(ref: MessageRef, message, rows: dict) -> bytes:
        """A letter rendered without its delivery request (before it was kept): from the submission."""
        report = validate(_source(st, ref, rows))
        if not report.valid:
            raise NoLongerValid(report.to_json()["errors"])
        sub = report.submission
        result = stamp(sub, profiles)
        return _kombi_request(ref, message, sub, result, _rendered_pdf(st, ref, message, sub, result))

    def request_of(run: StageRun, ref: MessageRef) -> bytes:
        message = run.rows[ref.id]
        try:
            request, metadata = st.get_with_metadata(delivery_key(ref))
        except ObjectNotFound:
            return rebuilt(ref, message, run.rows)
        if metadata.get(PDF_SHA256) != message.pdf_sha256:
            raise RenderedMissing("the delivery request was not built with the rendered PDF the ledger recorded",
                                  code="deliver.rendered-pdf-changed")
        return request

    def reads(run: StageRun, refs: list[MessageRef], pool: ThreadPoolExecutor) -> list[tuple[MessageRef, bytes]]:
        """The letters' delivery requests: one object per letter, read in parallel."""
        def one(ref: MessageRef) -> tuple[MessageRef, Any]:
            try:
                return ref, request_of(run, ref)
            except (Exception, RecursionError, MemoryError) as exc:  # noqa: BLE001 - sorted by the runner
                return ref, exc

        bodies = []
        for ref, outcome in pool.map(one, [r for r in refs if r.id not in run.claims.lost and r.id in run.rows]):
            if isinstance(outcome, BaseException):
                run.trouble(ref, outcome)
            else:
                bodies.append((ref, outcome))
        return bodies

    def sent(run: StageRun) -> Iterator[tuple[MessageRef, Any]]:
        """Each letter with its SF1601 outcome, ``SEND_BATCH`` letters' requests in memory at a time."""
        with ThreadPoolExecutor(max_workers=IO_THREADS) as pool:
            for first in range(0, len(run.refs), SEND_BATCH):
                bodies = run.confirm(reads(run, run.refs[first:first + SEND_BATCH], pool))  # never send a
                if bodies:  # letter whose claim is gone
                    outcomes = sf1601_client().send_many(
                        [(ref.transaction_id, request) for ref, request in bodies],
                        concurrency=s.sf1601_concurrency, attempts=s.sf1601_attempts)
                    yield from zip((ref for ref, _request in bodies), outcomes)

    def body(run: StageRun) -> dict:
        submitted, retrying, gave_up = [], [], []
        for ref, out in sent(run):
            if out.outcome is Outcome.ACCEPTED:
                tid = out.result.transmission_id if out.result else None
                submitted.append(Move(ref.id, f"accepted, transmission {tid}" if tid else "accepted", {}))
            elif out.outcome is Outcome.PERMANENT:
                err = out.error
                code = getattr(err, "error_code", None) or err.code
                run.refused.append((ref, [_issue(str(code), getattr(err, "error_text", None) or err.message)]))
            elif ref.attempts + 1 >= s.max_send_attempts:  # not the letter's fault: no report
                text = f"gave up after {ref.attempts + 1} attempts: {out.error.message}"
                gave_up.append(Move(ref.id, f"{out.code}: {text}", {"reason_code": out.code, "reason_text": text}))
            else:
                retrying.append(Move(ref.id, f"{out.code}: {out.error.message}",
                                     {"reason_code": out.code, "reason_text": out.error.message}))
        # fenced, and only from the states delivery takes: never SUBMITTED -> RETRYING (backwards)
        takes = list(DELIVER.takes)
        not_retried = run.record(ledger().transition_each(retrying, S.RETRYING, actor, takes, count_attempt=True,
                                                          fence=run.fence))
        not_given_up = run.record(ledger().transition_each(gave_up, S.FAILED, actor, takes, fence=run.fence))
        return run.finish(submitted, retrying=len(retrying) - not_retried, gave_up=len(gave_up) - not_given_up)

    return _run(chunk, DELIVER, actor, body)


# --------------------------------------------------------------------------- receipts and reports


def fetch_receipts(*, actor: str, max_pages: int = 200, max_messages: int | None = None) -> dict:
    """Settle the ledger by PKO_PostStatus receipts; an odd receipt is set aside with its code and
    never stops the others.

    With ``DOCPOST_AMQP_URL`` set (production: the Beskedfordeler) the receipts queue is drained in
    batches of ``DOCPOST_AMQP_BATCH``, at most ``max_messages`` per run (default: 50 batches), each
    acknowledged after the ledger committed (``channels.beskedfordeler.drain``). Without a broker,
    the simulator's receipt feed is paged after the stored cursor (``receipts.fetch_and_settle``;
    only the SF1601 simulator has that feed).
    """
    led = ledger()
    led.upgrade()
    if config.settings().amqp_url is not None:
        from docpost.channels.beskedfordeler import drain

        return drain(led, store(), actor=actor, max_messages=max_messages)
    from docpost.receipts import fetch_and_settle

    return fetch_and_settle(sf1601_client(), store(), led, actor=actor, max_pages=max_pages)


#: How many stale letters (and unknown folders) a report lists by name; all are counted.
LISTED = 1000


def stale_letters(*, now: dt.datetime | None = None, limit: int | None = LISTED) -> dict:
    """Letters still workable (RECEIVED .. RENDERED, RETRYING: not submitted, not settled) more
    than ``settings().stale_after_hours`` after they were registered, whatever their submission
    date: how many, and the oldest ``limit`` as message UUID, state, reason code, submission date
    and age in hours (no personal data)."""
    hours = config.settings().stale_after_hours
    now = now or dt.datetime.now(dt.UTC)
    total, rows = ledger().stale_messages(hours, WORKABLE, now=now, limit=limit)
    listed = [{"message_uuid": r["message_uuid"], "state": str(r["state"]), "reason_code": r["reason_code"],
               "submission_date": r["submission_date"].isoformat(),
               "age_hours": round((now - r["created_at"]).total_seconds() / 3600, 1)} for r in rows]
    return {"stale_after_hours": hours, "stale": total, "stale_messages": listed}


def _warn_stale(stale: dict, where: str) -> None:
    if stale["stale"]:
        shown = ", ".join(f"{m['message_uuid']} {m['state']} {m['age_hours']:g} h" for m in stale["stale_messages"][:20])
        more = stale["stale"] - min(20, len(stale["stale_messages"]))
        log.warning("%s: %d letter(s) workable for more than %g h: %s%s", where, stale["stale"],
                    stale["stale_after_hours"], shown, f" (+{more} more)" if more > 0 else "")


def _stale_text(stale: dict) -> str:
    from docpost.ledger.views import table

    lines = [f"letters workable for more than {stale['stale_after_hours']:g} h since registered "
             f"(stale, any date): {stale['stale']}"]
    if stale["stale_messages"]:
        lines.append(table(["message uuid", "state", "reason", "submission date", "age (h)"],
                           [(m["message_uuid"], m["state"], m["reason_code"] or "-", m["submission_date"],
                             f"{m['age_hours']:g}") for m in stale["stale_messages"]], right=(4,)))
        if stale["stale"] > len(stale["stale_messages"]):
            lines.append(f"... and {stale['stale'] - len(stale['stale_messages'])} more")
    return "\n".join(lines)


def reconcile(*, overdue_hours: float = 24) -> dict:
    """Count messages SUBMITTED longer than ``overdue_hours`` without a receipt (flagged in reports),
    and letters workable for longer than ``settings().stale_after_hours`` (stale); warns of both."""
    overdue = ledger().awaiting_receipt(overdue_hours)
    if overdue:
        log.warning("%d messages SUBMITTED over %s h without a receipt", len(overdue), overdue_hours)
    stale = stale_letters(limit=0)
    if stale["stale"]:
        log.warning("%d letter(s) workable for more than %g h (listed in the nightly summary)",
                    stale["stale"], stale["stale_after_hours"])
    return {"overdue": len(overdue), "stale": stale["stale"]}


def summarize(night: str | dt.date, *, actor: str, overdue_hours: float = 24) -> dict:
    """Write the night's report (JSON and text) to ``reports/<night>/``; returns the counts.

    Besides the night's counts, the report lists the stale letters of every date
    (:func:`stale_letters`: ``stale``, ``stale_messages``), which are also logged as a warning."""
    from docpost.ledger.views import report_text

    day = _date(night)
    report = ledger().report(day, overdue_hours=overdue_hours)
    stale = stale_letters()
    _warn_stale(stale, f"summary {day}")
    st = store()
    data = {**report.to_dict(), **stale}
    st.put_json(f"reports/{day.isoformat()}/summary.json", data)
    st.put_text(f"reports/{day.isoformat()}/summary.txt", report_text(report) + "\n" + _stale_text(stale) + "\n")
    return {"night": day.isoformat(), "total": report.total, **{k.lower(): v for k, v in report.by_state.items()},
            "stale": stale["stale"],
            "report": f"s3://{config.settings().bucket}/reports/{day.isoformat()}/summary.json"}


def _folder_date(folder: str) -> dt.date | None:
    """The date of ``inbox/<sys>/<date>/<id>/`` when it is one written YYYY-MM-DD."""
    parts = folder.split("/")
    try:
        day = dt.date.fromisoformat(parts[2])
    except (IndexError, ValueError):
        return None
    return day if day.isoformat() == parts[2] else None


def audit(*, actor: str, now: dt.datetime | None = None, source_systems: list[str] | None = None) -> dict:
    """No letter left behind: the whole inbox against the ledger, and the stale letters.

    Lists every READY folder of the inbox, whatever its date (listing only, no GET; see
    ``ObjectStore.scan_ready_everywhere``), and reports:

    - ``missed``: READY folders the ledger does not know, dated before the sweep window of the
      next night (today - ``collect_lookback_days``): no nightly run will collect them (a
      ``_READY`` written late). An operator collects one by triggering ``docpost_nightly`` with
      ``night`` = its date;
    - ``awaiting_collect``: unknown READY folders still inside that window (the next run takes them);
    - ``refused_missed``: READY folders whose path breaks the contract, dated before the window
      (never given a rejection report); ``refused`` counts every such folder;
    - the stale letters (:func:`stale_letters`).

    Writes ``reports/audit/<today>/audit.{json,txt}``; ``alert`` is true when anything was missed
    or is stale (the DAG then fails its run)."""
    from zoneinfo import ZoneInfo

    from docpost.dag_defaults import TIMEZONE

    now = now or dt.datetime.now(dt.UTC)
    s, st, led = config.settings(), store(), ledger()
    led.upgrade()
    today = now.astimezone(ZoneInfo(TIMEZONE)).date()
    first_swept = today - dt.timedelta(days=s.collect_lookback_days)
    scan = st.scan_ready_everywhere(source_systems)
    known = led.known_submissions((k.source_system, k.submission_id) for k in scan.ready)
    unknown = [k for k in scan.ready if (k.source_system, k.submission_id) not in known]
    missed = [k for k in unknown if k.date < first_swept]
    refused_missed = sorted(f for f in scan.refused if (d := _folder_date(f)) is not None and d < first_swept)
    stale = stale_letters(now=now)
    alert = bool(missed or refused_missed or stale["stale"])

    def folder(k) -> dict:
        at = scan.ready_at.get(k)
        return {"folder": k.prefix, "ready_at": at.isoformat() if at else None}

    doc = {
        "audit": today.isoformat(), "at": now.isoformat(), "actor": actor, "alert": alert,
        "collect_lookback_days": s.collect_lookback_days, "first_swept_date": first_swept.isoformat(),
        "ready_folders": len(scan.ready), "pending_not_ready": len(scan.pending),
        "missed": len(missed), "missed_folders": [folder(k) for k in missed[:LISTED]],
        "awaiting_collect": len(unknown) - len(missed),
        "refused": len(scan.refused), "refused_missed": len(refused_missed),
        "refused_missed_folders": [{"folder": f, "codes": [c for c, _m in scan.refused[f]]}
                                   for f in refused_missed[:LISTED]],
        **stale,
    }
    lines = [f"docpost audit {today.isoformat()}: {'ALERT' if alert else 'OK'}", "",
             f"READY folders in the inbox: {len(scan.ready)} (not READY yet: {len(scan.pending)})",
             f"unknown to the ledger and before the sweep window (dated before {first_swept.isoformat()}, "
             f"never collected): {len(missed)}"]
    lines += [f"  {f['folder']}  _READY {f['ready_at']}" for f in doc["missed_folders"]]
    if missed:
        lines.append("  collect one by triggering docpost_nightly with night = its date")
    lines.append(f"unknown to the ledger, inside the window (the next night collects them): {doc['awaiting_collect']}")
    lines.append(f"READY folders whose path breaks the contract: {len(scan.refused)}, "
                 f"before the window (never reported): {len(refused_missed)}")
    lines += [f"  {f['folder']}  {', '.join(f['codes'])}" for f in doc["refused_missed_folders"]]
    lines += ["", _stale_text(stale)]
    key = f"reports/audit/{today.isoformat()}/audit"
    st.put_json(key + ".json", doc)
    st.put_text(key + ".txt", "\n".join(lines) + "\n")
    report = f"s3://{st.bucket}/{key}.json"
    if alert:
        log.warning("audit %s: ALERT: %d READY folder(s) never collected, %d refused folder(s) never reported, "
                    "%d stale letter(s); report at %s", today, len(missed), len(refused_missed), stale["stale"], report)
        _warn_stale(stale, f"audit {today}")
    else:
        log.info("audit %s: nothing left behind; report at %s", today, report)
    return {"audit": today.isoformat(), "alert": alert, "missed": len(missed), "refused_missed": len(refused_missed),
            "awaiting_collect": doc["awaiting_collect"], "stale": stale["stale"], "report": report}
