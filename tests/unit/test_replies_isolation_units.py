"""Fault isolation of reply routing, without servers: untrusted values made safe in the mail (or
refused with a code), and one pass over a SQLite ledger with a fake inbound service and a fake
SMTP transport: one message's trouble stays its own, infrastructure trouble stops the pass, and
nothing is acknowledged that was not mailed or queued."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import logging
from email.message import EmailMessage

import pytest

from docpost.channels.inbound import InboundItem, InboundProtocolError, InboundUnavailable
from docpost.hierarchy import load_hierarchy
from docpost.replies import mail as mailmod
from docpost.replies import service
from docpost.replies.errors import MailRefused, MailTooLarge, MailUnavailable, MailUnsafe
from docpost.replies.parsing import parse_inbound
from docpost.replies.store import ReplyStore
from poison.inbound import (CPR, EMNE_ID, MAILED, MANUAL, check, corpus, good, header_problems, memo,
                            raw_problems)

TODAY = dt.date(2026, 11, 27)
H = load_hierarchy()
EMNE = H.emne(EMNE_ID)
DATE = dt.datetime(2026, 11, 27, 8, 30, tzinfo=dt.timezone.utc)
CORPUS = corpus()
BY_NAME = {c.name: c for c in CORPUS}
SECRET = f"the citizen wrote {CPR}"  # the text of a planted exception: never logged or stored


def compose(message, memo_bytes, **kw) -> EmailMessage:
    args = dict(inbound_id="in-1", message=message, emne=EMNE, postkasse_label="Borgerservice",
                original=None, rule="contact-point", assigned_by=None, memo=memo_bytes,
                sender="docpost@soeby.dk", address="borgerservice@soeby.dk", mailbox=EMNE.mailbox, date=DATE)
    args.update(kw)
    return mailmod.compose(**args)


def reparse(mail: EmailMessage) -> EmailMessage:
    return email.message_from_bytes(mail.as_bytes(), policy=email.policy.default)


# ----------------------------------------------------------------------------- untrusted values


@pytest.mark.parametrize("value, expected", [
    ("Klage\r\nBcc: x@y.dk", "Klage Bcc: x@y.dk"),
    ("a\x00b\x1bc\x7fd\x85e\x9bf", "a b c d e f"),
    ("ret\u2028linje\u2029afsnit\u202eRLO\ufeffBOM\u200bZW", "ret linje afsnit RLO BOM ZW"),
    ("  mange    mellemrum\t\t", "mange mellemrum"),
    ("=?utf-8?q?=0D=0ABcc:_x?=", "=\u200b?utf-8?q?=0D=0ABcc:_x?="),
    ("Æblegrød 😀", "Æblegrød 😀"),
    (None, ""),
])
def test_header_text_is_one_safe_line(value, expected):
    assert mailmod.header_text(value) == expected


def test_header_text_is_bounded():
    assert len(mailmod.header_text("x" * 10_000, 200)) == 200
    assert mailmod.header_text("x" * 10_000, 200).endswith("\u2026")


@pytest.mark.parametrize("name, expected", [
    ("../../etc/passwd", "etc_passwd"),
    ("..\\..\\boot.ini", "boot.ini"),
    ("..", "dokument"),
    ("", "dokument"),
    ("bilag.pdf\r\nX-Evil: 1", "bilag.pdf__X-Evil_ 1"),
    ("=?utf-8?q?evil?=.pdf", "utf-8_q_evil__.pdf"),
    ("faktura\u202efdp.exe", "faktura_fdp.exe"),
    ('a"b;c%d.pdf', "a_b_c_d.pdf"),
    ("CON.txt", "_CON.txt"),
    (".bashrc", "bashrc"),
    ("Ansøgning om tilskud.pdf", "Ansøgning om tilskud.pdf"),
    ("A" * 250 + ".pdf", "A" * 116 + ".pdf"),
])
def test_attachment_filenames_are_made_safe(name, expected):
    assert mailmod.attachment_filename(name) == expected


@pytest.mark.parametrize("mime, expected", [
    ("application/pdf", ("application", "pdf")),
    ("Text/Plain; charset=latin-1", ("text", "plain")),
    ("multipart/mixed", ("application", "octet-stream")),
    ("message/rfc822", ("application", "octet-stream")),
    ("application/pdf\r\nBcc: x", ("application", "octet-stream")),
    ("pdf", ("application", "octet-stream")),
    ("", ("application", "octet-stream")),
])
def test_attachment_types_are_tokens_and_never_mail_structure(mime, expected):
    assert mailmod.attachment_type(mime) == expected


def test_body_text_has_no_control_characters_but_keeps_lines():
    assert mailmod.body_text("a\r\nb\rc\x00d\x1be\tf") == "a\nb\nc\ufffdd\ufffde\tf"


def test_the_email_package_alone_decodes_an_encoded_word_into_an_injected_header():
    """Why header_text breaks every "=?": Python's email package decodes an RFC 2047 encoded word
    in a header set from a str and writes the decoded CR LF out raw."""
    naive = EmailMessage()
    naive["Subject"] = BY_NAME["title-encoded-word-crlf"].subject_has[0]
    naive.set_content("x")
    assert raw_problems(naive.as_bytes()) == ["an injected header line"]
    with pytest.raises(MailUnsafe) as info:
        mailmod.check_headers(naive)  # the gate refuses what the email package made of it
    assert info.value.code == "mail.unsafe-header"


@pytest.mark.parametrize("address", ["x@y.dk\r\nBcc: z@y.dk", "x@y.dk, z@y.dk", "<x@y.dk>", "", "x y@z.dk",
                                     "x@", "@y.dk", "x@y.dk\x00"])
def test_an_address_that_is_not_plain_is_refused(address):
    with pytest.raises(MailUnsafe) as info:
        mailmod.check_address(address)
    assert info.value.code == "mail.unsafe-address"
    message = parse_inbound(good("addr"))
    with pytest.raises(MailUnsafe):
        compose(message, good("addr"), address=address)


@pytest.mark.parametrize("case", [c for c in CORPUS if c.outcome == MAILED or c.code.startswith("mail.")],
                         ids=lambda c: c.name)
def test_every_readable_poison_is_composed_safely_or_refused_with_its_code(case):
    message = parse_inbound(case.memo)
    if case.outcome == MANUAL:
        with pytest.raises(MailTooLarge) as info:
            compose(message, case.memo)
        assert info.value.code == case.code
        return
    mail = compose(message, case.memo, inbound_id="poison-" + case.name)
    data = mail.as_bytes()
    assert raw_problems(data) == []
    back = email.message_from_bytes(data, policy=email.policy.default)
    assert header_problems(back) == []
    assert sorted(back.keys()) == sorted(["Subject", "From", "To", "Date", "Message-ID", "X-Docpost-Inbound-Id",
                                          "X-Docpost-Emne", "X-Docpost-Mailbox", "MIME-Version", "Content-Type"])
    assert back["To"] == "borgerservice@soeby.dk" and back["X-Docpost-Emne"] == str(EMNE_ID)
    subject = str(back["Subject"]).replace("\u200b", "")
    assert all(s in subject for s in case.subject_has), subject
    body = back.get_body(preferencelist=("plain",)).get_content()
    assert all(s in body for s in case.body_has)
    parts = {a.get_filename(): a.get_content_type() for a in back.iter_attachments()}
    if case.attachments is not None:
        assert sorted(n for n in parts if n != "memo.xml") == sorted(case.attachments)
    assert all(parts[n] == t for n, t in case.types.items())
    assert CPR not in subject and CPR not in body


def test_a_mail_larger_than_the_limit_is_refused_before_it_is_built(monkeypatch):
    data = memo("big", attachments=[("a.pdf", "application/pdf", bytes(30_000))])
    message = parse_inbound(data)
    assert compose(message, data)  # the default limit takes it
    monkeypatch.setenv("DOCPOST_MAIL_MAX_BYTES", "50000")
    with pytest.raises(MailTooLarge):
        compose(message, data)


def test_a_superscript_postkasse_number_is_no_number():
    m = parse_inbound(BY_NAME["legacy-superscript-postkasse"].memo)
    assert m.legacy == (None, 1001) and m.contact_point_id is None


def test_odd_service_ids_are_recorded_under_a_digest():
    assert service.inbound_key("in-0b7c") == "in-0b7c"
    odd = service.inbound_key("a b/../c?\r\n" + "x" * 200)
    assert odd.startswith("sha256:") and len(odd) == 47
    assert service.inbound_key("x" * 51).startswith("sha256:") and service.inbound_key("x" * 50) == "x" * 50


# ----------------------------------------------------------------------------- one pass, with fakes


class FakeInbound:
    """The inbound service: what is not acknowledged is delivered again on every pull."""

    def __init__(self, items: list[tuple[str, bytes]]) -> None:
        self.items = list(items)
        self.acked: list[str] = []
        self.refuse_ack: set[str] = set()
        self.unavailable_after: int | None = None  # acks before the service goes away

    def add(self, items: list[tuple[str, bytes]]) -> None:
        self.items += items

    def pull(self, limit: int) -> list[InboundItem]:
        return [InboundItem(i, m) for i, m in self.items if i not in self.acked][:limit]

    def ack(self, inbound_id: str) -> None:
        if self.unavailable_after is not None and len(self.acked) >= self.unavailable_after:
            raise InboundUnavailable("inbound endpoint unreachable: ConnectError")
        if inbound_id in self.refuse_ack:
            raise InboundProtocolError("inbound endpoint refused POST /sim/inbound/x/ack: HTTP 404")
        if inbound_id not in self.acked:
            self.acked.append(inbound_id)

    @property
    def pending(self) -> set[str]:
        return {i for i, _ in self.items} - set(self.acked)


class FakeSmtp:
    class settings:  # noqa: N801 - what the pass reads of SmtpTransport
        sender = "docpost@soeby.dk"

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []
        self.down = False
        self.refuse: set[str] = set()

    def send(self, message: EmailMessage, recipients: list[str]) -> None:
        if self.down:
            raise MailUnavailable("cannot reach the SMTP server localhost:25: ConnectionRefusedError")
        if set(recipients) & self.refuse:
            raise MailRefused("the SMTP server refused the functional mailbox address")
        self.sent.append(message)

    def close(self) -> None:
        pass

    def ids(self) -> list[str]:
        return [str(m["X-Docpost-Inbound-Id"]) for m in self.sent]


@pytest.fixture()
def led(tmp_path):
    from docpost.ledger import Ledger

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.upgrade()
    return ledger


def run(led, inbound, smtp, **kw):  # noqa: ANN001, ANN201
    return service.process_inbound("test:isolation", client=inbound, transport=smtp, ledger=led,
                                   today=TODAY, **kw)


def states(led) -> dict[str, tuple[str, str | None]]:  # noqa: ANN001
    return {r.inbound_id: (r.state, r.reason_code) for r in ReplyStore(led).records()}


def goods(n: int, prefix: str = "g") -> list[tuple[str, bytes]]:
    return [(f"{prefix}{i}", good(f"{prefix}{i}", label=f"Spørgsmål {prefix}{i}")) for i in range(n)]


def marked(name: str) -> tuple[str, bytes]:
    return name, good(name, label=f"MARK {name}")


@pytest.mark.parametrize("stage", ["parse", "route", "compose", "mail-address"])
def test_an_unexpected_exception_puts_that_message_in_the_manual_queue_and_the_pass_goes_on(
        led, monkeypatch, caplog, stage):
    """Any exception while handling one message (a bug, a library's) is that message's: manual
    with internal.<ExceptionType>; only its type reaches the log and the tables, never its text."""
    boom = {"parse": KeyError, "route": ZeroDivisionError, "compose": RuntimeError,
            "mail-address": AttributeError}[stage]

    def planted(original, is_marked):  # noqa: ANN001, ANN202
        def wrapper(*args, **kw):
            if is_marked(*args, **kw):
                raise boom(SECRET)
            return original(*args, **kw)
        return wrapper

    if stage == "parse":
        monkeypatch.setattr(service, "parse_inbound", planted(service.parse_inbound, lambda data: b"MARK" in data))
    elif stage == "route":
        monkeypatch.setattr(service, "route", planted(service.route, lambda m, *a: m.label.startswith("MARK")))
    elif stage == "compose":
        monkeypatch.setattr(mailmod, "compose", planted(mailmod.compose,
                                                        lambda **kw: kw["message"].label.startswith("MARK")))
    else:
        seen = []

        def odd_once(mailbox):  # noqa: ANN001, ANN202 - fails for the second message only
            seen.append(mailbox)
            if len(seen) == 2:
                raise boom(SECRET)
            return original(mailbox)

        original = mailmod.mail_address
        monkeypatch.setattr(mailmod, "mail_address", odd_once)
    items = goods(2, "a") + [marked("m1")] + goods(2, "b")
    inbound, smtp = FakeInbound(items), FakeSmtp()
    caplog.set_level(logging.DEBUG)
    result = run(led, inbound, smtp)
    code = f"internal.{boom.__name__}"
    bad = "a1" if stage == "mail-address" else "m1"
    assert states(led)[bad] == (MANUAL, code)
    assert {i: s for i, s in states(led).items() if i != bad} == {i: (MAILED, None) for i, _ in items if i != bad}
    assert sorted(smtp.ids()) == sorted(i for i, _ in items if i != bad)
    assert sorted(inbound.acked) == sorted(i for i, _ in items) and result["acked"] == len(items)
    assert result[f"manual:{code}"] == 1
    assert CPR not in caplog.text and "citizen wrote" not in caplog.text and code in caplog.text
    record = ReplyStore(led).get(bad)
    assert CPR not in (record.reason_text or "") and "citizen wrote" not in (record.reason_text or "")
    assert ReplyStore(led).payload(record) is not None  # kept: it can be assigned once fixed


def test_a_mail_too_large_waits_with_its_code_and_the_others_are_mailed(led, monkeypatch):
    monkeypatch.setenv("DOCPOST_MAIL_MAX_BYTES", "60000")
    big = ("big", memo("big", attachments=[("a.pdf", "application/pdf", bytes(40_000))]))
    inbound, smtp = FakeInbound(goods(2, "a") + [big] + goods(1, "b")), FakeSmtp()
    run(led, inbound, smtp)
    assert states(led)["big"] == (MANUAL, "mail.too-large")
    assert sorted(smtp.ids()) == ["a0", "a1", "b0"] and inbound.pending == set()
    mail = ReplyStore(led).mail(ReplyStore(led).get("big"))
    assert mail.state == "sending"  # never sent; a manual assignment drops it and mails anew


def test_the_whole_corpus_in_one_pass(led):
    items = [(f"poison-{c.name}", c.memo) for c in CORPUS] + goods(3)
    inbound, smtp = FakeInbound(items), FakeSmtp()
    result = run(led, inbound, smtp, batch_size=7)
    injected = {f"poison-{c.name}": c for c in CORPUS} | {i: m for i, m in goods(3)}
    assert check(injected, mails=smtp.sent, ledger=led) == []
    assert [p for m in smtp.sent for p in raw_problems(m.as_bytes())] == []
    assert inbound.pending == set() and result["acked"] == len(items)


def test_smtp_down_stops_the_pass_acknowledges_nothing_more_and_makes_nothing_final(led):
    items = [("manual-first", BY_NAME["title-nul"].memo)] + goods(3) + [("manual-last", BY_NAME["utf16"].memo)]
    inbound, smtp = FakeInbound(items), FakeSmtp()
    smtp.down = True
    with pytest.raises(MailUnavailable):
        run(led, inbound, smtp)
    assert inbound.acked == ["manual-first"]  # queued before the server was found down
    assert states(led) == {"manual-first": (MANUAL, "inbound.malformed"), "g0": ("ROUTED", None)}
    assert ReplyStore(led).mail(ReplyStore(led).get("g0")).state == "sending"

    with pytest.raises(MailUnavailable):  # still down: the routed one first, nothing pulled
        run(led, inbound, smtp)
    assert inbound.acked == ["manual-first"] and set(states(led)) == {"manual-first", "g0"}

    smtp.down = False
    result = run(led, inbound, smtp)
    assert inbound.pending == set() and sorted(smtp.ids()) == ["g0", "g1", "g2"]
    assert result["mailed"] == 3 and states(led)["manual-last"] == (MANUAL, "inbound.malformed")


def test_a_refused_mail_is_queued_and_acknowledged_the_pass_goes_on(led):
    inbound, smtp = FakeInbound(goods(3)), FakeSmtp()
    smtp.refuse = {"borgerservice@soeby.dk"}
    result = run(led, inbound, smtp)
    assert {s for s in states(led).values()} == {(MANUAL, "mail.refused")}
    assert result["mail_refused"] == 3 and inbound.pending == set()


def test_a_message_whose_mail_is_not_sent_is_not_acknowledged(led, monkeypatch):
    """Routed but not mailed (another worker holds its mail): delivered again, not acknowledged."""
    original = ReplyStore.claim_mail

    def busy_for_g1(self, record, *a, **kw):  # noqa: ANN001, ANN202
        mail, status = original(self, record, *a, **kw)
        return (mail, "busy") if record.inbound_id == "g1" else (mail, status)

    monkeypatch.setattr(ReplyStore, "claim_mail", busy_for_g1)
    monkeypatch.setenv("DOCPOST_CLAIM_LEASE_SECONDS", "0")  # the other worker's claim runs out at once
    inbound, smtp = FakeInbound(goods(3)), FakeSmtp()
    result = run(led, inbound, smtp)
    assert sorted(inbound.acked) == ["g0", "g2"] and result["unacked"] == 1
    monkeypatch.setattr(ReplyStore, "claim_mail", original)
    run(led, inbound, smtp)
    assert inbound.pending == set() and sorted(smtp.ids()) == ["g0", "g1", "g2"]


def test_an_ack_refused_for_one_message_does_not_stop_the_others(led):
    inbound, smtp = FakeInbound(goods(4)), FakeSmtp()
    inbound.refuse_ack = {"g1"}
    with pytest.raises(InboundProtocolError):
        run(led, inbound, smtp)
    assert sorted(inbound.acked) == ["g0", "g2", "g3"]
    inbound.refuse_ack = set()
    result = run(led, inbound, smtp)
    assert inbound.pending == set() and result["redelivered"] == 1 and not result.get("mailed")
    assert sorted(smtp.ids()) == ["g0", "g1", "g2", "g3"]  # mailed once


def test_inbound_service_gone_while_acknowledging_stops_the_pass(led):
    inbound, smtp = FakeInbound(goods(4)), FakeSmtp()
    inbound.unavailable_after = 1
    with pytest.raises(InboundUnavailable):
        run(led, inbound, smtp)
    assert inbound.acked == ["g0"] and set(states(led)) == {"g0", "g1"}  # g1 mailed, not acked
    inbound.unavailable_after = None
    run(led, inbound, smtp)
    assert inbound.pending == set() and sorted(smtp.ids()) == ["g0", "g1", "g2", "g3"]


@pytest.mark.parametrize("where, at", [("decide", 3), ("receive", 3), ("payload", 1)])
def test_a_dropped_database_stops_the_pass_and_makes_nothing_final(led, monkeypatch, where, at):
    from sqlalchemy.exc import OperationalError

    calls = {"n": 0}
    original = getattr(ReplyStore, where)

    def dropped(self, *a, **kw):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == at:
            raise OperationalError("UPDATE reply_inbound ...", {}, Exception("server closed the connection"))
        return original(self, *a, **kw)

    inbound, smtp = FakeInbound(goods(5)), FakeSmtp()
    if where == "payload":  # the unmailed phase: a routed message left by a pass with SMTP down
        smtp.down = True
        with pytest.raises(MailUnavailable):
            run(led, inbound, smtp)
        smtp.down = False
        assert states(led) == {"g0": ("ROUTED", None)} and inbound.acked == []
    monkeypatch.setattr(ReplyStore, where, dropped)
    with pytest.raises(OperationalError):
        run(led, inbound, smtp)
    handled = {i for i, (s, _) in states(led).items() if s in (MAILED, MANUAL)}
    assert set(inbound.acked) <= handled and MANUAL not in {s for s, _ in states(led).values()}
    assert len(inbound.acked) == (0 if where == "payload" else 2)
    monkeypatch.setattr(ReplyStore, where, original)
    run(led, inbound, smtp)
    assert inbound.pending == set() and sorted(set(smtp.ids())) == [f"g{i}" for i in range(5)]
    assert len(smtp.ids()) == 5


def test_a_routed_message_whose_stored_mail_cannot_be_composed_is_queued_by_the_next_pass(led, monkeypatch):
    inbound, smtp = FakeInbound([marked("m1")] + goods(2)), FakeSmtp()
    smtp.down = True
    with pytest.raises(MailUnavailable):
        run(led, inbound, smtp)
    assert states(led) == {"m1": ("ROUTED", None)}
    smtp.down = False
    original = mailmod.compose

    def fails_for_mark(**kw):  # noqa: ANN202
        if kw["message"].label.startswith("MARK"):
            raise UnicodeEncodeError("utf-8", SECRET, 0, 1, "planted")
        return original(**kw)

    monkeypatch.setattr(mailmod, "compose", fails_for_mark)
    result = run(led, inbound, smtp)  # m1 from its stored MeMo, in the unmailed phase
    assert states(led)["m1"] == (MANUAL, "internal.UnicodeEncodeError")
    assert result["compose_failed"] == 1 and result["redelivered"] == 1
    assert inbound.pending == set() and sorted(smtp.ids()) == ["g0", "g1"]
