"""What the operator view shows, read from the ledger and S3; no clear personal data leaves here.

Letters are shown by their identifiers, states, reason codes and the recipient's mask only (never
the title or the letter text). A *department* is the letterhead department of the sending profile
the source system's rules give a letter's document type (``config/profiles.xml``): the rules the
stamp uses (a manifest's own profile override is not kept in the ledger).
"""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import io
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from docpost.ledger import AWAITING_RECEIPT, BEFORE_SUBMISSION, Ledger, Message, MessageState
from docpost.model import IdType
from docpost.privacy import scrub

S = MessageState
DELIVERED = (S.DELIVERED_DIGITAL.value, S.DELIVERED_PHYSICAL.value)
WAITING = tuple(s.value for s in (*sorted(BEFORE_SUBMISSION), *sorted(AWAITING_RECEIPT)))
UNKNOWN_DEPARTMENT = "(no sending profile)"
LIST_LIMIT = 200  # letters listed per section of a night
REPORT_LIMIT = 50  # rejection reports read from S3 per night page

#: the areas of reason codes (``area.kind-of-problem``), in words
AREAS = {
    "submission": "the submission folder", "folder": "the submission folder", "files": "the files",
    "filename": "a file name", "manifest": "the manifest", "schema": "the XML schema", "xml": "the XML",
    "letter": "the letter text", "att": "att.xml", "pdf": "a supplied PDF", "print": "print-readiness",
    "render": "rendering", "stamping": "the reply address", "profiles": "the sending profiles",
    "hierarchy": "the contact hierarchy", "cpr": "the CPR number", "cvr": "the CVR number",
    "memo": "the MeMo message", "kombi": "the SF1601 request", "fjernprint": "the print request",
    "deliver": "delivery", "sf1601": "delivery (SF1601)", "recipient": "the recipient (SF1601)",
    "receipt": "the delivery receipt", "route": "reply routing", "inbound": "the inbound message",
    "mail": "the mail", "storage": "S3", "config": "the configuration", "ledger": "the ledger",
    "internal": "an unexpected failure (tried again by the next runs)", "cancelled": "cancelled by an operator",
}


def reason_words(code: str | None) -> str:
    """A reason code in words: ``manifest.invalid-date`` -> ``the manifest: invalid date``."""
    if not code:
        return ""
    area, _, kind = code.partition(".")
    where = AREAS.get(area, area)
    return f"{where}: {kind.replace('-', ' ')}" if kind else where


def search(ledger: Ledger, query: str) -> tuple[str, list[Message]]:
    """Letters matching a message UUID / transaction id, a submission id, a case number or a
    recipient's CPR/CVR (through its keyed hash); returns ``(the query as it may be shown, letters)``:
    a CPR/CVR is shown masked."""
    from docpost.privacy import mask_identifier

    query = query.strip()
    kind = _identifier_kind(query)
    if kind is not None:
        return f"{kind.value} {mask_identifier(query)}", ledger.by_recipient(kind, query)
    return scrub(query, 200) or "", ledger.find(query)


def _identifier_kind(query: str) -> IdType | None:
    """CPR for ten digits (a dash after the sixth allowed), CVR for eight digits, else None."""
    digits = query[:6] + query[7:] if len(query) == 11 and query[6] == "-" else query
    if not digits.isascii() or not digits.isdigit():
        return None
    return {10: IdType.CPR, 8: IdType.CVR}.get(len(digits))


def departments() -> Callable[[str, str | None], str]:
    """``(source system, document type) -> department`` by the sending profiles."""
    from docpost.stamping import load_profiles

    profiles = load_profiles()
    cache: dict[tuple[str, str | None], str] = {}

    def department(source_system: str, document_type: str | None) -> str:
        key = (source_system, document_type)
        if key not in cache:
            found = profiles.profile_for(source_system, document_type or "")
            cache[key] = found[0].letterhead.department if found else UNKNOWN_DEPARTMENT
        return cache[key]

    return department


# -- a letter --------------------------------------------------------------------------------


@dataclass
class Letter:
    message: Message
    history: list
    generations: list
    receipts: list[dict]
    reply_emne: str | None = None  # the Emne's label (and Postkasse), when stamped with one


def letter(ledger: Ledger, message_uuid: str) -> Letter | None:
    """A letter by its current or an earlier messageUUID (or transaction id), with its timeline."""
    m = ledger.get(message_uuid)
    if m is None:
        return None
    emne = None
    if m.reply_emne_id:
        from docpost.hierarchy import load_hierarchy

        found = load_hierarchy().emne(m.reply_emne_id)
        emne = found.label if found else None
    return Letter(m, ledger.history(m.id), ledger.generations(m.id), ledger.receipts_of(m.id), emne)


def pdf_key(m: Message) -> str:
    """Where the letter's rendered (or checked, supplied) PDF is kept in S3."""
    from docpost.pipeline import rendered_key

    return rendered_key(m.ref)


# -- a night ---------------------------------------------------------------------------------


@dataclass
class Night:
    date: dt.date
    report: object  # docpost.ledger.Report
    by_department: dict[str, Counter]
    rejected: list[tuple[Message, dict | None]] = field(default_factory=list)
    waiting: list[Message] = field(default_factory=list)
    overdue: list[Message] = field(default_factory=list)
    failed: list[Message] = field(default_factory=list)


def night(ledger: Ledger, date: dt.date, *, store=None, overdue_hours: float = 24,  # noqa: ANN001
          now: dt.datetime | None = None) -> Night:
    """A night's counts (state, channel, source system, department), its rejected letters with
    their reports, the letters still waiting, those overdue for a receipt and the FAILED ones."""
    report = ledger.report(date, overdue_hours=overdue_hours, now=now)
    department = departments()
    by_department: dict[str, Counter] = defaultdict(Counter)
    for source, doc_type, state, _channel, n in ledger.counts(date, date):
        by_department[department(source, doc_type)][state] += n
    result = Night(date, report, dict(sorted(by_department.items())))

    def listed(*states: str) -> list[Message]:
        return ledger.messages(ledger.message_ids(date, states)[:LIST_LIMIT])

    cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(hours=overdue_hours)
    result.waiting = listed(*WAITING)
    result.overdue = [m for m in result.waiting
                      if m.state is S.SUBMITTED and m.submitted_at and m.submitted_at < cutoff]
    result.failed = listed(S.FAILED.value)
    rejected = listed(S.REJECTED.value)
    reports = _rejection_reports(store, rejected[:REPORT_LIMIT]) if store is not None else {}
    result.rejected = [(m, reports.get(m.id)) for m in rejected]
    return result


def _rejection_reports(store, messages: list[Message]) -> dict[int, dict]:  # noqa: ANN001
    """The rejection reports of these letters (``rejected/<sys>/<date>/<id>/rejection.json``),
    their messages scrubbed; a missing report is left out."""
    from concurrent.futures import ThreadPoolExecutor

    from docpost.storage import ObjectNotFound

    def one(m: Message) -> tuple[int, dict | None]:
        key = f"rejected/{m.source_system}/{m.submission_date.isoformat()}/{m.submission_id}/rejection.json"
        try:
            doc = store.get_json(key)
        except ObjectNotFound:
            return m.id, None
        issues = [{"code": str(i.get("code") or ""), "file": scrub(i.get("file")), "line": i.get("line"),
                   "path": scrub(i.get("path")), "message": scrub(i.get("message"), 500)}
                  for i in doc.get("errors") or []]
        return m.id, {"stage": doc.get("stage"), "errors": issues, "key": key}

    with ThreadPoolExecutor(max_workers=8) as pool:
        return {mid: doc for mid, doc in pool.map(one, messages) if doc is not None}


def state_split(counts: dict[str, int]) -> dict[str, int]:
    """Counts by state folded as the report shows them: delivered, rejected, failed, cancelled,
    in progress, and the total."""
    settled = {"delivered": sum(counts.get(s, 0) for s in DELIVERED), "rejected": counts.get(S.REJECTED.value, 0),
               "failed": counts.get(S.FAILED.value, 0), "cancelled": counts.get(S.CANCELLED.value, 0)}
    total = sum(counts.values())
    return {**settled, "total": total, "in_progress": total - sum(settled.values())}


# -- per-department statistics ---------------------------------------------------------------


@dataclass(frozen=True)
class DepartmentFigures:
    department: str
    letters: int
    digital: int
    physical: int
    rejected: int
    failed: int
    in_progress: int

    @property
    def physical_share(self) -> float | None:
        """Physical letters of those delivered (what print costs follow)."""
        sent = self.digital + self.physical
        return self.physical / sent if sent else None

    @property
    def rejection_rate(self) -> float | None:
        return self.rejected / self.letters if self.letters else None


def month_range(month: str) -> tuple[dt.date, dt.date]:
    """``YYYY-MM`` -> its first and last day; ValueError for anything else."""
    if not re.fullmatch(r"\d{4}-\d{2}", month):
        raise ValueError(f"not a month (YYYY-MM): {month[:20]!r}")
    year, number = int(month[:4]), int(month[5:])
    return dt.date(year, number, 1), dt.date(year, number, calendar.monthrange(year, number)[1])


def month_figures(ledger: Ledger, month: str) -> list[DepartmentFigures]:
    """Letters submitted in a month by department: delivered digitally / physically (by the
    delivery receipt), rejected, failed and still in progress."""
    first, last = month_range(month)
    department = departments()
    tally: dict[str, Counter] = defaultdict(Counter)
    for source, doc_type, state, _channel, n in ledger.counts(first, last):
        t = tally[department(source, doc_type)]
        t["letters"] += n
        if state == S.DELIVERED_DIGITAL.value:
            t["digital"] += n
        elif state == S.DELIVERED_PHYSICAL.value:
            t["physical"] += n
        elif state == S.REJECTED.value:
            t["rejected"] += n
        elif state == S.FAILED.value:
            t["failed"] += n
        elif state != S.CANCELLED.value:
            t["in_progress"] += n
    return [DepartmentFigures(name, t["letters"], t["digital"], t["physical"], t["rejected"], t["failed"],
                              t["in_progress"]) for name, t in sorted(tally.items())]


CSV_COLUMNS = ("month", "department", "letters", "digital", "physical", "physical_share", "rejected",
               "rejection_rate", "failed", "in_progress")


def figures_csv(month: str, rows: list[DepartmentFigures]) -> str:
    """The month's figures as CSV (shares as decimals with four places, empty when undefined)."""
    def share(value: float | None) -> str:
        return "" if value is None else f"{value:.4f}"

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow([month, r.department, r.letters, r.digital, r.physical, share(r.physical_share),
                         r.rejected, share(r.rejection_rate), r.failed, r.in_progress])
    return out.getvalue()
