"""Shared pieces of the SF1601 client and simulator tests: PKI, letters, a running simulator."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from pathlib import Path

import pytest

from docpost import model

SENDER_CVR = "29189846"
PDF = b"%PDF-1.4\n% docpost test letter\n" + bytes(range(256)) * 4 + b"\n%%EOF\n"


def cpr_for(i: int) -> str:
    """A distinct, well-formed CPR number per index (birth dates in the 1900s)."""
    return f"{1 + i % 28:02d}{1 + (i // 28) % 12:02d}{50 + (i // 336) % 50:02d}{1000 + i % 9000:04d}"


def ids_for(i: int, salt: str = "") -> tuple[str, str]:
    """(transaction id, message UUID) for letter ``i``: deterministic, uuid4-shaped."""
    base = uuid.uuid5(uuid.NAMESPACE_URL, f"docpost-test/{salt}/{i}").int
    tx = uuid.UUID(int=base, version=4)
    msg = uuid.UUID(int=base ^ 0xFFFF_FFFF_FFFF, version=4)
    return str(tx), str(msg)


def outbound_letter(i: int, recipient_id: str, *, salt: str = ""):
    """A rendered-letter stand-in (real MeMo and ForsendelseI builders run on it)."""
    from docpost.memo import OutboundLetter

    tx, msg = ids_for(i, salt)
    address = model.PostalAddress(street_name="Vestergade", street_building=str(1 + i % 90),
                                  postcode="8000", district_name="Aarhus C")
    recipient = model.Recipient(model.IdType.CPR, recipient_id, "Test Borger", address)
    manifest = model.Manifest(recipient=recipient, title=f"Afgørelse nr. {i}",
                              document_type="afgoerelse",
                              files=(model.ContentFile("brev.xml", model.FileRole.LETTER),))
    submission = model.Submission(
        key=model.SubmissionKey("sbsys", dt.date(2026, 11, 28), f"S{i:05d}"),
        manifest=manifest, content_hash="0" * 64)
    reply = model.ReplyAddress(reply_type=model.ReplyType.GIVEN, rule="test", postkasse_id=100,
                               postkasse_label="Borgerservice", emne_id=1001,
                               emne_label="Generelt",
                               contact_point_id="5b0b5c1e-8a37-4f51-9d2c-3a8e0f6d2b11")
    return OutboundLetter(message_uuid=msg, transaction_id=tx, submission=submission, reply=reply,
                          pdf=PDF, sender_cvr=SENDER_CVR,
                          created=dt.datetime(2026, 11, 28, 22, 0, tzinfo=dt.timezone.utc))


def kombi_request(i: int, recipient_id: str, kombi_valg: str = "Automatisk Valg",
                  *, salt: str = "") -> tuple[str, str, bytes]:
    """(transaction id, message UUID, kombi_request body) built with docpost's own builders."""
    from docpost.fjernprint import build_forsendelse, build_kombi_request
    from docpost.memo import build_memo

    letter = outbound_letter(i, recipient_id, salt=salt)
    memo = build_memo(letter) if kombi_valg != "Fysisk Post" else None
    forsendelse = build_forsendelse(letter) if kombi_valg in ("Automatisk Valg", "Fysisk Post") else None
    return letter.transaction_id, letter.message_uuid, build_kombi_request(kombi_valg, memo, forsendelse)


def wrap_example(memo_xml: bytes, kombi_valg: str = "Digital Post") -> bytes:
    """An official MeMo example in a kombi_request."""
    from docpost.fjernprint import build_kombi_request

    return build_kombi_request(kombi_valg, memo_xml, None)


def write_register(path: Path, entries: dict[str, str]) -> Path:
    path.write_text(json.dumps(entries), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    from docpost_testbench.pki import create_test_pki

    return create_test_pki(tmp_path_factory.mktemp("pki"))


def start(tmp_path: Path, pki, *, register: dict[str, str] | None = None, faults: dict | None = None,
          config: dict | None = None, state: Path | None = None, subprocess_mode: bool = False):
    from docpost_testbench.simulator import start_simulator

    register_path = write_register(tmp_path / "recipients.json", register) if register else None
    return start_simulator(
        state or tmp_path / "state", register_path, faults or {},
        tls_cert=pki.server_cert, tls_key=pki.server_key, client_ca=pki.ca_cert,
        client_cert=(pki.client_cert, pki.client_key), config=config or {},
        subprocess_mode=subprocess_mode)


def client_for(handle, pki, **kwargs):
    from docpost.channels.sf1601 import SF1601Client

    kwargs.setdefault("timeout", 2.0)
    kwargs.setdefault("cert", (str(pki.client_cert), str(pki.client_key)))
    return SF1601Client(handle.url, SENDER_CVR, ca=str(pki.ca_cert), **kwargs)


def wait_for_receipts(client, expected: int, timeout: float = 15.0, after: int = 0):
    """Page through the feed until ``expected`` receipts are seen (or time runs out).

    A page that does not come in time is asked for again, as the receipts task's retry does: a
    client with a short timeout (the fault tests') can miss a 500-receipt page on a loaded machine.
    """
    from docpost.channels.sf1601 import Retryable

    seen, cursor = [], after
    deadline = time.monotonic() + timeout
    while len(seen) < expected and time.monotonic() < deadline:
        try:
            batch, cursor = client.fetch_receipts(cursor)
        except Retryable:
            time.sleep(0.1)
            continue
        seen += batch
        if not batch:
            time.sleep(0.1)
    return seen, cursor
