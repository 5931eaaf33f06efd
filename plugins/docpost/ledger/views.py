"""Plain-text views of the ledger for people: a message's timeline and the daily report."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from docpost.ledger.records import Event, Message, Report
from docpost.ledger.states import MessageState


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[int] = ()) -> str:
    """An aligned text table; columns whose index is in ``right`` are right-aligned."""
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *(line(r) for r in cells[1:])])


def _when(at: dt.datetime | None) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ") if at else "-"


def timeline(message: Message, history: Sequence[Event]) -> str:
    """A message's record and its events, recipient masked."""
    m = message
    attempts = f"{m.attempts} attempt" + ("" if m.attempts == 1 else "s")
    lines = [
        f"Message {m.message_uuid}",
        f"  submission      {m.source_system} / {m.submission_date.isoformat()} / {m.submission_id}",
        f"  transaction id  {m.transaction_id}",
        f"  state           {m.state.value} (channel {m.channel or 'none'}, {attempts})",
        f"  recipient       {m.recipient_id_type or '?'} {m.recipient_masked or ('(purged)' if m.purged_at else '-')}",
    ]
    if m.case_number or m.document_number:
        lines.append(f"  case/document   {m.case_number or '-'} / {m.document_number or '-'}")
    if m.document_type:
        lines.append(f"  document type   {m.document_type}")
    if m.reply_type or m.reply_postkasse_id:
        reply = f"Postkasse {m.reply_postkasse_id} / Emne {m.reply_emne_id}" if m.reply_postkasse_id else "-"
        lines.append("  reply           " + " ".join(p for p in (m.reply_type, reply) if p))
    if m.reason_code:
        lines.append(f"  last reason     {m.reason_code}: {m.reason_text or ''}".rstrip())
    if m.receipt_status:
        lines.append(f"  receipt         {m.receipt_status}")
    if m.claimed_by:
        lines.append(f"  claimed by      {m.claimed_by} until {_when(m.claim_expires_at)}")
    lines.append(f"  location        {m.s3_prefix}")
    if m.purged_at:
        lines.append(f"  purged          {_when(m.purged_at)}")
    lines.append("")
    lines.append(table(
        ["when (UTC)", "from", "to", "actor", "detail"],
        [(_when(e.at), e.from_state.value if e.from_state else "-", e.to_state.value, e.actor, e.detail or "")
         for e in history],
    ))
    return "\n".join(lines)


def report_text(report: Report) -> str:
    """The daily report as aligned tables."""
    r = report
    out = [f"docpost ledger report for {r.date.isoformat()}: {r.total} message(s)", ""]
    out.append(table(["state", "messages"], [(s, n) for s, n in r.by_state.items()], right=(1,)))
    out.append("")
    out.append(table(["channel", "messages"], [(c, n) for c, n in r.by_channel.items()], right=(1,)))
    out.append("")
    delivered = (MessageState.DELIVERED_DIGITAL, MessageState.DELIVERED_PHYSICAL)
    rows = []
    for source, counts in r.by_source_system.items():
        rows.append((
            source, sum(counts.values()), sum(counts.get(s, 0) for s in delivered),
            counts.get(MessageState.REJECTED, 0), counts.get(MessageState.FAILED, 0),
            counts.get(MessageState.CANCELLED, 0),
            sum(n for s, n in counts.items() if s not in (*delivered, "REJECTED", "FAILED", "CANCELLED")),
        ))
    out.append(table(["source system", "total", "delivered", "rejected", "failed", "cancelled", "in progress"],
                     rows, right=(1, 2, 3, 4, 5, 6)))
    out.append("")
    out.append(f"conflicts (same submission id, different content): {len(r.conflicts)}")
    if r.conflicts:
        out.append(table(
            ["source system", "submission id", "existing hash", "conflicting hash", "detected (UTC)"],
            [(c.source_system, c.submission_id, c.existing_content_hash[:12], c.conflicting_content_hash[:12],
              _when(c.detected_at)) for c in r.conflicts],
        ))
    out.append(f"submitted without receipt for more than a day: {r.awaiting_receipt_overdue}")
    out.append(f"receipts waiting for their message (all dates): {r.pending_receipts}")
    held = ", ".join(f"{code} {n}" for code, n in r.held.items())
    out.append(f"held after unexpected failures, tried again by the next runs: {sum(r.held.values())}"
               + (f" ({held})" if held else ""))
    return "\n".join(out)
