"""Sample data: a night of realistic submissions, and a chosen share of broken ones.

``generate_night`` writes through a *sink*, ``sink(relative_key, data)``, so the same generator
fills a local folder (:class:`DirectorySink`) or an S3 bucket. Layout written::

    inbox/<source>/<date>/<submission-id>/manifest.xml ... _READY   (_READY last, per submission)
    recipients.json   {"<CPR or CVR>": "digital" | "physical" | "unknown"}  for the SF1601 simulator
    expected.json     {"<source>/<date>/<id>": [expected reason codes]}  ([] for a good one)

Deterministic for a seed: the same arguments give byte-identical output (PDFs use reportlab's
invariant mode). Submission ``i`` depends only on (seed, date, i), not on ``count``.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from docpost import identifiers, model
from docpost.model import NS_ATTENTION, NS_CASE, NS_LETTER, NS_MANIFEST

Sink = Callable[[str, bytes], None]

SOURCE_SYSTEMS = {
    "sbsys": ("afgoerelse", "partshoering", "orientering", "bevilling"),
    "momentum": ("indkaldelse", "afgoerelse", "orientering"),
    "opus-debitor": ("opkraevning", "rykker", "kvittering"),
    "kmd-ydelse": ("bevilling", "afgoerelse", "kvittering"),
    "dubu": ("partshoering", "afgoerelse", "indkaldelse", "orientering"),
    "byggesag": ("afgoerelse", "partshoering", "kvittering", "orientering"),
}
COMPANY_SHARE = {"byggesag": 0.45, "opus-debitor": 0.35, "sbsys": 0.2, "momentum": 0.1, "kmd-ydelse": 0.05, "dubu": 0.02}
DEPARTMENT = {
    "sbsys": "Borgerservice", "momentum": "Jobcenter", "opus-debitor": "Opkrævning",
    "kmd-ydelse": "Ældre og Handicap", "dubu": "Børn og Familie", "byggesag": "Teknik og Miljø",
}
KLE_BY_SOURCE = {
    "sbsys": ("00.01.00", "Kommunens styrelse"), "momentum": ("15.00.00", "Beskæftigelse"),
    "opus-debitor": ("25.02.00", "Opkrævning af fordringer"), "kmd-ydelse": ("27.12.00", "Hjemmehjælp"),
    "dubu": ("27.24.00", "Børn og unge med særlige behov"), "byggesag": ("02.34.02", "Byggetilladelser"),
}
FIRST_NAMES = (
    "Søren", "Mette", "Jørgen", "Åse", "Bjørn", "Kirsten", "Anders", "Sofie", "Mads", "Line", "Øjvind",
    "Birgitte", "Lærke", "Frederik", "Ida", "Jens", "Hanne", "Rasmus", "Signe", "Bent", "Græsbøl",
    "Ærø", "Ulla", "Niels", "Karen", "Thøger", "Malene", "Mikkel", "Astrid", "Søs",
)
LAST_NAMES = (
    "Jensen", "Nielsen", "Hansen", "Pedersen", "Andersen", "Christensen", "Larsen", "Sørensen",
    "Rasmussen", "Jørgensen", "Petersen", "Madsen", "Kristensen", "Olsen", "Thomsen", "Møller",
    "Østergaard", "Bækgaard", "Skovgård", "Lykkegård", "Kjær", "Dahl", "Bøgh", "Frølund",
)
COMPANY_WORDS = (
    "Tømrerfirma", "Murerfirmaet", "Økologisk Gartneri", "Ålborg Byg", "Køkkenfabrikken", "Smørrebrødshuset",
    "Vognmandsforretning", "Blomsterhandel", "Revisionsfirmaet", "Bådebyggeri", "Fiskehandel", "Malerfirma",
)
COMPANY_FORMS = ("ApS", "A/S", "I/S", "K/S", "P/S")
STREETS = (
    "Vestergade", "Nørregade", "Søndergade", "Østergade", "Åboulevarden", "Skovvej", "Møllevej",
    "Kirkevej", "Bøgevej", "Egevej", "Rosenvænget", "Fælledvej", "Strandvejen", "Kærvej", "Lærkevej",
    "Præstegårdsvej", "Æblehaven", "Sølvgade", "Tåstrupvej", "Gl. Kongevej", "Højskolevej", "Ørnevej",
)
TOWNS = (
    ("8000", "Aarhus C"), ("5000", "Odense C"), ("9000", "Aalborg"), ("7100", "Vejle"), ("8600", "Silkeborg"),
    ("4000", "Roskilde"), ("2300", "København S"), ("8700", "Horsens"), ("6000", "Kolding"), ("3400", "Hillerød"),
    ("4700", "Næstved"), ("8800", "Viborg"), ("5700", "Svendborg"), ("7400", "Herning"), ("4200", "Slagelse"),
    ("9800", "Hjørring"), ("6700", "Esbjerg"), ("2800", "Kongens Lyngby"), ("8900", "Randers C"),
    ("3000", "Helsingør"), ("6100", "Haderslev"), ("3700", "Rønne"), ("4800", "Nykøbing F"), ("8960", "Randers SØ"),
    ("5960", "Marstal"), ("9990", "Skagen"), ("6330", "Padborg"), ("8300", "Odder"),
)
PLACES = ("Søgården", "Højbjerggård", "Kærholm", "Vindmøllegården", "Ålykkegård")
SUBJECTS = {
    "afgoerelse": ("Afgørelse om {x}", ("hjælpemidler", "boligstøtte", "tilskud til briller", "byggetilladelse", "merudgifter")),
    "partshoering": ("Partshøring om {x}", ("din ansøgning", "ændring af ydelse", "påbud om oprydning", "anbringelse")),
    "indkaldelse": ("Indkaldelse til {x}", ("samtale på jobcentret", "møde om dit barn", "opfølgningssamtale", "besøg i hjemmet")),
    "orientering": ("Orientering om {x}", ("ny åbningstid", "vejarbejde i dit område", "ændrede regler", "din sag")),
    "opkraevning": ("Opkrævning af {x}", ("ejendomsskat", "renovationsgebyr", "forældrebetaling", "tilbagebetaling")),
    "rykker": ("Rykker for {x}", ("ejendomsskat", "renovationsgebyr", "forældrebetaling", "betaling for madservice")),
    "kvittering": ("Kvittering for {x}", ("modtaget ansøgning", "din indbetaling", "modtaget klage", "anmeldelse")),
    "bevilling": ("Bevilling af {x}", ("hjemmehjælp", "kropsbårne hjælpemidler", "støtte til bil", "aflastning")),
}
SENTENCES = (
    "Kommunen har nu behandlet din sag, og vi har lagt vægt på de oplysninger, du har givet os.",
    "Vi har gennemgået din ansøgning og de bilag, der fulgte med den.",
    "Afgørelsen er truffet efter reglerne i lov om social service.",
    "Du kan se de regler, vi har brugt, på kommunens hjemmeside under Borger og Selvbetjening.",
    "Hvis du er uenig i afgørelsen, kan du klage inden fire uger fra den dag, du har modtaget brevet.",
    "Din klage skal sendes til kommunen, som vil genvurdere sagen, før den sendes videre til Ankestyrelsen.",
    "Vi har talt med din sagsbehandler, som har bekræftet oplysningerne om din økonomi.",
    "Beløbet bliver udbetalt til din NemKonto den første bankdag i næste måned.",
    "Du skal være opmærksom på, at du har pligt til at oplyse os om ændringer i dine forhold.",
    "Det gælder for eksempel, hvis du flytter, får arbejde eller ændrer din husstand.",
    "Mødet holdes på rådhuset, stuen, lokale 12, og vi forventer, at det varer omkring en time.",
    "Du er velkommen til at tage en bisidder med til mødet.",
    "Hvis du ikke kan komme, beder vi dig give besked senest to hverdage før.",
    "Vi har registreret din indbetaling, og der er ikke noget udestående i sagen.",
    "Beløbet forfalder til betaling den sidste hverdag i måneden.",
    "Betaler du ikke rettidigt, vil der blive pålagt et rykkergebyr efter gældende regler.",
    "Byggeriet skal udføres i overensstemmelse med de godkendte tegninger og bygningsreglementet.",
    "Tilladelsen bortfalder, hvis byggearbejdet ikke er påbegyndt inden et år.",
    "Før vi træffer afgørelse, får du mulighed for at kommentere de oplysninger, vi har fået.",
    "Du kan sende dine bemærkninger til os inden 14 dage.",
    "Vi har vurderet, at dit behov bedst dækkes af den hjælp, der er beskrevet nedenfor.",
    "Hjælpen bliver leveret af en godkendt leverandør, som vil kontakte dig for at aftale tidspunkt.",
    "Kommunen behandler dine personoplysninger efter databeskyttelsesforordningen.",
    "Du kan læse mere om dine rettigheder på kommunens hjemmeside.",
    "Har du spørgsmål til brevet, er du velkommen til at kontakte os på telefon eller via Digital Post.",
)
LIST_ITEMS = (
    "Kopi af lønsedler for de seneste tre måneder", "Dokumentation for huslejeudgifter", "Lægeerklæring",
    "Tegninger af det ansøgte byggeri", "Oplysninger om din formue", "Seneste årsopgørelse fra Skattestyrelsen",
    "Samtykke til indhentning af oplysninger", "Kopi af lejekontrakt", "Dokumentation for udgifter til transport",
)
SIGNERS = ("Lone Bækgaard", "Peter Sørensen", "Anne-Mette Østergaard", "Jakob Frølund", "Ditte Kjær")
SIGNER_TITLES = ("sagsbehandler", "socialrådgiver", "byggesagsbehandler", "afdelingsleder", "konsulent")

# Broken kinds: name -> the reason codes validation must report for it.
BROKEN_KINDS: dict[str, tuple[str, ...]] = {
    "no-ready": ("submission.not-ready",),
    "no-manifest": ("manifest.missing",),
    "malformed-manifest": ("xml.malformed",),
    "missing-file": ("files.missing",),
    "unnamed-file": ("files.unnamed",),
    "cpr-bad-date": ("cpr.invalid-date",),
    "cvr-bad-check-digit": ("cvr.bad-check-digit",),
    "title-too-long": ("schema.too-long",),
    "unknown-document-type": ("schema.invalid-value",),
    "html-as-pdf": ("pdf.not-a-pdf",),
    "truncated-pdf": ("pdf.truncated",),
    "encrypted-pdf": ("pdf.encrypted",),
    "forbidden-filename": ("filename.forbidden-characters",),
    "att-with-dtd": ("xml.dtd-forbidden",),
    "empty-letter": ("letter.empty",),
    "out-of-order": ("schema.unexpected-element",),
    "latin1-declared-utf8": ("xml.encoding-invalid",),
    "duplicate-title": ("schema.unexpected-element",),
    "bad-case-uuid": ("schema.invalid-value",),
    "att-cpr-bad-date": ("cpr.invalid-date",),
    "path-traversal": ("filename.path-part",),
    "bad-emne-id": ("schema.invalid-value",),
    "empty-attachment": ("files.empty",),
    "physical-without-address": ("recipient.address-missing",),
}


class DirectorySink:
    """Writes each object to ``root/<relative_key>``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __call__(self, relative_key: str, data: bytes) -> None:
        path = self.root / relative_key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


@dataclass
class NightResult:
    """What a generated night holds."""

    date: dt.date
    count: int
    expected: dict[str, list[str]] = field(default_factory=dict)  # submission -> codes ([] = good)
    recipients: dict[str, str] = field(default_factory=dict)

    @property
    def broken(self) -> int:
        return sum(1 for codes in self.expected.values() if codes)


# --------------------------------------------------------------------------- people and places


def _cpr(rng: random.Random) -> str:
    birth = dt.date(1925, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 99))
    return identifiers.cpr_for(birth, rng.randrange(1000))


def _cvr(rng: random.Random) -> str:
    while True:
        first7 = f"{rng.randrange(1, 10)}{rng.randrange(10**6):06d}"
        digit = identifiers.cvr_check_digit(first7)
        if digit is not None:
            return f"{first7}{digit}"


def _bad_cvr(rng: random.Random) -> str:
    good = _cvr(rng)
    return good[:7] + str((int(good[7]) + 1 + rng.randrange(8)) % 10)


def _bad_cpr(rng: random.Random) -> str:
    day, month = rng.choice(((32, 1), (30, 2), (31, 4), (15, 13), (0, 6), (29, 2)))
    year2 = 1 if (day, month) == (29, 2) else rng.randrange(100)  # 29 Feb 1901: no leap year
    seventh = 0 if (day, month) == (29, 2) else rng.randrange(4)
    return f"{day:02d}{month:02d}{year2:02d}{seventh}{rng.randrange(1000):03d}"


def _person(rng: random.Random) -> str:
    first = rng.choice(FIRST_NAMES)
    middle = f" {rng.choice(FIRST_NAMES)}" if rng.random() < 0.3 else ""
    return f"{first}{middle} {rng.choice(LAST_NAMES)}"


def _company(rng: random.Random) -> str:
    return f"{rng.choice(LAST_NAMES)}s {rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_FORMS)}"


def _address(rng: random.Random) -> dict:
    postcode, town = rng.choice(TOWNS)
    address = {
        "StreetName": rng.choice(STREETS),
        "StreetBuildingIdentifier": f"{rng.randrange(1, 180)}{rng.choice(('', '', '', 'A', 'B'))}",
        "PostCodeIdentifier": postcode,
        "DistrictName": town,
    }
    if rng.random() < 0.35:
        address["FloorIdentifier"] = rng.choice(("ST", "1", "2", "3", "4", "kl"))
        address["SuiteIdentifier"] = rng.choice(("tv", "th", "mf", "2"))
    if rng.random() < 0.05:
        address["CoNavn"] = _person(rng)
    if rng.random() < 0.05:
        address["MailDeliverySublocationIdentifier"] = rng.choice(PLACES)
    return address


def _address_lines(address: dict) -> list[str]:
    """The envelope lines of a generated address (as ``model.PostalAddress.lines`` prints them)."""
    from docpost.model import PostalAddress

    return PostalAddress(
        street_name=address["StreetName"],
        street_building=address["StreetBuildingIdentifier"],
        postcode=address["PostCodeIdentifier"],
        district_name=address["DistrictName"],
        floor=address.get("FloorIdentifier"),
        suite=address.get("SuiteIdentifier"),
        co_name=address.get("CoNavn"),
        mail_delivery_sublocation=address.get("MailDeliverySublocationIdentifier"),
    ).lines()


# --------------------------------------------------------------------------- XML


def _el(parent, ns: str, name: str, text: str | None = None, **attrs):
    el = etree.SubElement(parent, f"{{{ns}}}{name}", {k: v for k, v in attrs.items() if v is not None})
    if text is not None:
        el.text = text
    return el


def _xml(root) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


_ADDRESS_ORDER = (
    "CoNavn", "StreetName", "StreetBuildingIdentifier", "FloorIdentifier", "SuiteIdentifier",
    "MailDeliverySublocationIdentifier", "PostOfficeBoxIdentifier", "PostCodeIdentifier", "DistrictName",
    "CountryIdentificationCode",
)


def manifest_xml(d: dict) -> etree._Element:
    """A manifest element from a draft dict (the generator's and the examples' form)."""
    ns = NS_MANIFEST
    root = etree.Element(f"{{{ns}}}Manifest", {"version": "1"}, nsmap={None: ns})
    rec = _el(root, ns, "Recipient")
    _el(rec, ns, "CPRnummerIdentifikator" if d["id_type"] == "CPR" else "CVRnummerIdentifikator", d["identifier"])
    _el(rec, ns, "Name", d["name"])
    if d.get("address"):
        addr = _el(rec, ns, "PostalAddress")
        for key in _ADDRESS_ORDER:
            if key in d["address"]:
                _el(addr, ns, key, d["address"][key])
    _el(root, ns, "Title", d["title"])
    _el(root, ns, "DocumentType", d["document_type"])
    if d.get("channel"):
        _el(root, ns, "ChannelWish", d["channel"])
    if d.get("mandatory"):
        _el(root, ns, "Mandatory", "true")
    if d.get("not_before"):
        _el(root, ns, "DoNotDeliverUntilDate", d["not_before"])
    if d.get("case_reference"):
        _el(root, ns, "CaseReference", d["case_reference"])
    if d.get("reply"):
        over = _el(root, ns, "ReplyOverride")
        kind, *values = d["reply"]
        if kind == "reply":
            reply = _el(over, ns, "Reply")
            _el(reply, ns, "MeddelelseSvarPostkasseIdentifikator", str(values[0]))
            _el(reply, ns, "MeddelelseSvarEmneIdentifikator", str(values[1]))
        elif kind == "none":
            _el(over, ns, "NoReply")
        else:
            _el(over, ns, "Profile", values[0])
    docs = _el(root, ns, "Documents")
    role, filename, label = d["main"]
    _el(docs, ns, "MainDocument", role=role, filename=filename, label=label)
    for filename, label in d["attachments"]:
        _el(docs, ns, "AdditionalDocument", filename=filename, label=label)
    return root


def letter_xml(blocks: list[tuple], closing: str | None, signature: list[str]) -> etree._Element:
    ns = NS_LETTER
    root = etree.Element(f"{{{ns}}}Letter", {"version": "1"}, nsmap={None: ns})
    for kind, *rest in blocks:
        if kind == "h":
            _el(root, ns, "Heading", rest[0], level=str(rest[1]))
        elif kind == "p":
            _el(root, ns, "Paragraph", rest[0])
        elif kind == "list":
            lst = _el(root, ns, "List", ordered="true" if rest[1] else None)
            for item in rest[0]:
                _el(lst, ns, "Item", item)
        elif kind == "table":
            table = _el(root, ns, "Table")
            for row in rest[0]:
                r = _el(table, ns, "Row")
                for cell in row:
                    _el(r, ns, "Cell", cell)
    if closing:
        _el(root, ns, "Closing", closing)
    if signature:
        sig = _el(root, ns, "Signature")
        for line in signature:
            _el(sig, ns, "Line", line)
    return root


def attention_xml(d: dict) -> etree._Element:
    ns = NS_ATTENTION
    root = etree.Element(f"{{{ns}}}AttentionData", {"version": "1"}, nsmap={None: ns})
    if d.get("person"):
        person = _el(root, ns, "AttentionPerson")
        if d.get("person_id"):
            _el(person, ns, "personID", d["person_id"])
        _el(person, ns, "label", d["person"])
    if d.get("unit"):
        _el(_el(root, ns, "AttentionUnit"), ns, "label", d["unit"])
    if d.get("pnumber"):
        pu = _el(root, ns, "ProductionUnit")
        _el(pu, ns, "productionUnitNumber", d["pnumber"])
        _el(pu, ns, "productionUnitName", d.get("pname"))
    if d.get("email"):
        em = _el(root, ns, "EMail")
        _el(em, ns, "emailAddress", d["email"])
        if d.get("email_agent"):
            _el(em, ns, "relatedAgent", d["email_agent"])
    if d.get("phone"):
        _el(_el(root, ns, "Telephone"), ns, "telephoneNumber", d["phone"])
    content_keys = ("cpr", "vehicle", "property", "kle", "form")
    if any(d.get(k) for k in content_keys):
        content = _el(root, ns, "ContentData")
        for cpr, name in d.get("cpr", ()):
            el = _el(content, ns, "CPRdata")
            _el(el, ns, "cprNumber", cpr)
            _el(el, ns, "name", name)
        for licence, chassis in d.get("vehicle", ()):
            el = _el(content, ns, "MotorVehicle")
            _el(el, ns, "licenseNumber", licence)
            _el(el, ns, "chassisNumber", chassis)
        for number in d.get("property", ()):
            _el(_el(content, ns, "PropertyNumber"), ns, "propertyNumber", number)
        for key, facet, label in d.get("kle", ()):
            el = _el(content, ns, "KLEdata")
            _el(el, ns, "subjectKey", key)
            _el(el, ns, "version", "KLE 2024")
            _el(el, ns, "activityFacet", facet)
            _el(el, ns, "label", label)
        for key, label in d.get("form", ()):
            el = _el(content, ns, "FORMdata")
            _el(el, ns, "taskKey", key)
            _el(el, ns, "label", label)
    return root


def case_xml(d: dict) -> etree._Element:
    ns = NS_CASE
    root = etree.Element(f"{{{ns}}}SagDokument", {"version": "1"}, nsmap={None: ns})
    sag = _el(root, ns, "Sag")
    _el(sag, ns, "FESDsagIdentifikator", d["case_uuid"])
    _el(sag, ns, "SagsNummer", d["case_number"])
    _el(sag, ns, "SagsTitel", d["case_title"])
    _el(sag, ns, "Sagssystem", d["case_system"])
    kle = _el(sag, ns, "FESDsagsklassifikation")
    _el(kle, ns, "subjectKey", d["kle"][0])
    _el(kle, ns, "activityFacet", d["kle"][1])
    _el(kle, ns, "label", d["kle"][2])
    dok = _el(root, ns, "Dokument")
    _el(dok, ns, "FESDdokumentIdentifikator", d["document_uuid"])
    _el(dok, ns, "DokumentNummer", d["document_number"])
    _el(dok, ns, "DokumentTitel", d["title"])
    _el(dok, ns, "BrevDato", d["letter_date"])
    _el(dok, ns, "OprettetDato", d["created"])
    akt = _el(root, ns, "Aktoer")
    _el(akt, ns, "FESDaktoerIdentifikator", d["actor_uuid"])
    _el(akt, ns, "AktoerNavn", d["actor_name"])
    return root


# --------------------------------------------------------------------------- content


def _paragraph(rng: random.Random) -> str:
    return " ".join(rng.sample(SENTENCES, rng.randrange(3, 6)))


def _letter_blocks(rng: random.Random, title: str, doc_type: str, pages: int) -> list[tuple]:
    blocks: list[tuple] = [("h", title, 1)]
    paragraphs = pages * 7 - rng.randrange(0, 3)  # about 2,500 characters a page
    for i in range(paragraphs):
        if i and i % 4 == 0:
            blocks.append(("h", rng.choice(("Begrundelse", "Det skal du gøre", "Regler", "Klagevejledning", "Økonomi")), 2))
        blocks.append(("p", _paragraph(rng)))
        if i == 1 and rng.random() < 0.5:
            blocks.append(("list", rng.sample(LIST_ITEMS, rng.randrange(2, 5)), rng.random() < 0.3))
    if doc_type in ("opkraevning", "rykker", "bevilling") or rng.random() < 0.1:
        rows = [["Periode", "Beskrivelse", "Beløb (kr.)"]]
        for month in rng.sample(("Januar", "Februar", "Marts", "April", "Maj", "Juni"), 3):
            rows.append([month, rng.choice(("Ydelse", "Gebyr", "Betaling", "Tilskud")), f"{rng.randrange(100, 9999)},00"])
        blocks.insert(3, ("table", rows))
    return blocks


def pdf_document(
    title: str,
    paragraphs: list[str],
    pages: int,
    *,
    encrypt: bool = False,
    address: list[str] | None = None,
) -> bytes:
    """A small real PDF of ``pages`` pages (deterministic: reportlab invariant mode).

    With ``address`` (the recipient's lines) page 1 is laid out for a window envelope like a
    case system's ready letter: the address in the DIN 5008 B window (20 mm from the left,
    45 mm from the top, 85 x 45 mm) and the text below it, so it passes the print check.
    """
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    encryption = None
    if encrypt:
        from reportlab.lib.pdfencrypt import StandardEncryption

        encryption = StandardEncryption("hemmelig", canPrint=0)
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=1, encrypt=encryption)
    pdf.setTitle(title)
    pdf.setAuthor("Søby Kommune")
    width, height = A4
    for page in range(pages):
        y = height - 72
        if address and page == 0:
            pdf.setFont("Helvetica", 10)
            for n, line in enumerate(address[:6]):
                pdf.drawString(25 * mm, height - (55 * mm + n * 12), line)
            y = height - 100 * mm
        pdf.setFont("Helvetica-Bold", 14)
        pdf.drawString(72, y, title if page == 0 else f"{title} (side {page + 1})")
        y -= 30
        pdf.setFont("Helvetica", 10)
        for paragraph in paragraphs:
            words, line = paragraph.split(), ""
            for word in words:
                if len(line) + len(word) > 90:
                    pdf.drawString(72, y, line)
                    y -= 13
                    line = ""
                line = f"{line} {word}".strip()
            pdf.drawString(72, y, line)
            y -= 20
            if y < 100:
                break
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# --------------------------------------------------------------------------- one submission


def _draft(rng: random.Random, source: str, date: dt.date, sub_id: str, force: str | None) -> tuple[dict, dict]:
    """A good submission: the manifest draft and its other files (name -> bytes or element)."""
    company = force == "company" or (force != "citizen" and rng.random() < COMPANY_SHARE[source])
    doc_type = rng.choice(SOURCE_SYSTEMS[source])
    template, topics = SUBJECTS[doc_type]
    title = template.format(x=rng.choice(topics))
    d: dict = {
        "id_type": "CVR" if company else "CPR",
        "identifier": _cvr(rng) if company else _cpr(rng),
        "name": _company(rng) if company else _person(rng),
        "address": _address(rng),
        "title": title,
        "document_type": doc_type,
        "channel": rng.choices(("auto", None, "digital", "physical"), (60, 25, 8, 7))[0],
        "mandatory": rng.random() < 0.1,
        "not_before": (date + dt.timedelta(days=rng.randrange(1, 6))).isoformat() if rng.random() < 0.05 else None,
        "case_reference": f"{KLE_BY_SOURCE[source][0]}-G01-{rng.randrange(1, 9999)}-{date.year % 100:02d}"
        if rng.random() < 0.6 else None,
        "reply": rng.choice((("reply", 100, 1001), ("reply", 300, 3002), ("none",))) if rng.random() < 0.1 else None,
        "attachments": [],
    }
    files: dict[str, object] = {}
    pages = rng.randrange(1, 4)
    if rng.random() < 0.2:
        d["main"] = ("main", "hoveddokument.pdf", title)
        window = [d["name"], *_address_lines(d["address"])]
        files["hoveddokument.pdf"] = pdf_document(
            title, [_paragraph(rng) for _ in range(6)], pages, address=window
        )
    else:
        d["main"] = ("letter", "brev.xml", None)
        signer = rng.randrange(len(SIGNERS))
        files["brev.xml"] = letter_xml(
            _letter_blocks(rng, title, doc_type, pages),
            "Med venlig hilsen",
            [SIGNERS[signer], SIGNER_TITLES[signer].capitalize(), f"{DEPARTMENT[source]}, Søby Kommune"],
        )
    if rng.random() < 0.25:
        for n in range(rng.randrange(1, 3)):
            name = rng.choice(("bilag-{n}.pdf", "Vejledning om klage {n}.pdf", "Oversigt_{n}.pdf")).format(n=n + 1)
            label = f"Bilag {n + 1}"
            d["attachments"].append((name, label))
            files[name] = pdf_document(label, [_paragraph(rng) for _ in range(3)], rng.randrange(1, 3))
    if rng.random() < (0.7 if company else 0.15):
        att: dict = {"person": _person(rng)}
        if company:
            att["unit"] = rng.choice(("Bogholderiet", "Ejendomsadministrationen", "Direktionen", "Lønafdelingen"))
            if rng.random() < 0.5:
                att["pnumber"] = f"10{rng.randrange(10**8):08d}"
                att["pname"] = d["name"]
            att["email"] = "post@" + rng.choice(("eksempel", "firma", "virksomhed")) + ".dk"
        if rng.random() < 0.3:
            att["phone"] = f"{rng.randrange(20000000, 99999999)}"
        kle = KLE_BY_SOURCE[source]
        att["kle"] = [(kle[0], rng.choice(("G01", "K07", "A00")), kle[1])]
        if source == "dubu" or rng.random() < 0.1:
            att["cpr"] = [(_cpr(rng), _person(rng))]
        if source == "byggesag" and rng.random() < 0.5:
            att["property"] = [f"{rng.randrange(1, 99)}a Søby By, Søby"]
        if source == "opus-debitor" and rng.random() < 0.2:
            vin = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ0123456789") for _ in range(17))
            att["vehicle"] = [(f"{rng.choice(('AB', 'CX', 'BN', 'DK'))}{rng.randrange(10000, 99999)}", vin)]
        files[model.ATTENTION_FILE] = attention_xml(att)
    if rng.random() < (0.7 if source in ("sbsys", "dubu", "byggesag") else 0.3):
        kle = KLE_BY_SOURCE[source]
        files[model.CASE_FILE] = case_xml({
            "case_uuid": _uuid(rng), "case_number": d["case_reference"] or f"{kle[0]}-G01-{rng.randrange(1, 9999)}",
            "case_title": title, "case_system": source.upper(), "kle": (kle[0], "G01", kle[1]),
            "document_uuid": _uuid(rng), "document_number": str(rng.randrange(1, 60)), "title": title,
            "letter_date": date.isoformat(), "created": (date - dt.timedelta(days=rng.randrange(0, 10))).isoformat(),
            "actor_uuid": _uuid(rng), "actor_name": f"{DEPARTMENT[source]}, Søby Kommune",
        })
    return d, files


def _break(kind: str, rng: random.Random, d: dict, files: dict) -> dict:
    """Apply one broken kind to a draft; returns flags for serialisation."""
    flags: dict = {}
    ns = NS_MANIFEST
    if kind == "no-ready":
        flags["no_ready"] = True
    elif kind == "no-manifest":
        flags["no_manifest"] = True
    elif kind == "malformed-manifest":
        flags["manifest_bytes"] = lambda b: b[: len(b) // 2]
    elif kind == "missing-file":
        d["attachments"].append(("bilag-mangler.pdf", "Bilag"))
    elif kind == "unnamed-file":
        files["noter.txt"] = "Interne noter, må ikke sendes.\n".encode()
    elif kind == "cpr-bad-date":
        d["id_type"], d["identifier"], d["name"] = "CPR", _bad_cpr(rng), _person(rng)
    elif kind == "cvr-bad-check-digit":
        d["id_type"], d["identifier"], d["name"] = "CVR", _bad_cvr(rng), _company(rng)
    elif kind == "title-too-long":
        d["title"] = (d["title"] + " vedrørende ") * 30
        d["title"] = d["title"][:300]
    elif kind == "unknown-document-type":
        d["document_type"] = "brev"
    elif kind in ("html-as-pdf", "truncated-pdf", "encrypted-pdf"):
        files.pop(d["main"][1], None)
        d["main"] = ("main", "afgoerelse.pdf", d["title"])
        pdf = pdf_document(d["title"], [_paragraph(rng)], 1, encrypt=kind == "encrypted-pdf")
        if kind == "html-as-pdf":
            pdf = f"<!DOCTYPE html><html><body><h1>{d['title']}</h1></body></html>".encode()
        elif kind == "truncated-pdf":
            pdf = pdf[: len(pdf) * 2 // 3]
        files["afgoerelse.pdf"] = pdf
    elif kind == "forbidden-filename":
        d["attachments"].append(("bilag?.pdf", "Bilag"))
        files["bilag?.pdf"] = pdf_document("Bilag", [_paragraph(rng)], 1)
    elif kind == "att-with-dtd":
        files[model.ATTENTION_FILE] = (
            b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE AttentionData [\n'
            b'  <!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>\n'
            b'<AttentionData xmlns="urn:docpost:attention:1"><AttentionPerson><label>&xxe;</label>'
            b"</AttentionPerson></AttentionData>\n"
        )
    elif kind == "empty-letter":
        files.pop(d["main"][1], None)
        d["main"] = ("letter", "brev.xml", None)
        files["brev.xml"] = letter_xml([], "Med venlig hilsen", [])
    elif kind == "out-of-order":
        flags["manifest_tree"] = lambda root: root.insert(1, root.find(f"{{{ns}}}DocumentType"))
    elif kind == "latin1-declared-utf8":
        files.pop(d["main"][1], None)
        d["main"] = ("letter", "brev.xml", None)
        blocks = [("h", d["title"], 1), ("p", "Kære modtager. Vi skriver om din sag på Søndergade."), ("p", _paragraph(rng))]
        files["brev.xml"] = _xml(letter_xml(blocks, None, [])).decode("utf-8").encode("latin-1")
    elif kind == "duplicate-title":
        def dup(root):
            title = root.find(f"{{{ns}}}Title")
            title.addnext(etree.fromstring(etree.tostring(title)))
        flags["manifest_tree"] = dup
    elif kind == "bad-case-uuid":
        files[model.CASE_FILE] = case_xml({
            "case_uuid": "sag-42", "case_number": "27.12.00-G01-1-25", "case_title": d["title"],
            "case_system": "SBSYS", "kle": ("27.12.00", "G01", "Hjemmehjælp"), "document_uuid": _uuid(rng),
            "document_number": "1", "title": d["title"], "letter_date": "2025-01-01", "created": "2025-01-01",
            "actor_uuid": _uuid(rng), "actor_name": "Søby Kommune",
        })
    elif kind == "att-cpr-bad-date":
        files[model.ATTENTION_FILE] = attention_xml({"person": _person(rng), "cpr": [(_bad_cpr(rng), _person(rng))]})
    elif kind == "path-traversal":
        d["attachments"].append(("../../../etc/passwd", "Bilag"))
    elif kind == "bad-emne-id":
        d["reply"] = ("reply", 100, 12)
    elif kind == "empty-attachment":
        d["attachments"].append(("tomt-bilag.pdf", "Bilag"))
        files["tomt-bilag.pdf"] = b""
    elif kind == "physical-without-address":
        d["channel"], d["address"] = "physical", None
    else:
        raise ValueError(f"unknown broken kind {kind!r}")
    return flags


def build_submission(
    seed: int, date: dt.date, index: int, broken: str | None = None
) -> tuple[model.SubmissionKey, dict[str, bytes], dict]:
    """Submission ``index`` of a night: its key, its files (``_READY`` last) and its draft."""
    rng = random.Random(f"docpost:{seed}:{date.isoformat()}:{index}")
    source = rng.choice(sorted(SOURCE_SYSTEMS))
    key = model.SubmissionKey(source, date, f"d{date:%Y%m%d}-{index:05d}")
    force = {"cpr-bad-date": "citizen", "cvr-bad-check-digit": "company"}.get(broken or "")
    d, files = _draft(rng, source, date, key.submission_id, force)
    flags = _break(broken, rng, d, files) if broken else {}
    root = manifest_xml(d)
    if "manifest_tree" in flags:
        flags["manifest_tree"](root)
    manifest = _xml(root)
    if "manifest_bytes" in flags:
        manifest = flags["manifest_bytes"](manifest)
    out: dict[str, bytes] = {}
    if not flags.get("no_manifest"):
        out[model.MANIFEST_FILE] = manifest
    for name in sorted(files):
        value = files[name]
        out[name] = value if isinstance(value, bytes) else _xml(value)
    if not flags.get("no_ready"):
        out[model.READY_MARKER] = b""
    return key, out, d


def generate_night(
    count: int,
    date: dt.date | str | None = None,
    out_dir: str | Path | None = None,
    *,
    sink: Sink | None = None,
    broken_share: float = 0.0,
    seed: int = 0,
) -> NightResult:
    """Write ``count`` submissions for ``date`` (default today) to ``out_dir`` or ``sink``.

    ``broken_share`` (0..1) of them are broken, the kinds taken in turn from :data:`BROKEN_KINDS`;
    ``expected.json`` names the reason codes each one must be rejected with.
    """
    if (out_dir is None) == (sink is None):
        raise ValueError("give exactly one of out_dir and sink")
    if not 0.0 <= broken_share <= 1.0:
        raise ValueError("broken_share must be between 0 and 1")
    if count < 0:
        raise ValueError("count must not be negative")
    if isinstance(date, str):
        date = dt.date.fromisoformat(date)
    date = date or dt.date.today()
    write = sink or DirectorySink(out_dir)
    picker = random.Random(f"docpost:{seed}:{date.isoformat()}:broken")
    n_broken = round(count * broken_share)
    broken_at = sorted(picker.sample(range(count), n_broken))
    kinds = list(BROKEN_KINDS)
    broken_kind = {index: kinds[n % len(kinds)] for n, index in enumerate(broken_at)}
    result = NightResult(date, count)
    for index in range(count):
        kind = broken_kind.get(index)
        key, files, d = build_submission(seed, date, index, kind)
        for name, data in files.items():
            write(f"{key.prefix}{name}", data)
        result.expected[str(key)] = list(BROKEN_KINDS[kind]) if kind else []
        if not kind:
            rng = random.Random(f"docpost:{seed}:{key}:register")
            result.recipients[d["identifier"]] = rng.choices(("digital", "physical", "unknown"), (80, 15, 5))[0]
    write("recipients.json", json.dumps(result.recipients, indent=1, sort_keys=True).encode())
    write("expected.json", json.dumps(result.expected, indent=1, sort_keys=True).encode())
    return result
