"""The simulator's durable state (SQLite under the state directory).

Transactions (for deduplication by ``x-TransaktionsId``), delivered letters (the mailboxes and
the delivery counts), pending receipts and the published receipt feed. A restarted simulator
opens the same file and still deduplicates and still serves every receipt.

All calls come from the server's event loop thread, one at a time; the AMQP publisher
(``simulator.amqp``) opens a Store of its own in its thread (SQLite serialises the writers).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS transactions (
    transaction_id TEXT PRIMARY KEY,
    status INTEGER NOT NULL,
    answer BLOB NOT NULL,
    message_uuid TEXT,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS letters (
    id INTEGER PRIMARY KEY,
    message_uuid TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    transmission_id TEXT NOT NULL,
    recipient_id TEXT,
    kombi_valg TEXT NOT NULL,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,            -- delivered | failed | duplicate
    error_code TEXT,
    label TEXT,
    filename TEXT,
    pdf BLOB,
    delivered_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS letters_recipient ON letters (recipient_id);
CREATE INDEX IF NOT EXISTS letters_message ON letters (message_uuid);
CREATE TABLE IF NOT EXISTS pending_receipts (
    id INTEGER PRIMARY KEY,
    due REAL NOT NULL,
    message_uuid TEXT NOT NULL,
    xml BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS receipts (
    cursor INTEGER PRIMARY KEY AUTOINCREMENT,
    message_uuid TEXT NOT NULL,
    xml BLOB NOT NULL,
    published_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    answer: bytes


class Store:
    """SQLite-backed state of one simulator instance."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "sf1601-simulator.sqlite"
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # -- transactions ---------------------------------------------------------------------

    def answer_for(self, transaction_id: str) -> StoredAnswer | None:
        row = self.db.execute("SELECT status, answer FROM transactions WHERE transaction_id = ?",
                              (transaction_id,)).fetchone()
        return StoredAnswer(row[0], bytes(row[1])) if row else None

    def record_transaction(self, transaction_id: str, status: int, answer: bytes,
                           message_uuid: str | None) -> None:
        self.db.execute(
            "INSERT INTO transactions (transaction_id, status, answer, message_uuid, received_at)"
            " VALUES (?, ?, ?, ?, ?)", (transaction_id, status, answer, message_uuid, time.time()))

    # -- letters --------------------------------------------------------------------------

    def delivered(self, message_uuid: str) -> bool:
        row = self.db.execute("SELECT 1 FROM letters WHERE message_uuid = ? AND status = 'delivered'",
                              (message_uuid,)).fetchone()
        return row is not None

    def record_letter(self, **fields: object) -> None:
        names = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        self.db.execute(f"INSERT INTO letters ({names}) VALUES ({marks})", tuple(fields.values()))

    def mailbox(self, recipient_id: str) -> list[dict]:
        rows = self.db.execute(
            "SELECT message_uuid, transmission_id, channel, status, error_code, label, filename,"
            " delivered_at, pdf IS NOT NULL FROM letters WHERE recipient_id = ? ORDER BY id",
            (recipient_id,)).fetchall()
        keys = ("message_uuid", "transmission_id", "channel", "status", "error_code", "label",
                "filename", "delivered_at", "has_pdf")
        return [dict(zip(keys, row)) for row in rows]

    def pdf(self, recipient_id: str, message_uuid: str) -> tuple[str | None, bytes] | None:
        row = self.db.execute(
            "SELECT filename, pdf FROM letters WHERE recipient_id = ? AND message_uuid = ?"
            " AND status = 'delivered' AND pdf IS NOT NULL ORDER BY id LIMIT 1",
            (recipient_id, message_uuid.lower())).fetchone()
        return (row[0], bytes(row[1])) if row else None

    def delivery_counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT message_uuid, COUNT(*) FROM letters WHERE status = 'delivered'"
                               " GROUP BY message_uuid").fetchall()
        return {uuid: n for uuid, n in rows}

    def transaction_counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT message_uuid, COUNT(*) FROM transactions WHERE status = 200"
                               " GROUP BY message_uuid").fetchall()
        return {uuid: n for uuid, n in rows if uuid}

    def letter_counts(self) -> dict[str, int]:
        counts = {"digital": 0, "physical": 0, "failed": 0, "duplicate": 0}
        for channel, status, n in self.db.execute(
                "SELECT channel, status, COUNT(*) FROM letters GROUP BY channel, status"):
            key = channel if status == "delivered" else status
            counts[key] = counts.get(key, 0) + n
        return counts

    # -- receipts -------------------------------------------------------------------------

    def queue_receipt(self, due: float, message_uuid: str, xml: bytes) -> None:
        self.db.execute("INSERT INTO pending_receipts (due, message_uuid, xml) VALUES (?, ?, ?)",
                        (due, message_uuid, xml))

    def publish_due(self, now: float) -> int:
        """Move due receipts into the feed, in due order; the feed only ever grows."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            rows = self.db.execute("SELECT id, message_uuid, xml FROM pending_receipts WHERE due <= ?"
                                   " ORDER BY due, id", (now,)).fetchall()
            self.db.executemany("INSERT INTO receipts (message_uuid, xml, published_at) VALUES (?, ?, ?)",
                                [(m, x, now) for _, m, x in rows])
            self.db.executemany("DELETE FROM pending_receipts WHERE id = ?", [(i,) for i, _, _ in rows])
        return len(rows)

    def publish_now(self, now: float, receipts: list[tuple[str, bytes]]) -> list[int]:
        """Publish these (message UUID, raw receipt) at the end of the feed, after everything
        already due; returns their cursors (tests inject odd receipts this way)."""
        self.publish_due(now)
        cursors = []
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for message_uuid, xml in receipts:
                cur = self.db.execute("INSERT INTO receipts (message_uuid, xml, published_at) VALUES (?, ?, ?)",
                                      (message_uuid, xml, now))
                cursors.append(cur.lastrowid)
        return cursors

    def receipts_after(self, cursor: int, limit: int) -> list[tuple[int, bytes]]:
        rows = self.db.execute("SELECT cursor, xml FROM receipts WHERE cursor > ? ORDER BY cursor"
                               " LIMIT ?", (cursor, limit)).fetchall()
        return [(c, bytes(x)) for c, x in rows]

    def receipt_counts(self) -> dict[str, int]:
        pending = self.db.execute("SELECT COUNT(*) FROM pending_receipts").fetchone()[0]
        published = self.db.execute("SELECT COUNT(*) FROM receipts").fetchone()[0]
        return {"pending": pending, "published": published, "acked_cursor": self.acked_cursor()}

    def amqp_cursor(self) -> int:
        """The last feed cursor published to the AMQP queue (the simulator as Beskedfordeler)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'amqp_cursor'").fetchone()
        return int(row[0]) if row else 0

    def set_amqp_cursor(self, cursor: int) -> None:
        self.db.execute("INSERT INTO meta (key, value) VALUES ('amqp_cursor', ?)"
                        " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(cursor),))

    def acked_cursor(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'acked_cursor'").fetchone()
        return int(row[0]) if row else 0

    def ack(self, cursor: int) -> int:
        acked = max(self.acked_cursor(), cursor)
        self.db.execute("INSERT INTO meta (key, value) VALUES ('acked_cursor', ?)"
                        " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(acked),))
        return acked
