"""A docpost_now run lets a burst of submissions end before it splits the letters into chunks.

On two cores the submit API and the run's rendering compete for the same CPU: a run that starts
rendering while a thousand letters are still arriving slows every answer of the API, and takes
the burst in many small runs. :func:`wait_for_quiet` holds a run until no letter was registered
for ``quiet`` seconds, or ``at_most`` seconds have passed, whichever comes first: a single letter
waits ``quiet`` seconds at most, a letter in an endless stream ``at_most``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def settled_chunks(chunk_size: int | None = None) -> list[dict]:
    """Once today's submissions have settled, every letter waiting, in chunks of ``chunk_size``
    (None: ``DOCPOST_SENDNOW_CHUNK_SIZE``): what a docpost_now run works on."""
    from docpost import pipeline
    from docpost.sendnow.intake import today
    from docpost.settings import settings

    s = settings()
    day = today()
    waited = wait_for_quiet(lambda: pipeline.ledger().last_registered(day), s.sendnow_settle_seconds,
                            s.sendnow_settle_max_seconds)
    log.info("docpost_now: waited %.1f s for the submissions to settle", waited)
    return pipeline.plan_chunks(day, chunk_size=chunk_size or s.sendnow_chunk_size)


def wait_for_quiet(
    last_registered: Callable[[], dt.datetime | None], quiet: float, at_most: float, *,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Wait until ``last_registered()`` (the latest registration, UTC) is ``quiet`` seconds old,
    but no longer than ``at_most`` seconds; returns the seconds waited."""
    start = clock()
    while True:
        waited = clock() - start
        last = last_registered()
        idle = (now() - last).total_seconds() if last is not None else quiet
        if idle >= quiet or waited >= at_most:
            return waited
        sleep(max(0.05, min(quiet - idle, at_most - waited, 1.0)))
