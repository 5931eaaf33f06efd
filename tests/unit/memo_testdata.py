"""Letters for the MeMo / fjernprint tests: model objects built directly (no stamping, no S3)."""

from __future__ import annotations

import datetime as dt
import uuid

from docpost import model
from docpost.memo import OutboundLetter

SENDER_CVR = "29189846"
CPR = "0101901234"
CVR = "12345678"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"


def address(**changes) -> model.PostalAddress:
    base = dict(street_name="Vestergade", street_building="12B", postcode="8000",
                district_name="Aarhus C", floor="2", suite="tv")
    base.update(changes)
    return model.PostalAddress(**base)


def reply_given(contact_point_id: str | None = "5b0b5c1e-8a37-4f51-9d2c-3a8e0f6d2b11") -> model.ReplyAddress:
    return model.ReplyAddress(
        reply_type=model.ReplyType.GIVEN, rule="profile:sbsys/afgoerelse",
        postkasse_id=100, postkasse_label="Borgerservice", emne_id=1001,
        emne_label="Generelle henvendelser", contact_point_id=contact_point_id,
        mailbox="borgerservice@soeby.dk",
    )


def reply_not_possible() -> model.ReplyAddress:
    return model.ReplyAddress(reply_type=model.ReplyType.NOT_POSSIBLE, rule="override")


def make_letter(
    *,
    id_type: model.IdType = model.IdType.CPR,
    identifier: str = CPR,
    name: str = "Jens Hansen",
    addr: model.PostalAddress | bool | None = None,  # None: a default address, False: none
    title: str = "Afgørelse om boligstøtte",
    reply: model.ReplyAddress | None = None,
    attention: model.Attention | None = None,
    case: model.CaseDocument | None = None,
    attachments: list[tuple[str, str | None, bytes]] | None = None,
    mandatory: bool = False,
    legal_notification: bool = False,
    not_before: dt.date | None = None,
    channel_wish: model.ChannelWish = model.ChannelWish.AUTO,
    memo_version: str = "1.2",
    pdf: bytes = PDF,
    message_uuid: str | None = None,
    seed: int = 1,
) -> OutboundLetter:
    """One letter; identifiers derive from ``seed`` so output is deterministic."""
    if addr is None:
        addr = address()
    recipient = model.Recipient(id_type, identifier, name, addr or None)
    manifest = model.Manifest(
        recipient=recipient, title=title, document_type="afgoerelse", channel_wish=channel_wish,
        files=(model.ContentFile("brev.xml", model.FileRole.LETTER),),
        not_before=not_before, mandatory=mandatory, legal_notification=legal_notification,
    )
    submission = model.Submission(
        key=model.SubmissionKey("sbsys", dt.date(2026, 11, 28), f"S{seed:05d}"),
        manifest=manifest, content_hash="0" * 64, attention=attention, case=case,
    )
    return OutboundLetter(
        message_uuid=message_uuid or str(uuid.UUID(int=seed, version=4)),
        transaction_id=str(uuid.UUID(int=seed + 1_000_000, version=4)),
        submission=submission,
        reply=reply if reply is not None else reply_given(),
        pdf=pdf,
        attachments=list(attachments or []),
        sender_cvr=SENDER_CVR,
        sender_label="Søby Kommune",
        created=dt.datetime(2026, 11, 28, 22, 15, 3, tzinfo=dt.UTC),
        channel_wish=channel_wish,
        memo_version=memo_version,
    )


def full_attention() -> model.Attention:
    return model.Attention(
        person_id="PID-77", person_label="Karen Sørensen", unit_label="Ydelseskontoret",
        email="ydelse@soeby.dk", email_related_agent="Karen Sørensen",
        production_unit_number="1012345678", production_unit_name="Søby Rådhus",
        telephone="70101010",
        cpr_numbers=((CPR, "Jens Hansen"),),
        kle=(model.KleRef("27.12.00", "A00", "Boligstøtte", "2024"), model.KleRef("27.24.00")),
        form=(model.FormRef("27.12.00.00", None, "Boligydelse"),),
        vehicles=(("AB12345", None),),
        cadastral_numbers=("12a", "12b"),
    )


def full_case() -> model.CaseDocument:
    return model.CaseDocument(
        case_number="2026-000123", case_uuid="A1B2C3D4-0000-4000-8000-000000000001",
        case_title="Boligstøtte", case_system="SBSYS",
        kle=model.KleRef("27.12.00", "G01"), document_number="17",
        document_uuid="a1b2c3d4-0000-4000-8000-000000000002",
        acting_party_id="a1b2c3d4-0000-4000-8000-000000000003", acting_party_name="Ydelse",
        letter_date=dt.date(2026, 11, 27),
    )
