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
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Iterable

from docpost import config
from docpost.ledger import Ledger, MessageRef, MessageState, Move, Receipt, Registration, shared_ledger
from docpost.model import ReplyType, Submission, SubmissionKey
from docpost.storage import ObjectStore, S3Submission, StorageError

log = logging.getLogger(__name__)
S = MessageState

LOOKBACK_DAYS = 7  # how far back a run sweeps for late drops
IO_THREADS = 8  # parallel S3 reads per chunk task (S3 latency, not CPU)
WORKABLE = (S.RECEIVED, S.VALIDATED, S.STAMPED, S.RENDERED, S.RETRYING)
RECEIPTS_CURSOR_KEY = "state/receipts-cursor.json"


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


def fingerprint(files: dict[str, Any]) -> str:
    """Content identity of a submission from its listing: sha256 over its sorted file names and sizes."""
    digest = hashlib.sha256()
    for name in sorted(files):
        if name == "_READY":
            continue
        digest.update(f"{name}\0{files[name]}\n".encode())
    return digest.hexdigest()


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


def _window(night: dt.date) -> list[dt.date]:
    return [night - dt.timedelta(days=n) for n in range(LOOKBACK_DAYS, -1, -1)]


def _ids_in(chunk: Chunk, states: Iterable[MessageState]) -> list[int]:
    led, states = ledger(), list(states)
    ids: list[int] = []
    for day in _window(_date(chunk.night)):
        ids.extend(i for i in led.message_ids(submission_date=day, states=states)
                   if chunk.first_id <= i <= chunk.last_id)
    return sorted(ids)


@contextmanager
def _claimed(chunk: Chunk, states: Iterable[MessageState], actor: str, stage: str) -> Iterator[list[MessageRef]]:
    """This chunk's messages in ``states``, claimed for the stage's worker and released after.

    Claims this same task left behind when its process was killed are taken back first (a retry
    of the task has the same worker name); another run's claims expire after the lease.
    """
    led, states = ledger(), list(states)
    worker = f"{actor}#{stage}:{chunk.index}"
    ids = _ids_in(chunk, states)
    lease = config.settings().claim_lease_seconds
    refs: list[MessageRef] = []
    step = led.chunk_size
    for start in range(0, len(ids), step):
        part = ids[start:start + step]
        led.release(part, worker)
        refs.extend(led.claim(states, len(part), worker, lease, message_ids=part))
    try:
        yield refs
    finally:
        led.release([r.id for r in refs], worker)


def _rows(refs: list[MessageRef]) -> dict:
    """The ledger rows of the claimed messages, by id."""
    return {m.id: m for m in ledger().messages([r.id for r in refs])}


class StageIncomplete(RuntimeError):
    """Some messages of a chunk could not be worked on (storage trouble): they keep their state,
    the rest is recorded, and the task fails so that Airflow retries it (idempotently)."""


def _check_loaded(loaded: list[tuple[MessageRef, Any]], stage: str) -> None:
    failed = [ref for ref, report in loaded if isinstance(report, Exception)]
    if failed:
        raise StageIncomplete(
            f"{stage}: {len(failed)} of {len(loaded)} submissions could not be read; they keep their state "
            f"and are taken up by the retry (first: message {failed[0].message_uuid})"
        )


def _source(st: ObjectStore, ref: MessageRef, rows: dict[int, Any]) -> S3Submission:
    """The message's submission as registered: its recorded listing, every read pinned to the
    ETag it had then (no listing request; a file replaced since is reported, never read)."""
    listing = rows[ref.id].listing
    if not listing:  # registered without a listing (before migration 0003): list the folder
        return S3Submission(st, _key(ref))
    return S3Submission(st, _key(ref), files={n: size for n, (size, _e) in listing.items()},
                        etags={n: etag for n, (_s, etag) in listing.items() if etag})


def _load(refs: list[MessageRef], rows: dict[int, Any]) -> list[tuple[MessageRef, Any]]:
    """Validate each message's submission as registered (safe parsing; bounded parallel reads)."""
    from docpost.validation import ValidationIssue, ValidationReport, schemas, validate

    # libxml2 initialises its schema types lazily and not thread-safely: compile the XSDs here,
    # in this thread, before the pool's threads validate (else: "not a built-in type" errors).
    schemas()
    st = store()

    def one(ref: MessageRef):
        try:
            return ref, validate(_source(st, ref, rows))
        except StorageError as exc:  # S3 trouble, not the submission's fault: retried, never rejected
            log.warning("message %s: could not read its submission: %s", ref.message_uuid, exc.code)
            return ref, exc
        except (Exception, RecursionError, MemoryError) as exc:  # noqa: BLE001 - a validator bug
            log.exception("message %s: the validator failed", ref.message_uuid)
            return ref, ValidationReport(_key(ref), [ValidationIssue(
                "validator.internal-error", f"the validator failed on this submission ({type(exc).__name__})")])

    with ThreadPoolExecutor(max_workers=IO_THREADS) as pool:
        return list(pool.map(one, refs))


def _still_valid(loaded: list[tuple[MessageRef, Any]], invalid: list[tuple[MessageRef, list[dict]]]
                 ) -> Iterator[tuple[MessageRef, Submission]]:
    """The loaded submissions that (still) validate. One that no longer does (changed since it was
    validated) goes to ``invalid`` with its issues, never skipped silently; one that could not be
    read is left for :func:`_check_loaded`."""
    for ref, report in loaded:
        if isinstance(report, Exception):
            continue
        if not report.valid:
            invalid.append((ref, report.to_json()["errors"]))
            continue
        yield ref, report.submission


# --------------------------------------------------------------------------- collect and plan


def collect(night: str | dt.date, *, source_systems: list[str] | None = None, actor: str) -> dict:
    """Register READY submissions of ``night`` (and late drops of the days before) as RECEIVED."""
    day = _date(night)
    led, st = ledger(), store()
    led.upgrade()
    scan = st.scan_inbox(day, source_systems)
    late = st.scan_inbox_before(day, LOOKBACK_DAYS, source_systems)
    registrations = [
        Registration(
            source_system=key.source_system, submission_id=key.submission_id, submission_date=key.date,
            content_hash=fingerprint(files), s3_prefix=key.prefix,
            listing={name: (size, found.etags[key].get(name, "")) for name, size in files.items()},
        )
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
    }
    log.info("collect %s: %s", day, counts)
    return counts


def plan_chunks(night: str | dt.date, *, chunk_size: int | None = None) -> list[dict]:
    """Split the outstanding messages of the night's window into id-range chunks."""
    size = chunk_size or config.settings().chunk_size
    day = _date(night)
    led = ledger()
    ids = sorted(i for d in _window(day) for i in led.message_ids(submission_date=d, states=WORKABLE))
    slices = [ids[n:n + size] for n in range(0, len(ids), size)]
    chunks = [Chunk(day.isoformat(), n, len(slices), part[0], part[-1]).as_dict(messages=len(part))
              for n, part in enumerate(slices)]
    log.info("plan %s: %d outstanding messages in %d chunks", day, len(ids), len(chunks))
    return chunks


# --------------------------------------------------------------------------- the stages


def _issue(code: str, message: str, file: str | None = None, path: str | None = None) -> dict:
    """One problem in a rejection report (the shape ``docpost validate --json`` prints)."""
    return {"code": code, "file": file, "line": None, "path": path, "message": message}


def _rejection_report(ref: MessageRef, issues: list[dict], stage: str) -> tuple[str, str]:
    import json

    doc = {
        "submission": f"{ref.source_system}/{ref.submission_date.isoformat()}/{ref.submission_id}",
        "message_uuid": ref.message_uuid,
        "stage": stage,
        "valid": False,
        "errors": issues,
    }
    lines = [f"Afvist / rejected: {doc['submission']} (besked {ref.message_uuid}, trin {stage})", ""]
    for issue in issues:
        where = ":".join(str(p) for p in (issue.get("file"), issue.get("line")) if p)
        lines.append(f"- [{issue['code']}] {where + ' ' if where else ''}{issue['message']}")
    return json.dumps(doc, ensure_ascii=False, indent=2), "\n".join(lines) + "\n"


def _reject(refs_issues: list[tuple[MessageRef, list[dict]]], actor: str, stage: str) -> None:
    """Write each rejection report to S3 first, then record REJECTED (a rerun rewrites the same)."""
    if not refs_issues:
        return
    st = store()

    def write(item):
        ref, issues = item
        prefix = f"rejected/{ref.source_system}/{ref.submission_date.isoformat()}/{ref.submission_id}/"
        js, text = _rejection_report(ref, issues, stage)
        st.put_text(prefix + "rejection.json", js, "application/json")
        st.put_text(prefix + "rejection.txt", text)

    with ThreadPoolExecutor(max_workers=IO_THREADS) as pool:
        list(pool.map(write, refs_issues))
    rejections = []
    for ref, issues in refs_issues:
        codes = list(dict.fromkeys(i["code"] for i in issues))
        text = "; ".join(i["message"] for i in issues[:3]) + (f" (+{len(issues) - 3} more)" if len(issues) > 3 else "")
        rejections.append((ref.id, codes[0], f"{', '.join(codes)}: {text}"))
    ledger().reject_many(rejections, actor)


def validate_chunk(chunk: dict | Chunk, *, actor: str) -> dict:
    """RECEIVED -> VALIDATED | REJECTED (with a rejection report under ``rejected/``)."""
    chunk = Chunk.of(chunk)
    led = ledger()
    valid: list[Move] = []
    rejected: list[tuple[MessageRef, list[dict]]] = []
    with _claimed(chunk, [S.RECEIVED], actor, "validate") as refs:
        loaded = _load(refs, _rows(refs))
        for ref, sub in _still_valid(loaded, rejected):
            case = sub.case
            valid.append(Move(ref.id, None, {
                "recipient": sub.manifest.recipient,
                "title": sub.manifest.title,
                "document_type": sub.manifest.document_type,
                "case_number": (case.case_number if case else None) or sub.manifest.case_reference,
                "case_uuid": case.case_uuid if case else None,
                "document_number": case.document_number if case else None,
                "document_uuid": case.document_uuid if case else None,
            }))
        _reject(rejected, actor, "validate")
        led.transition_each(valid, S.VALIDATED, actor, expected_from=[S.RECEIVED])
        _check_loaded(loaded, "validate")
    return chunk.as_dict(claimed=len(refs), validated=len(valid), rejected=len(rejected))


def _profiles():
    from docpost.stamping import load_profiles

    return load_profiles()


def stamp_chunk(chunk: dict | Chunk, *, actor: str) -> dict:
    """VALIDATED -> STAMPED (reply Postkasse/Emne/contact point on the ledger) | REJECTED."""
    from docpost.stamping import StampingError, stamp

    chunk = Chunk.of(chunk)
    led, profiles = ledger(), _profiles()
    stamped: list[Move] = []
    rejected: list[tuple[MessageRef, list[dict]]] = []
    with _claimed(chunk, [S.VALIDATED], actor, "stamp") as refs:
        loaded = _load(refs, _rows(refs))
        for ref, sub in _still_valid(loaded, rejected):
            try:
                result = stamp(sub, profiles)
            except StampingError as exc:
                rejected.append((ref, [_issue(exc.code, exc.message, "manifest.xml")]))
                continue
            reply = result.reply
            detail = (f"{reply.rule}: ikkeMuligt" if reply.reply_type is ReplyType.NOT_POSSIBLE
                      else f"{reply.rule}: Postkasse {reply.postkasse_id} / Emne {reply.emne_id}")
            stamped.append(Move(ref.id, detail, {
                "reply_type": reply.reply_type.value,
                "reply_postkasse_id": reply.postkasse_id,
                "reply_emne_id": reply.emne_id,
                "reply_contact_point_id": reply.contact_point_id,
            }))
        _reject(rejected, actor, "stamp")
        led.transition_each(stamped, S.STAMPED, actor, expected_from=[S.VALIDATED])
        _check_loaded(loaded, "stamp")
    return chunk.as_dict(claimed=len(refs), stamped=len(stamped), rejected=len(rejected))


def rendered_key(ref: MessageRef) -> str:
    """Where the rendered (or checked, supplied) main PDF of a message is kept."""
    return f"rendered/{ref.source_system}/{ref.submission_date.isoformat()}/{ref.submission_id}/{ref.message_uuid}.pdf"


def _created(message) -> dt.datetime:
    """The letter's fixed creation time: when its message was registered (stable across reruns)."""
    return message.created_at.replace(microsecond=0)


def short_reference(message_uuid: str) -> str:
    return message_uuid.split("-")[0].upper()


def _letter_pdf(ref: MessageRef, message, submission: Submission, stamp_result) -> bytes:
    """The main PDF: rendered from the letter text, or the supplied one once it passes the print check."""
    from docpost.model import FileRole
    from docpost.rendering import NotPrintReady, check_print_ready, render_letter
    from docpost.stamping import letter_reference, reply_line

    main = submission.manifest.main_file
    if main.role is FileRole.MAIN:
        pdf = submission.documents[main.name]
        issues = check_print_ready(pdf)
        if issues:
            raise NotPrintReady(issues)
        return pdf
    short = short_reference(ref.message_uuid)
    case_reference = letter_reference(submission)
    return render_letter(
        submission, stamp_result.letterhead,
        reply_line(stamp_result.reply, case_reference or short),
        short, _created(message),
    )


def render_chunk(chunk: dict | Chunk, *, actor: str) -> dict:
    """STAMPED -> RENDERED (PDF kept under ``rendered/``, its sha256 on the ledger) | REJECTED."""
    from docpost.rendering import RenderError
    from docpost.stamping import StampingError, stamp

    chunk = Chunk.of(chunk)
    led, st, profiles = ledger(), store(), _profiles()
    rendered: list[Move] = []
    rejected: list[tuple[MessageRef, list[dict]]] = []
    with _claimed(chunk, [S.STAMPED], actor, "render") as refs:
        rows = _rows(refs)
        loaded = _load(refs, rows)
        outputs: list[tuple[MessageRef, bytes]] = []
        for ref, sub in _still_valid(loaded, rejected):
            try:
                result = stamp(sub, profiles)
                pdf = _letter_pdf(ref, rows[ref.id], sub, result)
            except StampingError as exc:
                rejected.append((ref, [_issue(exc.code, exc.message, "manifest.xml")]))
                continue
            except RenderError as exc:
                main_name = sub.manifest.main_file.name
                issues = [_issue(i.code, i.message, main_name, f"page {i.page}" if i.page else None)
                          for i in getattr(exc, "issues", ())]
                rejected.append((ref, issues or [_issue(exc.code, exc.message)]))
                continue
            outputs.append((ref, pdf))

        def put(item):
            ref, pdf = item
            st.put_bytes(rendered_key(ref), pdf, "application/pdf")
            return ref, hashlib.sha256(pdf).hexdigest()

        with ThreadPoolExecutor(max_workers=IO_THREADS) as pool:
            for ref, digest in pool.map(put, outputs):
                rendered.append(Move(ref.id, f"pdf sha256 {digest[:16]}", {"pdf_sha256": digest}))
        _reject(rejected, actor, "render")
        led.transition_each(rendered, S.RENDERED, actor, expected_from=[S.STAMPED])
        _check_loaded(loaded, "render")
    return chunk.as_dict(claimed=len(refs), rendered=len(rendered), rejected=len(rejected))


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
        raise RuntimeError("DOCPOST_SF1601_URL is not set: no SF1601 endpoint (or simulator) to deliver to")
    return _client_for(s.sf1601_url, s.sender_cvr, s.sf1601_cert, s.sf1601_key, s.sf1601_ca,
                       s.sf1601_timeout, s.sf1601_concurrency)


def _kombi_request(ref: MessageRef, message, submission: Submission, stamp_result, pdf: bytes) -> bytes:
    from docpost.fjernprint import build_forsendelse, build_kombi_request, kombi_valg_for
    from docpost.memo import OutboundLetter, build_memo
    from docpost.model import ChannelWish
    from docpost.rendering import assemble

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
    if wish is not ChannelWish.DIGITAL:  # physical letters need one PDF: attachments appended
        printed = assemble(pdf, [a[2] for a in attachments])
        forsendelse = build_forsendelse(replace(letter, pdf=printed, attachments=[]))
    return build_kombi_request(kombi_valg_for(wish), memo_xml, forsendelse)


def deliver_chunk(chunk: dict | Chunk, *, actor: str, dry_run: bool = False) -> dict:
    """RENDERED | RETRYING -> SUBMITTED | RETRYING | FAILED, through SF1601 (same transaction id on retry)."""
    from docpost.channels.sf1601 import Outcome
    from docpost.stamping import StampingError, stamp

    chunk = Chunk.of(chunk)
    if dry_run:
        return chunk.as_dict(claimed=0, submitted=0, retrying=0, failed=0, dry_run=1)
    led, st, s, profiles = ledger(), store(), config.settings(), _profiles()
    counts = Counter()
    with _claimed(chunk, [S.RENDERED, S.RETRYING], actor, "deliver") as refs:
        rows = _rows(refs)
        bodies: list[tuple[MessageRef, bytes]] = []
        failed: list[Move] = []
        invalid: list[tuple[MessageRef, list[dict]]] = []
        loaded = _load(refs, rows)
        for ref, sub in _still_valid(loaded, invalid):
            try:
                result = stamp(sub, profiles)
                pdf = st.get_bytes(rendered_key(ref))
                if hashlib.sha256(pdf).hexdigest() != rows[ref.id].pdf_sha256:
                    raise ValueError("rendered PDF does not match the recorded sha256")
                bodies.append((ref, _kombi_request(ref, rows[ref.id], sub, result, pdf)))
            except (StampingError, ValueError) as exc:
                code = getattr(exc, "code", None) or getattr(exc, "reason", None) or "deliver.build-failed"
                failed.append(Move(ref.id, f"{code}: {exc}", {"reason_code": code, "reason_text": str(exc)}))
        for ref, issues in invalid:  # RETRYING cannot become REJECTED: FAILED with the reason
            text = "no longer valid: " + ", ".join(dict.fromkeys(i["code"] for i in issues))
            failed.append(Move(ref.id, text, {"reason_code": "submission.changed", "reason_text": text}))
        client = sf1601_client()
        outcomes = client.send_many(
            [(ref.transaction_id, body) for ref, body in bodies],
            concurrency=s.sf1601_concurrency, attempts=s.sf1601_attempts,
        )
        submitted, retrying = [], []
        for (ref, _body), out in zip(bodies, outcomes):
            if out.outcome is Outcome.ACCEPTED:
                tid = out.result.transmission_id if out.result else None
                submitted.append(Move(ref.id, f"accepted, transmission {tid}" if tid else "accepted", {}))
            elif out.outcome is Outcome.PERMANENT:
                err = out.error
                text = getattr(err, "error_text", None) or err.message
                code = getattr(err, "error_code", None) or err.code
                failed.append(Move(ref.id, f"{code}: {text}", {"reason_code": str(code), "reason_text": text}))
            elif ref.attempts + 1 >= s.max_send_attempts:
                failed.append(Move(ref.id, f"gave up after {ref.attempts + 1} attempts: {out.code}",
                                   {"reason_code": out.code, "reason_text": out.error.message}))
            else:
                retrying.append(Move(ref.id, f"{out.code}: {out.error.message}",
                                     {"reason_code": out.code, "reason_text": out.error.message}))
        led.transition_each(submitted, S.SUBMITTED, actor, count_attempt=False)
        led.transition_each(retrying, S.RETRYING, actor, count_attempt=True)
        led.transition_each(failed, S.FAILED, actor)
        counts.update(submitted=len(submitted), retrying=len(retrying), failed=len(failed))
        _check_loaded(loaded, "deliver")
    return chunk.as_dict(claimed=len(refs), **counts)


# --------------------------------------------------------------------------- receipts and reports


def fetch_receipts(*, actor: str, max_pages: int = 200) -> dict:
    """Fetch PKO_PostStatus receipts after the stored cursor and settle the ledger; then move the cursor."""
    import json

    from docpost.receipts import outcome

    st, led, client = store(), ledger(), sf1601_client()
    led.upgrade()
    try:
        cursor = json.loads(st.get_bytes(RECEIPTS_CURSOR_KEY)).get("cursor")
    except Exception:  # noqa: BLE001 - no cursor yet: from the beginning
        cursor = None
    totals = Counter()
    for _ in range(max_pages):
        statuses, next_cursor = client.fetch_receipts(cursor)
        if not statuses and next_cursor == cursor:
            break
        receipts = []
        for status in statuses:
            state = outcome(status)
            if state is None:
                totals["intermediate"] += 1
                continue
            receipts.append(Receipt.of(status, state))
        result = led.apply_receipts(receipts, actor)
        totals.update(applied=result.applied, duplicates=result.duplicates, stale=result.stale,
                      pending=result.pending)
        # the cursor moves only after the ledger has the receipts: a crash refetches, never loses
        st.put_json(RECEIPTS_CURSOR_KEY, {"cursor": next_cursor})
        try:
            client.ack_receipts(next_cursor)
        except Exception:  # noqa: BLE001 - acking is an optimisation; the cursor is ours
            pass
        if next_cursor == cursor or not statuses:
            break
        cursor = next_cursor
    return dict(totals)


def reconcile(*, overdue_hours: float = 24) -> dict:
    """Count messages SUBMITTED longer than ``overdue_hours`` without a receipt (flagged in reports)."""
    overdue = ledger().awaiting_receipt(overdue_hours)
    if overdue:
        log.warning("%d messages SUBMITTED over %s h without a receipt", len(overdue), overdue_hours)
    return {"overdue": len(overdue)}


def summarize(night: str | dt.date, *, actor: str, overdue_hours: float = 24) -> dict:
    """Write the night's report (JSON and text) to ``reports/<night>/``; returns the counts."""
    from docpost.ledger.views import report_text

    day = _date(night)
    report = ledger().report(day, overdue_hours=overdue_hours)
    st = store()
    data = report.to_dict()
    st.put_json(f"reports/{day.isoformat()}/summary.json", data)
    st.put_text(f"reports/{day.isoformat()}/summary.txt", report_text(report))
    return {"night": day.isoformat(), "total": report.total, **{k.lower(): v for k, v in report.by_state.items()},
            "report": f"s3://{config.settings().bucket}/reports/{day.isoformat()}/summary.json"}
