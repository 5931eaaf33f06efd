"""The loopback mail sink: a real SMTP server that delivers a repeated mail only once."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import pytest

from docpost_testbench.mailsink import start_mailsink

pytestmark = pytest.mark.integration


def _mail(message_id: str | None, date: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"], mail["Date"] = "a@x.dk", "b@x.dk", "Emne", date
    if message_id:
        mail["Message-ID"] = message_id
    mail.set_content("tekst")
    return mail


def test_a_repeated_delivery_is_kept_out_of_the_mailbox(tmp_path):
    sink = start_mailsink(tmp_path)
    try:
        with smtplib.SMTP(sink.host, sink.port) as smtp:
            first = _mail("<m1@docpost>", "Fri, 27 Nov 2026 08:30:00 GMT")
            smtp.send_message(first)
            smtp.send_message(first)  # a resend: same recipient, Message-ID and Date
            smtp.send_message(_mail("<m1@docpost>", "Fri, 27 Nov 2026 08:31:00 GMT"))  # another submit time
            smtp.send_message(_mail(None, "Fri, 27 Nov 2026 08:30:00 GMT"))
            smtp.send_message(_mail(None, "Fri, 27 Nov 2026 08:30:00 GMT"))  # no Message-ID: never merged
            smtp.send_message(first, to_addrs=["c@x.dk"])  # the same mail to another mailbox
        assert len(sink.messages()) == 5
        (repeat,) = sink.duplicates()
        assert repeat.message_id == "<m1@docpost>" and repeat.rcpt_tos == ("b@x.dk",)
    finally:
        sink.stop()
    again = start_mailsink(tmp_path)  # what was delivered is remembered across a restart
    try:
        with smtplib.SMTP(again.host, again.port) as smtp:
            smtp.send_message(_mail("<m1@docpost>", "Fri, 27 Nov 2026 08:30:00 GMT"))
        assert len(again.messages()) == 5 and len(again.duplicates()) == 2
    finally:
        again.stop()
