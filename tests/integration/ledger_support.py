"""Shared fixtures and builders for the ledger tests (SQLite file and PostgreSQL, same suite)."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from sqlalchemy import text

from docpost.ledger import Ledger, MessageState, Registration
from docpost.ledger.schema import ALL_TABLES

DAY = dt.date(2026, 11, 27)
KEY = b"ledger-test-pseudonym-key"
S = MessageState


def cpr(n: int) -> str:
    """A CPR-shaped test number (valid date part), distinct for each n < 10000."""
    return f"{(n % 28) + 1:02d}{(n % 12) + 1:02d}{(n * 7) % 100:02d}{n:04d}"


def cvr(n: int) -> str:
    return f"{30000000 + n * 13:08d}"


def registration(
    n: int, *, source: str = "sbsys", day: dt.date = DAY, content: str | None = None, cvr_recipient: bool = False,
    **extra,
) -> Registration:
    """The n-th test submission (content hash derived from n unless ``content`` is given)."""
    content_hash = hashlib.sha256((content or f"content-{source}-{n}").encode()).hexdigest()
    sub = f"SUB-{n:06d}"
    return Registration(
        source_system=source, submission_id=sub, submission_date=day, content_hash=content_hash,
        s3_prefix=f"inbox/{source}/{day.isoformat()}/{sub}/",
        recipient_id_type="CVR" if cvr_recipient else "CPR",
        recipient_identifier=cvr(n) if cvr_recipient else cpr(n),
        **({"case_number": f"SAG-{n // 10:04d}", "document_number": f"DOK-{n}"} | extra),
    )


def wipe(ledger: Ledger) -> None:
    """Empty every ledger table (tables are created once per session)."""
    with ledger.engine.begin() as conn:
        if ledger.dialect == "postgresql":
            names = ", ".join(t.name for t in ALL_TABLES)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(ALL_TABLES):
                conn.execute(table.delete())


def advance(ledger: Ledger, ids: list[int], to: MessageState, actor: str = "test") -> None:
    """Walk messages along the happy path up to ``to``."""
    path = [S.VALIDATED, S.STAMPED, S.RENDERED, S.SUBMITTED]
    for state in path[: path.index(to) + 1]:
        ledger.transition(ids, state, actor)


@pytest.fixture(scope="session")
def sqlite_ledger(tmp_path_factory):
    ledger = Ledger(f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'ledger.db'}", pseudonym_key=KEY)
    ledger.upgrade()
    yield ledger
    ledger.close()


@pytest.fixture(scope="session")
def postgresql_ledger(pg_url):
    ledger = Ledger(pg_url, pseudonym_key=KEY)
    ledger.upgrade()
    yield ledger
    ledger.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request) -> Ledger:
    """An empty, migrated ledger on each database."""
    instance = request.getfixturevalue(f"{request.param}_ledger")
    wipe(instance)
    return instance


def claim_worker(url: str, name: str, barrier, results, batch: int = 10) -> None:
    """A worker process: claim RENDERED messages in batches, "send" them, report what it claimed.

    Claims are not released: the lease alone must keep the other worker away.
    """
    ledger = Ledger(url, pseudonym_key=KEY)
    claimed: list[int] = []
    try:
        barrier.wait(timeout=120)
        while refs := ledger.claim([S.RENDERED], batch, name, lease_seconds=600):
            ids = [r.id for r in refs]
            claimed.extend(ids)
            ledger.transition(ids, S.SUBMITTED, f"worker:{name}", count_attempt=True)
        results.put((name, claimed, None))
    except Exception as exc:  # report to the test instead of dying silently
        results.put((name, claimed, repr(exc)))
    finally:
        ledger.close()
