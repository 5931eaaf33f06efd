"""The simulator playing the Beskedfordeler (SF1461): receipts published to an AMQP queue.

With ``SimulatorConfig.amqp_url`` set, a background thread follows the receipt feed: every
receipt that falls due (the same rows ``/sim/receipts`` serves, duplicates and out-of-order ones
included when the faults say so, injected ones too) is published, in feed order, to
``amqp_queue`` as a ``PostStatusBeskedModtag`` envelope (:func:`docpost.receipts.wrap_in_envelope`,
like the reference samples; a receipt already enveloped, or injected text, goes as it is). The
last published cursor is kept in the simulator's SQLite (``meta.amqp_cursor``) after the broker
confirmed: a restart continues there; a crash between confirm and store publishes a receipt
twice, which the consumer takes as the duplicate it is.

One thread with its own SQLite and broker connections (a pika BlockingConnection is not thread
safe); broker trouble is logged and retried every second, never fatal to the simulator.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
import uuid
from pathlib import Path

from docpost import receipts as rc

log = logging.getLogger(__name__)

_EVENT_NS = uuid.UUID("6f3c1f9e-2b7a-4c55-9f0e-0c1d2e3f4a5b")  # BeskedId of a bare receipt: from its bytes


def as_envelope(xml: bytes, sender_cvr: str, now: dt.datetime) -> bytes:
    """A bare ``PKO_PostStatus`` wrapped in a Beskedfordeler envelope (the same receipt twice gets
    the same BeskedId, as a redelivery would); anything else unchanged."""
    if not xml.lstrip().startswith(b"<PKO_PostStatus"):
        return xml
    event_id = str(uuid.uuid5(_EVENT_NS, hashlib.sha256(xml).hexdigest()))
    return rc.wrap_in_envelope(xml, event_id=event_id, sender_cvr=sender_cvr, created=now)


class ReceiptPublisher:
    """The publishing thread; :meth:`stop` ends it."""

    def __init__(self, state_dir: Path, amqp_url: str, queue: str, sender_cvr: str,
                 interval: float = 0.05, batch: int = 200) -> None:
        self.state_dir, self.url, self.queue, self.sender_cvr = state_dir, amqp_url, queue, sender_cvr
        self.interval, self.batch = interval, batch
        self.published = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-beskedfordeler", daemon=True)

    def start(self) -> ReceiptPublisher:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _connect(self):  # noqa: ANN202
        import pika

        params = pika.URLParameters(self.url)
        params.connection_attempts = 1
        params.socket_timeout = 5
        conn = pika.BlockingConnection(params)
        channel = conn.channel()
        channel.queue_declare(self.queue, durable=True)
        channel.confirm_delivery()
        return conn, channel

    def publish_once(self, store, channel) -> int:  # noqa: ANN001
        """Publish what fell due since the last call; how many were published."""
        import pika

        store.publish_due(time.time())
        rows = store.receipts_after(store.amqp_cursor(), self.batch)
        now = dt.datetime.now(dt.timezone.utc)
        for cursor, xml in rows:
            channel.basic_publish(
                exchange="", routing_key=self.queue, body=as_envelope(xml, self.sender_cvr, now),
                properties=pika.BasicProperties(delivery_mode=2, content_type="application/xml",
                                                message_id=f"sim-{cursor}"))
            store.set_amqp_cursor(cursor)  # after the broker confirmed it
            self.published += 1
        return len(rows)

    def _run(self) -> None:
        import pika.exceptions

        from docpost_testbench.simulator.store import Store

        store = Store(self.state_dir)  # a connection of this thread's own
        conn = channel = None
        try:
            while not self._stop.is_set():
                try:
                    if conn is None or not conn.is_open:
                        conn, channel = self._connect()
                    if not self.publish_once(store, channel):
                        self._stop.wait(self.interval)
                except (pika.exceptions.AMQPError, OSError) as exc:
                    log.warning("simulator: publishing receipts to the broker failed (%s); retrying",
                                type(exc).__name__)
                    conn = None
                    self._stop.wait(1.0)
                except Exception:  # noqa: BLE001 - a database hiccup: try again, never die silently
                    log.exception("simulator: receipt publisher")
                    self._stop.wait(1.0)
        finally:
            try:
                if conn is not None and conn.is_open:
                    conn.close()
            except Exception:  # noqa: BLE001
                pass
            store.close()
