"""Mail to functional mailboxes over SMTP (smtplib), and the one seam to Airflow's SMTP connection.

Settings: ``DOCPOST_SMTP_HOST`` / ``DOCPOST_SMTP_PORT`` (and optional ``DOCPOST_SMTP_USER``,
``DOCPOST_SMTP_PASSWORD``, ``DOCPOST_SMTP_STARTTLS=1``, ``DOCPOST_MAIL_FROM``); without a host,
under Airflow, the ``smtp_default`` connection. A Message-ID derived from the inbound id makes a
resend after a crash recognisable as the same mail.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

from docpost.replies.errors import MailRefused, MailUnavailable

MAIL_DOMAIN = "docpost.soeby.dk"
DEFAULT_FROM = "docpost@soeby.dk"
SMTP_CONN_ID = "smtp_default"


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    user: str | None = None
    password: str | None = None
    starttls: bool = False
    use_ssl: bool = False
    sender: str = DEFAULT_FROM
    timeout: float = 30.0

    def __repr__(self) -> str:  # no password in reprs
        return f"SmtpSettings({self.host}:{self.port}, starttls={self.starttls}, ssl={self.use_ssl})"


def _airflow_smtp(conn_id: str = SMTP_CONN_ID) -> SmtpSettings | None:
    """The Airflow SMTP connection (extras as the SMTP provider reads them), or None.

    The only place reply routing imports Airflow.
    """
    try:
        from airflow.sdk import Connection
    except ImportError:  # pragma: no cover
        return None
    try:
        conn = Connection.get(conn_id)
    except Exception:  # noqa: BLE001 - Airflow raises its own "not found" types
        return None
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    return SmtpSettings(
        host=conn.host or "localhost", port=int(conn.port or 25), user=conn.login or None,
        password=conn.password or None, starttls=not extra.get("disable_tls", False),
        use_ssl=not extra.get("disable_ssl", False),  # the SMTP provider's defaults
        sender=extra.get("from_email") or os.environ.get("DOCPOST_MAIL_FROM", DEFAULT_FROM),
        timeout=float(extra.get("timeout", 30)))


def smtp_settings() -> SmtpSettings:
    """SMTP settings from ``DOCPOST_SMTP_*``, else Airflow's ``smtp_default``, else localhost:25."""
    host = os.environ.get("DOCPOST_SMTP_HOST")
    if not host and (os.environ.get("AIRFLOW_CONN_SMTP_DEFAULT") or os.environ.get("AIRFLOW_CTX_DAG_ID")):
        found = _airflow_smtp()
        if found is not None:
            return found
    return SmtpSettings(
        host=host or "localhost", port=int(os.environ.get("DOCPOST_SMTP_PORT", "25")),
        user=os.environ.get("DOCPOST_SMTP_USER") or None,
        password=os.environ.get("DOCPOST_SMTP_PASSWORD") or None,
        starttls=os.environ.get("DOCPOST_SMTP_STARTTLS", "") in ("1", "true", "yes"),
        use_ssl=os.environ.get("DOCPOST_SMTP_SSL", "") in ("1", "true", "yes"),
        sender=os.environ.get("DOCPOST_MAIL_FROM", DEFAULT_FROM),
        timeout=float(os.environ.get("DOCPOST_SMTP_TIMEOUT", "30")))


def mail_address(mailbox: str) -> str:
    """The address to mail a functional mailbox at.

    An e-mail address is itself; a case-system queue URI (``sbsys://esdh.soeby.dk/koe/x``) is
    mailed to that system's mail-in gateway: ``koe.x@esdh.soeby.dk``.
    """
    if "://" not in mailbox:
        return mailbox.strip()
    _, _, rest = mailbox.partition("://")
    host, _, path = rest.partition("/")
    local = ".".join(p for p in path.split("/") if p) or "postmaster"
    return f"{local}@{host}"


def message_id_for(inbound_id: str) -> str:
    """The deterministic Message-ID of the mail for one inbound message."""
    digest = hashlib.sha256(f"docpost:reply-mail:1\x00{inbound_id}".encode()).hexdigest()[:32]
    return f"<reply-{digest}@{MAIL_DOMAIN}>"


def original_reference(message_uuid: str) -> str:
    """A Message-ID-shaped reference to the original letter (threads replies in mail clients)."""
    return f"<letter-{message_uuid}@{MAIL_DOMAIN}>"


class SmtpTransport:
    """One SMTP connection, opened on first use and reopened when the server dropped it."""

    def __init__(self, settings: SmtpSettings | None = None) -> None:
        self.settings = settings or smtp_settings()
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        try:
            if s.use_ssl:
                smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout,
                                        context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
                if s.starttls:
                    smtp.starttls(context=ssl.create_default_context())
            if s.user:
                smtp.login(s.user, s.password or "")
        except (OSError, smtplib.SMTPException) as exc:
            raise MailUnavailable(f"cannot reach the SMTP server {s.host}:{s.port}: "
                                  f"{type(exc).__name__}") from None
        return smtp

    def send(self, message: EmailMessage, recipients: list[str]) -> None:
        """Send one mail; :class:`MailUnavailable` (retry later) or :class:`MailRefused`."""
        for attempt in (1, 2):
            if self._smtp is None:
                self._smtp = self._connect()
            try:
                refused = self._smtp.send_message(message, from_addr=self.settings.sender,
                                                  to_addrs=recipients)
            except smtplib.SMTPServerDisconnected:
                self._smtp = None
                if attempt == 2:
                    raise MailUnavailable("the SMTP server closed the connection") from None
                continue
            except smtplib.SMTPRecipientsRefused:
                raise MailRefused("the SMTP server refused the functional mailbox address") from None
            except smtplib.SMTPResponseException as exc:
                if 400 <= exc.smtp_code < 500:
                    raise MailUnavailable(f"the SMTP server answered {exc.smtp_code} (temporary)") from None
                raise MailRefused(f"the SMTP server answered {exc.smtp_code}") from None
            except (OSError, socket.timeout) as exc:
                self._smtp = None
                raise MailUnavailable(f"SMTP send failed: {type(exc).__name__}") from None
            if refused:
                raise MailRefused("the SMTP server refused a recipient")
            return

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                pass
            self._smtp = None

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def compose(*, inbound_id: str, message, emne, postkasse_label: str | None, original,  # noqa: ANN001
            rule: str | None, assigned_by: str | None, memo: bytes, sender: str,
            address: str, mailbox: str, date: dt.datetime) -> EmailMessage:
    """The mail for one routed inbound message (``message`` is a parsed InboundMessage).

    ``date`` is when the mail was first claimed: a resend carries the same Date and Message-ID,
    the two properties by which a mailbox store recognises a duplicate delivery.
    """
    case = original.case_number if original is not None else None
    subject = f"[Sag {case}] " if case else ""
    subject += f"{emne.label}: {message.label or 'Henvendelse'}"
    mail = EmailMessage()
    mail["Subject"] = subject[:900]
    mail["From"] = sender
    mail["To"] = address
    mail["Date"] = formatdate(date.timestamp(), usegmt=True)
    mail["Message-ID"] = message_id_for(inbound_id)
    mail["X-Docpost-Inbound-Id"] = inbound_id
    mail["X-Docpost-Emne"] = str(emne.id)
    mail["X-Docpost-Mailbox"] = mailbox
    if original is not None:
        mail["X-Docpost-Original-Message-UUID"] = original.message_uuid
        mail["In-Reply-To"] = original_reference(original.message_uuid)
        mail["References"] = original_reference(original.message_uuid)
        if case:
            mail["X-Docpost-Case-Number"] = case
    lines = [
        f"Ny {'besvarelse' if message.is_reply else 'henvendelse'} via Digital Post til "
        f"{postkasse_label + ' / ' if postkasse_label else ''}{emne.label} (Emne {emne.id}).",
        "",
        f"Afsender: {message.sender_masked} ({message.sender_id_type or 'CPR'}); fuld identitet i "
        "vedhæftet memo.xml",
        f"Modtaget: {message.created or '-'}",
    ]
    if original is not None:
        lines.append(f"Svar på brev: messageUUID {original.message_uuid}, sag {case or '-'}")
    elif message.reply_to:
        lines.append(f"Svar på ukendt brev: messageUUID {message.reply_to}")
    how = f"manuelt fordelt af {assigned_by}" if assigned_by else f"regel {rule}"
    lines += [f"Fordeling: {how} (docpost replies why {inbound_id})", "",
              "--- Beskedens tekst ---", message.text or "(ingen tekst)"]
    mail.set_content("\n".join(lines))
    for att in message.attachments:
        maintype, _, subtype = att.mime.partition("/")
        mail.add_attachment(att.content, maintype=maintype or "application",
                            subtype=subtype or "octet-stream", filename=att.filename)
    mail.add_attachment(memo, maintype="application", subtype="xml", filename="memo.xml")
    return mail
