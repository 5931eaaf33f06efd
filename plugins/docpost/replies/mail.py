"""Mail to functional mailboxes over SMTP (smtplib), and the one seam to Airflow's SMTP connection.

Settings (:mod:`docpost.settings`): ``DOCPOST_SMTP_HOST`` / ``DOCPOST_SMTP_PORT`` (and optional
``DOCPOST_SMTP_USER``, ``DOCPOST_SMTP_PASSWORD``, ``DOCPOST_SMTP_STARTTLS=1``, ``DOCPOST_SMTP_SSL=1``,
``DOCPOST_SMTP_TIMEOUT``, ``DOCPOST_MAIL_FROM``); without a host, under Airflow
(:func:`docpost.settings.under_airflow`), the ``smtp_default`` connection as the SMTP provider's
``SmtpHook`` reads it. A Message-ID derived from the inbound id makes a resend after a crash
recognisable as the same mail.

Everything a citizen wrote is untrusted: the title, the file names and MIME types of the documents,
the text. :func:`header_text`, :func:`attachment_filename` and :func:`attachment_type` make such
values safe before they reach a header (no line breaks or other control characters, no RFC 2047
encoded-word syntax the email package would decode into a line break, bounded length);
:func:`check_headers` then refuses (:class:`MailUnsafe`) any mail whose folded headers are not
each one logical line, whatever produced them; :class:`MailTooLarge` refuses a mail larger than
the mail server takes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import smtplib
import re
import socket
import ssl
import unicodedata
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

from pydantic import SecretStr

from docpost.replies.errors import MailRefused, MailTooLarge, MailUnavailable, MailUnsafe
from docpost.settings import DEFAULT_MAIL_FROM as DEFAULT_FROM
from docpost.settings import SMTP_CONN_ID, settings, smtp_from_airflow, under_airflow

MAIL_DOMAIN = "docpost.soeby.dk"
MAX_TITLE_CHARS = 200  # of the citizen's title in the Subject
MAX_SUBJECT_CHARS = 400
MAX_FILENAME_CHARS = 120


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    user: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    use_ssl: bool = False
    sender: str = DEFAULT_FROM
    timeout: float = 30.0

    def __repr__(self) -> str:  # no password in reprs
        return f"SmtpSettings({self.host}:{self.port}, starttls={self.starttls}, ssl={self.use_ssl})"


def _airflow_smtp(conn_id: str = SMTP_CONN_ID) -> SmtpSettings | None:
    """The Airflow SMTP connection as the SMTP provider's ``SmtpHook`` reads it, or None.

    The only place reply routing reaches Airflow (through :func:`docpost.settings.smtp_from_airflow`).
    """
    found = smtp_from_airflow(conn_id)
    if found is None:
        return None
    return SmtpSettings(**{**found, "sender": found["sender"] or settings().mail_from})


def smtp_settings() -> SmtpSettings:
    """SMTP settings from ``DOCPOST_SMTP_*``, else (under Airflow) ``smtp_default``, else localhost:25."""
    s = settings()
    if not s.smtp_host and under_airflow(SMTP_CONN_ID):
        found = _airflow_smtp()
        if found is not None:
            return found
    return SmtpSettings(
        host=s.smtp_host or "localhost", port=s.smtp_port, user=s.smtp_user, password=s.smtp_password,
        starttls=s.smtp_starttls, use_ssl=s.smtp_ssl, sender=s.mail_from, timeout=s.smtp_timeout)


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
                smtp.login(s.user, s.password.get_secret_value() if s.password else "")
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


# --------------------------------------------------------------------------- untrusted values

# what never goes into a header: control characters (C0, C1, DEL), format characters (bidi
# overrides, zero-width, BOM), surrogates, line and paragraph separators
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_FILENAME_FORBIDDEN = re.compile(r'[<>:"/\\|?*%;=]')
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\.|$)", re.IGNORECASE)
_MIME_TOKEN = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")
_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_BODY_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
NO_ENCODED_WORD = "=\u200b?"  # "=?" with a zero-width space: shown as written, never decoded


def _printable(value: str, replacement: str) -> str:
    return "".join(replacement if unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch for ch in value)


def _shorten(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "\u2026"


def header_text(value: object, limit: int = MAX_SUBJECT_CHARS) -> str:
    """An untrusted value made fit for an unstructured header: one line, at most ``limit``
    characters, no control or format characters, and no ``=?`` (the email package would decode
    an RFC 2047 encoded word in it, line breaks included, and write them out raw)."""
    text = " ".join(_printable(str(value or ""), " ").split())
    return _shorten(text, limit).replace("=?", NO_ENCODED_WORD)


def attachment_filename(name: object, default: str = "dokument", limit: int = MAX_FILENAME_CHARS) -> str:
    """An untrusted file name made safe to offer in a mail: no directories (``/``, ``\\``,
    ``..``), no control characters, no characters Windows or RFC 2231 trip over, bounded length
    (the extension kept), never empty."""
    text = _FILENAME_FORBIDDEN.sub("_", _printable(str(name or ""), "_"))
    text = " ".join(text.split()).strip(" ._")
    if not text.strip("_ "):
        text = default
    if _WINDOWS_RESERVED.match(text):
        text = f"_{text}"
    if len(text) > limit:
        stem, dot, ext = text.rpartition(".")
        ext = f".{ext}" if dot and 0 < len(ext) <= 10 else ""
        text = (stem if ext else text)[: limit - len(ext)].rstrip(" ._") + ext
    return text


def attachment_type(mime: object) -> tuple[str, str]:
    """(maintype, subtype) of an untrusted MIME type; anything odd, and any container type that
    a mail reader would open as mail structure (``multipart/*``, ``message/*``), becomes
    ``application/octet-stream``."""
    value = str(mime or "").split(";")[0].strip().lower()
    if not _MIME_TOKEN.match(value):
        return "application", "octet-stream"
    maintype, _, subtype = value.partition("/")
    if maintype in ("multipart", "message"):
        return "application", "octet-stream"
    return maintype, subtype


def body_text(text: str) -> str:
    """The citizen's text for the mail body: line ends normalised, control characters shown as
    U+FFFD (a NUL or a stray CR has no place in a mail)."""
    return _BODY_CONTROLS.sub("\ufffd", text.replace("\r\n", "\n").replace("\r", "\n"))


def check_address(address: str) -> str:
    """A plain ``local@domain`` address, or :class:`MailUnsafe` (``mail.unsafe-address``)."""
    if not isinstance(address, str) or len(address) > 254 or not _ADDRESS.match(address):
        raise MailUnsafe("the functional mailbox's address is not a plain e-mail address",
                         code="mail.unsafe-address")
    return address


def check_headers(mail: EmailMessage) -> None:
    """Refuse (:class:`MailUnsafe`) a mail any of whose headers, in any part, folds into more than
    one logical line or carries a NUL or line break in its value: no header can be injected."""
    for part in mail.walk():
        for name, value in part.items():
            decoded = str(value)
            if any(ch in decoded for ch in "\r\n\x00"):
                raise MailUnsafe(f"the {name} header of the mail would carry a line break or NUL")
            folded = part.policy.fold(name, value)
            lines = folded.split(part.policy.linesep)
            if lines and lines[-1] == "":
                lines.pop()
            if (not lines or not lines[0].lower().startswith(f"{name.lower()}:")
                    or any(ch in line for line in lines for ch in "\r\n\x00")
                    or any(line[:1] not in (" ", "\t") for line in lines[1:])
                    or any(len(line) > 998 for line in lines)):
                raise MailUnsafe(f"the {name} header of the mail does not fold into one header")


def estimated_size(message, memo: bytes) -> int:  # noqa: ANN001 - parsing.InboundMessage
    """What the mail will weigh: base64 of the documents and the MeMo, the text, some headers."""
    raw = len(memo) + sum(len(a.content) for a in message.attachments) + len(message.text.encode("utf-8"))
    return raw * 4 // 3 + 2048 * (len(message.attachments) + 2)


def max_mail_bytes() -> int:
    """The largest mail the server takes: ``DOCPOST_MAIL_MAX_BYTES`` (default 25 MiB)."""
    return settings().mail_max_bytes


# --------------------------------------------------------------------------- the mail


def compose(*, inbound_id: str, message, emne, postkasse_label: str | None, original,  # noqa: ANN001
            rule: str | None, assigned_by: str | None, memo: bytes, sender: str,
            address: str, mailbox: str, date: dt.datetime, max_bytes: int | None = None) -> EmailMessage:
    """The mail for one routed inbound message (``message`` is a parsed InboundMessage).

    ``date`` is when the mail was first claimed: a resend carries the same Date and Message-ID,
    the two properties by which a mailbox store recognises a duplicate delivery.

    The citizen's values are made safe (:func:`header_text`, :func:`attachment_filename`,
    :func:`attachment_type`, :func:`body_text`); what cannot be made safe is refused with
    :class:`MailUnsafe`, a mail too large with :class:`MailTooLarge` (both before anything is sent).
    """
    limit = max_mail_bytes() if max_bytes is None else max_bytes
    size = estimated_size(message, memo)
    if size > limit:
        raise MailTooLarge(f"the mail would be about {size // (1024 * 1024)} MB, more than the "
                           f"{limit // (1024 * 1024)} MB the mail server takes")
    check_address(address)
    case = header_text(original.case_number, 100) if original is not None and original.case_number else None
    subject = f"[Sag {case}] " if case else ""
    subject += f"{header_text(emne.label, 200)}: {header_text(message.label, MAX_TITLE_CHARS) or 'Henvendelse'}"
    mail = EmailMessage()
    mail["Subject"] = _shorten(subject, MAX_SUBJECT_CHARS)  # its parts are made safe above
    mail["From"] = sender
    mail["To"] = address
    mail["Date"] = formatdate(date.timestamp(), usegmt=True)
    mail["Message-ID"] = message_id_for(inbound_id)
    mail["X-Docpost-Inbound-Id"] = header_text(inbound_id, 100)
    mail["X-Docpost-Emne"] = str(int(emne.id))
    mail["X-Docpost-Mailbox"] = header_text(mailbox, 512)
    if original is not None:
        uuid_ = str(original.message_uuid or "").lower()
        mail["X-Docpost-Original-Message-UUID"] = header_text(uuid_, 64)
        if _UUID.match(uuid_):
            mail["In-Reply-To"] = original_reference(uuid_)
            mail["References"] = original_reference(uuid_)
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
        lines.append(f"Svar på brev: messageUUID {original.message_uuid}, sag {original.case_number or '-'}")
    elif message.reply_to:
        lines.append(f"Svar på ukendt brev: messageUUID {message.reply_to}")
    how = f"manuelt fordelt af {assigned_by}" if assigned_by else f"regel {rule}"
    lines += [f"Fordeling: {how} (docpost replies why {inbound_id})", "",
              "--- Beskedens tekst ---", message.text or "(ingen tekst)"]
    mail.set_content(body_text("\n".join(lines)))
    for att in message.attachments:
        maintype, subtype = attachment_type(att.mime)
        filename = attachment_filename(att.filename)
        if filename.lower() == "memo.xml":  # the MeMo itself is memo.xml
            filename = "bilag-memo.xml"
        mail.add_attachment(att.content, maintype=maintype, subtype=subtype, filename=filename)
    mail.add_attachment(memo, maintype="application", subtype="xml", filename="memo.xml")
    check_headers(mail)
    return mail
