"""Deterministic sample letters built from model objects: previews, the golden tests, the benchmark.

All names, addresses and numbers are invented (CPR numbers with day 01-31 and a fictitious range).
"""

from __future__ import annotations

import datetime as dt
import random

from docpost import model

CREATED = dt.datetime(2026, 11, 28, 16, 0, tzinfo=dt.UTC)
WORDS = (
    "kommunen har modtaget din ansøgning om hjælp til udgifter og vi har nu truffet afgørelse på "
    "baggrund af de oplysninger der foreligger i sagen herunder lægeerklæring fra egen læge samt "
    "oplysninger om din økonomi og boligforhold vi skal gøre opmærksom på at du har pligt til at "
    "oplyse kommunen om ændringer i dine forhold der kan have betydning for ydelsen søby ærø åbenrå"
).split()


def letterhead(logo_path: str | None = None) -> model.Letterhead:
    return model.Letterhead(
        municipality="Søby Kommune",
        department="Borgerservice",
        address_lines=("Rådhuspladsen 1", "8999 Søby"),
        cvr="29189846",
        phone="89 99 00 00",
        email="borgerservice@soeby.dk",
        web="www.soeby.dk",
        logo_path=logo_path,
    )


def _submission(recipient, title, letter, *, attention=None, case=None, doc_type="afgoerelse", sid="sample-1"):
    return model.Submission(
        key=model.SubmissionKey("sbsys", dt.date(2026, 11, 28), sid),
        manifest=model.Manifest(recipient=recipient, title=title, document_type=doc_type,
                                files=(model.ContentFile("brev.xml", model.FileRole.LETTER),)),
        content_hash=f"sha256:{sid}",
        attention=attention,
        case=case or model.CaseDocument(case_number="27.12.00-G01-123-26", document_number="D-4711"),
        letter=letter,
    )


CLOSING = dict(closing="Med venlig hilsen", signature=("Hanne Sørensen", "Sagsbehandler", "Borgerservice"))


def citizen_letter() -> model.Submission:
    """A short one-page letter to a citizen, with the Danish letters and typographic characters."""
    letter = model.Letter(blocks=(
        model.Paragraph("Kære Ærtebjerg Østergård Ågesen"),
        model.Paragraph("Du har søgt om enkeltydelse – “tandbehandling” – på 1.250 €. Vi har nu behandlet "
                        "din ansøgning, og du får hjælp til hele beløbet."),
        model.Heading("Klagevejledning"),
        model.Paragraph("Du kan klage over afgørelsen inden 4 uger, fra du har modtaget brevet. Klagen "
                        "sendes til os, og vi genvurderer sagen, før den sendes videre til Ankestyrelsen."),
    ), **CLOSING)
    recipient = model.Recipient(model.IdType.CPR, "0101904321", "Ærtebjerg Østergård Ågesen",
                                model.PostalAddress("Åboulevarden", "12B", "8000", "Aarhus C", floor="3", suite="tv"))
    return _submission(recipient, "Afgørelse om enkeltydelse", letter, sid="citizen")


def company_letter() -> model.Submission:
    """A letter to a company: Att. line, a table, lists."""
    letter = model.Letter(blocks=(
        model.Paragraph("Kommunen har registreret følgende ubetalte fakturaer for jeres virksomhed:"),
        model.Table(rows=(
            ("Faktura", "Forfald", "Beløb"),
            ("2026-1001", "1. oktober 2026", "12.500,00 kr."),
            ("2026-1044", "1. november 2026", "3.275,50 kr."),
            ("I alt", "", "15.775,50 kr."),
        )),
        model.Paragraph("Beløbet skal betales senest den 15. december 2026. Betaler I ikke, sender vi kravet "
                        "til inddrivelse hos Gældsstyrelsen."),
        model.BulletList(items=("Betal via bank med FI-kort +71 <12345678>", "Kontakt os, hvis I mener, at kravet er forkert")),
        model.BulletList(items=("Find fakturanummeret", "Indbetal beløbet", "Gem kvitteringen"), ordered=True),
    ), **CLOSING)
    recipient = model.Recipient(model.IdType.CVR, "12345678", "Smørrebrød & Co. ApS",
                                model.PostalAddress("Industrivej", "7", "8999", "Søby"))
    attention = model.Attention(person_label="Bogholderiet", unit_label="Økonomi")
    return _submission(recipient, "Rykker for betaling", letter, attention=attention, doc_type="rykker", sid="company")


def long_letter(pages: int = 3, seed: int = 7) -> model.Submission:
    """A letter whose text flows over about ``pages`` pages (seeded, so always the same text)."""
    rng = random.Random(seed)
    blocks: list[model.Block] = []
    for section in range(pages * 3):
        blocks.append(model.Heading(f"Afsnit {section + 1}", level=1 + section % 2))
        for _ in range(2):
            blocks.append(model.Paragraph(" ".join(rng.choice(WORDS) for _ in range(70)).capitalize() + "."))
    letter = model.Letter(blocks=tuple(blocks[: max(3, int(len(blocks) * 0.85))]), **CLOSING)
    recipient = model.Recipient(model.IdType.CPR, "0202905678", "Jens Peter Hansen",
                                model.PostalAddress("Skolegade", "3", "8999", "Søby", co_name="Marie Hansen"))
    return _submission(recipient, "Orientering om din sag", letter, doc_type="orientering", sid=f"long-{pages}")


def edge_letter() -> model.Submission:
    """Edge text: markup characters, a 150-character word, a long address, a long table cell."""
    long_word = "Ejendomsværdiskattegrundlagsberegningsbekendtgørelsesændringsforslags" * 2 + "X" * 10
    letter = model.Letter(blocks=(
        model.Paragraph("<b>Dette er ikke fed</b> & <font color='red'>ikke rød</font> &amp; <br/> &#169;"),
        model.Paragraph(long_word),
        model.Table(rows=(("Felt", "Værdi"), ("Langt ord", long_word), ("Tomt", "")), header=True),
        model.BulletList(items=(long_word[:60], "<i>kursiv?</i>")),
    ), closing="Med venlig hilsen", signature=("Søby Kommune",))
    recipient = model.Recipient(
        model.IdType.CPR, "0303901111",
        "Anne-Sophie Marguerite Christiansen-Østergaard Vestergaard Bøgh",
        model.PostalAddress("Kong Christian den Niendes Allé og Dronning Louises Boulevard", "112",
                            "8999", "Søby", floor="st", suite="th", co_name="Plejecenter Solbakken",
                            mail_delivery_sublocation="Nørre Søby"),
    )
    return _submission(recipient, "Titel med <b>markup</b> & “citat”", letter, doc_type="orientering", sid="edge")


def generated_letter(index: int, seed: int = 2026) -> model.Submission:
    """Letter number ``index`` of a seeded series with 1-3 pages of text (for the benchmark)."""
    rng = random.Random(seed * 100_003 + index)
    paragraphs = rng.choice((4, 10, 17))
    blocks: list[model.Block] = [model.Paragraph("Kære borger")]
    for i in range(paragraphs):
        if i % 5 == 2:
            blocks.append(model.Heading(f"Punkt {i}"))
        blocks.append(model.Paragraph(" ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 90))).capitalize() + "."))
        if i % 7 == 3:
            blocks.append(model.BulletList(items=tuple(" ".join(rng.choice(WORDS) for _ in range(6)) for _ in range(3))))
    letter = model.Letter(blocks=tuple(blocks), **CLOSING)
    recipient = model.Recipient(model.IdType.CPR, f"{(index % 28) + 1:02d}0190{index % 10000:04d}",
                                f"Borger nummer {index}", model.PostalAddress("Testvej", str(index % 200 + 1), "8999", "Søby"))
    return _submission(recipient, f"Brev nummer {index}", letter, sid=f"gen-{index}")
