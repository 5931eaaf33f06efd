"""A real SMTP server on loopback that keeps what it receives (tests and the embedded demo).

``start_mailsink(dir)`` runs aiosmtpd in a background thread; every accepted mail is written
to ``dir`` as one ``.eml`` file (the envelope recipients in an ``X-Mailsink-Rcpt-To`` header)
before the server answers ``250``, so a mail the client saw accepted is always on disk.
``handle.messages()`` reads them back in arrival order. ``python -m docpost_testbench.mailsink DIR``
runs one in the foreground.

Like a mailbox store (Exchange's DeliveredTo table), the sink delivers a mail only once per
recipient, Message-ID and Date: a repeat (a sender resending a mail whose ``250`` it never saw,
RFC 1047) is accepted and kept apart under ``dir/duplicates/``, where
``handle.duplicates()`` shows it, never in the mailbox.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import itertools
import os
import socket
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Callable

RCPT_HEADER = "X-Mailsink-Rcpt-To"
DUPLICATES = "duplicates"


@dataclass(frozen=True)
class SinkMail:
    """One received mail: envelope sender and recipients, and the parsed message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage = field(repr=False)

    @property
    def message_id(self) -> str | None:
        return self.message["Message-ID"]


@dataclass
class MailsinkHandle:
    """A running mail sink: where it listens, what it received, how to stop it."""

    host: str
    port: int
    directory: Path
    stop: Callable[[], None]

    def messages(self) -> list[SinkMail]:
        """What the mailboxes hold, in arrival order."""
        return _read(self.directory)

    def duplicates(self) -> list[SinkMail]:
        """Repeated deliveries (same recipients, Message-ID and Date) that were kept out."""
        return _read(self.directory / DUPLICATES)

    def __enter__(self) -> MailsinkHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _read(directory: Path) -> list[SinkMail]:
    out = []
    for path in sorted(directory.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        rcpts = tuple(r.strip() for r in str(msg.get(RCPT_HEADER, "")).split(",") if r.strip())
        out.append(SinkMail(str(msg.get("X-Mailsink-Mail-From", "")), rcpts, msg))
    return out


def _identity(rcpts, message_id: str | None, date: str | None) -> tuple | None:
    """What makes two deliveries the same mail; None for a mail without a Message-ID."""
    if not message_id:
        return None
    return (tuple(sorted(r.lower() for r in rcpts)), message_id.strip(), (date or "").strip())


class _Handler:
    def __init__(self, directory: Path, delay: float, ack_delay: float) -> None:
        self.directory = directory
        self.delay = delay
        self.ack_delay = ack_delay
        (directory / DUPLICATES).mkdir(exist_ok=True)
        existing = [int(p.name[:6]) for d in (directory, directory / DUPLICATES)
                    for p in d.glob("*.eml") if p.name[:6].isdigit()]
        self._seq = itertools.count(max(existing, default=0) + 1)
        self._delivered = {_identity(m.rcpt_tos, m.message_id, m.message["Date"]) for m in _read(directory)}

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001 - aiosmtpd API
        if self.delay:
            await asyncio.sleep(self.delay)  # a slow mail server
        head = (f"{RCPT_HEADER}: {', '.join(envelope.rcpt_tos)}\r\n"
                f"X-Mailsink-Mail-From: {envelope.mail_from}\r\n").encode()
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8")
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        identity = _identity(envelope.rcpt_tos, parsed["Message-ID"], parsed["Date"])
        repeat = identity is not None and identity in self._delivered
        folder = self.directory / DUPLICATES if repeat else self.directory
        seq = next(self._seq)
        tmp = folder / f".{seq:06d}.tmp"
        tmp.write_bytes(head + data)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        tmp.rename(folder / f"{seq:06d}.eml")
        if identity is not None:
            self._delivered.add(identity)
        if self.ack_delay:
            await asyncio.sleep(self.ack_delay)  # stored, not yet acknowledged: RFC 1047's window
        return "250 Message accepted for delivery"


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start_mailsink(directory: str | Path, *, host: str = "127.0.0.1", port: int = 0,
                   delay: float = 0.0, ack_delay: float = 0.0) -> MailsinkHandle:
    """Start an SMTP server on ``host`` (``port`` 0: a free one); mails land in ``directory``.

    ``delay``: seconds before a received mail is stored (a slow server); ``ack_delay``: seconds
    between storing it and answering ``250`` (a sender dying then cannot know it arrived).
    """
    from aiosmtpd.controller import Controller

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    last: Exception | None = None
    for _ in range(5):
        chosen = port or _free_port(host)
        controller = Controller(_Handler(directory, delay, ack_delay), hostname=host, port=chosen,
                                data_size_limit=64 * 1024 * 1024, ready_timeout=10)
        try:
            controller.start()
        except (OSError, RuntimeError) as exc:  # the port was taken between choice and bind
            last = exc
            if port:
                raise
            continue
        lock = threading.Lock()

        def stop(controller=controller) -> None:
            with lock:
                if getattr(controller, "_thread", None) is not None:
                    controller.stop()

        return MailsinkHandle(host, chosen, directory, stop)
    raise RuntimeError(f"the mail sink could not start: {last}")


def main(argv: list[str] | None = None) -> int:
    import argparse
    import time

    parser = argparse.ArgumentParser(prog="python -m docpost_testbench.mailsink")
    parser.add_argument("directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    handle = start_mailsink(args.directory, host=args.host, port=args.port)
    print(f"docpost-mailsink listening on {handle.host}:{handle.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        handle.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
