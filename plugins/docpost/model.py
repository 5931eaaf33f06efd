"""The domain types every stage shares: a submission and what it carries.

Plain frozen dataclasses, no I/O. ``docpost.submission`` builds them from a submission's
files (after validation); stamping, rendering and delivery read them.

The XML formats behind these types are defined in ``schemas/`` and documented in the README:

- ``manifest.xml`` -> :class:`Manifest` (namespace :data:`NS_MANIFEST`)
- ``att.xml`` -> :class:`Attention` (namespace :data:`NS_ATTENTION`, names from MeMo AttentionData)
- ``s&d.xml`` -> :class:`CaseDocument` (namespace :data:`NS_CASE`, names from FESD metadata)
- the letter text (``role="letter"``) -> :class:`Letter` (namespace :data:`NS_LETTER`)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from docpost.privacy import mask_identifier


NS_MANIFEST = "urn:docpost:manifest:1"
NS_ATTENTION = "urn:docpost:attention:1"
NS_CASE = "urn:docpost:sag-dokument:1"
NS_LETTER = "urn:docpost:letter:1"

MANIFEST_FILE = "manifest.xml"
ATTENTION_FILE = "att.xml"
CASE_FILE = "s&d.xml"
READY_MARKER = "_READY"


class IdType(StrEnum):
    """What kind of identifier a recipient has."""

    CPR = "CPR"
    CVR = "CVR"


class ChannelWish(StrEnum):
    """The source system's wish for the channel (``KombiValgKode`` at SF1601)."""

    AUTO = "auto"  # Automatisk Valg: digital where possible, else print
    DIGITAL = "digital"  # Digital Post only
    PHYSICAL = "physical"  # Fysisk Post only


class Channel(StrEnum):
    """The channel a message actually went by."""

    DIGITAL = "digital"
    PHYSICAL = "physical"


class FileRole(StrEnum):
    """The role of a content file named in the manifest."""

    LETTER = "letter"  # structured letter text, rendered to PDF by docpost
    MAIN = "main"  # a ready PDF: the main document as is
    ATTACHMENT = "attachment"  # a PDF appended or sent as an additional document


class ReplyType(StrEnum):
    """``MeddelelseSvarTypeNavn`` of old Digital Post."""

    GIVEN = "angivet"  # a reply Postkasse/Emne is given
    NOT_POSSIBLE = "ikkeMuligt"  # the letter cannot be answered


@dataclass(frozen=True)
class PostalAddress:
    """A Danish postal address, named after the DKCC elements of the KOMBIT schemas."""

    street_name: str
    street_building: str  # house number, e.g. "12B"
    postcode: str
    district_name: str  # the post town, e.g. "Aarhus C"
    floor: str | None = None
    suite: str | None = None  # door: "tv", "th", "2"
    co_name: str | None = None
    mail_delivery_sublocation: str | None = None  # place name line
    post_office_box: str | None = None
    country_code: str = "DK"

    def lines(self) -> list[str]:
        """The address lines below the name, as printed on an envelope."""
        out: list[str] = []
        if self.co_name:
            out.append(f"c/o {self.co_name}")
        street = f"{self.street_name} {self.street_building}".strip()
        unit = ", ".join(p for p in (f"{self.floor}." if self.floor else None, self.suite) if p)
        out.append(f"{street}, {unit}" if unit else street)
        if self.mail_delivery_sublocation:
            out.append(self.mail_delivery_sublocation)
        if self.post_office_box:
            out.append(f"Postboks {self.post_office_box}")
        out.append(f"{self.postcode} {self.district_name}")
        if self.country_code != "DK":
            out.append(self.country_code)
        return out


@dataclass(frozen=True)
class Recipient:
    """Who the letter is for. ``identifier`` is personal data: never log it, use ``masked``."""

    id_type: IdType
    identifier: str
    name: str
    address: PostalAddress | None = None

    @property
    def masked(self) -> str:
        return mask_identifier(self.identifier)

    def __repr__(self) -> str:  # keep CPR and names out of tracebacks and logs
        return f"Recipient({self.id_type.value} {self.masked})"


@dataclass(frozen=True)
class ReplyOverride:
    """The manifest's override of the sending profile's reply address.

    Exactly one of: an explicit ``postkasse_id``/``emne_id`` pair, ``no_reply`` (ikkeMuligt),
    or a named sending ``profile``.
    """

    postkasse_id: int | None = None
    emne_id: int | None = None
    no_reply: bool = False
    profile: str | None = None


@dataclass(frozen=True)
class ContentFile:
    """A content file named in the manifest."""

    name: str
    role: FileRole
    label: str | None = None  # shown as the document's title in Digital Post
    mime_type: str = "application/pdf"


@dataclass(frozen=True)
class Manifest:
    """``manifest.xml``: what the source system asks docpost to send."""

    recipient: Recipient
    title: str
    document_type: str
    channel_wish: ChannelWish = ChannelWish.AUTO
    files: tuple[ContentFile, ...] = ()
    reply_override: ReplyOverride | None = None
    not_before: dt.date | None = None
    case_reference: str | None = None
    mandatory: bool = False
    legal_notification: bool = False

    @property
    def main_file(self) -> ContentFile:
        """The letter text or the ready main PDF (the schema guarantees exactly one)."""
        return next(f for f in self.files if f.role in (FileRole.LETTER, FileRole.MAIN))

    @property
    def attachments(self) -> tuple[ContentFile, ...]:
        return tuple(f for f in self.files if f.role is FileRole.ATTACHMENT)


@dataclass(frozen=True)
class KleRef:
    """A KLE classification: subject key (``27.12.00``) and optional activity facet (``A00``)."""

    subject_key: str
    activity_facet: str | None = None
    label: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class FormRef:
    """A FORM (public-task) classification."""

    task_key: str
    activity_facet: str | None = None
    label: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class Attention:
    """``att.xml``: who or what the letter concerns inside the recipient (MeMo AttentionData)."""

    person_id: str | None = None
    person_label: str | None = None
    unit_label: str | None = None
    email: str | None = None
    email_related_agent: str | None = None
    production_unit_number: str | None = None  # P-number, 10 digits
    production_unit_name: str | None = None
    telephone: str | None = None
    cpr_numbers: tuple[tuple[str, str | None], ...] = ()  # (cpr, name): CPRdata, personal data
    kle: tuple[KleRef, ...] = ()
    form: tuple[FormRef, ...] = ()
    vehicles: tuple[tuple[str | None, str | None], ...] = ()  # (licence number, chassis number)
    cadastral_numbers: tuple[str, ...] = ()  # matrikelnummer / ejendomsnummer

    @property
    def line(self) -> str | None:
        """The "Att.:" line for a letter: person and/or unit."""
        parts = [p for p in (self.person_label, self.unit_label) if p]
        return " / ".join(parts) if parts else None


@dataclass(frozen=True)
class CaseDocument:
    """``s&d.xml``: the case and document the letter belongs to (FESD metadata)."""

    case_number: str | None = None
    case_uuid: str | None = None  # FESDsagIdentifikator
    case_title: str | None = None
    case_system: str | None = None
    kle: KleRef | None = None  # FESDsagsklassifikationIdentifikator
    document_number: str | None = None
    document_uuid: str | None = None  # FESDdokumentIdentifikator
    document_title: str | None = None
    acting_party_id: str | None = None  # FESDaktoerIdentifikator
    acting_party_name: str | None = None
    letter_date: dt.date | None = None
    created: dt.date | None = None


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 1


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class BulletList:
    items: tuple[str, ...]
    ordered: bool = False


@dataclass(frozen=True)
class Table:
    rows: tuple[tuple[str, ...], ...]
    header: bool = True  # the first row is a header row


Block = Heading | Paragraph | BulletList | Table


@dataclass(frozen=True)
class Letter:
    """The structured letter text docpost renders: blocks in order, then a closing."""

    blocks: tuple[Block, ...]
    closing: str | None = None  # e.g. "Med venlig hilsen"
    signature: tuple[str, ...] = ()  # lines under the closing: name, title, unit


@dataclass(frozen=True)
class SubmissionKey:
    """Where a submission comes from: ``inbox/<source_system>/<date>/<submission_id>/``."""

    source_system: str
    date: dt.date
    submission_id: str

    @property
    def prefix(self) -> str:
        return f"inbox/{self.source_system}/{self.date.isoformat()}/{self.submission_id}/"

    def __str__(self) -> str:
        return f"{self.source_system}/{self.date.isoformat()}/{self.submission_id}"


@dataclass(frozen=True)
class Submission:
    """A validated submission: the parsed manifest and metadata, and its documents' bytes."""

    key: SubmissionKey
    manifest: Manifest
    content_hash: str  # sha256 over the names and bytes of all files, see docpost.submission
    attention: Attention | None = None
    case: CaseDocument | None = None
    letter: Letter | None = None
    documents: dict[str, bytes] = field(default_factory=dict, repr=False)  # PDFs by file name


@dataclass(frozen=True)
class ReplyAddress:
    """The reply address stamping gives a letter (see ``docpost.stamping``).

    For ``ReplyType.NOT_POSSIBLE`` every id is None and the letter carries no reply address.
    """

    reply_type: ReplyType
    rule: str  # which rule chose it, e.g. "profile:ESDH/AFGOERELSE", "override", "default:ESDH"
    postkasse_id: int | None = None
    postkasse_label: str | None = None
    emne_id: int | None = None
    emne_label: str | None = None
    contact_point_id: str | None = None  # NgDP contactPointID (MeMo Sender/ContactPoint)
    mailbox: str | None = None  # the functional mailbox behind the Emne

    @property
    def line(self) -> str | None:
        """The reply line printed on the letter, without the reference."""
        if self.reply_type is ReplyType.NOT_POSSIBLE:
            return None
        return f"Svar via Digital Post: {self.postkasse_label} / {self.emne_label}"


@dataclass(frozen=True)
class Letterhead:
    """The sender block of a letter, from the sending profile."""

    municipality: str
    department: str
    address_lines: tuple[str, ...]
    cvr: str
    phone: str | None = None
    email: str | None = None
    web: str | None = None
    logo_path: str | None = None

    @property
    def return_line(self) -> str:
        """The small return address above the envelope window."""
        return ", ".join((self.municipality, *self.address_lines))
