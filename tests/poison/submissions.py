"""Poison submissions: letters that pass ``docpost validate`` but break a later stage.

Each :class:`Poison` is one submission folder as a source system drops it (``inbox/<sys>/<date>/<id>/``,
its files, ``_READY`` written last by :func:`drop`) and what a night run must make of it: the states
it may be in afterwards and the ledger's reason code. They are meant to be mixed into a night of
good letters and run through the pipeline however the caller runs it (the stage functions
directly, or the Airflow DAGs), so nothing here depends on how the pipeline is run::

    poisons = corpus(night)
    drop(sink_or_store, poisons)              # the generator's sink, or an ObjectStore
    register.update(recipients(poisons))       # the SF1601 simulator's recipients.json
    ... run the night ...
    for p in poisons: ledger row of p.folder -> state in p.states, reason_code == p.code

Kinds of outcome (``states``, ``code``):

- REJECTED with a stamping / render / print code: the letter's own problem found before sending;
- FAILED with a memo / fjernprint / render code: found while building the SF1601 request;
- the letter's current stage state (STAMPED) with ``internal.<ExceptionType>``: an unexpected
  exception (a library's) holds it; later runs try again and quarantine it as FAILED after
  ``DOCPOST_MAX_FAULTS`` runs (``quarantined`` is True for these);
- SUBMITTED (``code`` None): accepted by SF1601 (some only fail later, by receipt: ``receipt_code``);
- folder refused at collect (``states`` empty): no ledger row, a report
  ``rejected/<sys>/<date>/<id>/rejection.json`` whose first code is ``code``.

Every poison's files pass :func:`docpost.validation.validate` (for the refused folders: under a
well-formed key), which :func:`corpus`'s callers should check.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from docpost import identifiers, model
from docpost_testbench.generate import attention_xml, letter_xml, manifest_xml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_BYG = ROOT / "examples" / "inbox" / "byggesag" / "2026-01-15" / "byg-000002"
READY = model.READY_MARKER

# States (MessageState values) as plain strings: this module needs no ledger.
REJECTED, FAILED, SUBMITTED, STAMPED = "REJECTED", "FAILED", "SUBMITTED", "STAMPED"


@dataclass(frozen=True)
class Poison:
    """One poison submission and the outcome a night run must give it."""

    name: str  # what it is, for messages
    folder: str  # "inbox/<sys>/<date>/<id>/" as dropped
    files: dict[str, bytes]  # file name -> bytes (without _READY)
    states: frozenset[str]  # acceptable MessageState values after the night; empty: refused at collect
    code: str | None  # expected ledger reason_code (refused folders: the report's first code); None: SUBMITTED
    #: the recipient's entry in the SF1601 simulator's register ("digital" | "physical" | "unknown"), if any
    register: str | None = None
    #: the reason code a later delivery receipt fails it with (SUBMITTED letters the service fails later)
    receipt_code: str | None = None
    #: the main PDF goes to print with an address cover page in front of it
    cover_page: bool = False
    #: held with ``internal.*``: quarantined (FAILED, same code) after DOCPOST_MAX_FAULTS runs
    quarantined: bool = False
    #: the folder path breaks the contract: refused at collect, never registered
    refused_folder: bool = False
    recipient: str = field(default="", repr=False)  # CPR or CVR of the manifest

    @property
    def source_system(self) -> str:
        return self.folder.split("/")[1]

    @property
    def date_folder(self) -> str:
        return self.folder.split("/")[2]

    @property
    def submission_id(self) -> str:
        return self.folder.split("/")[3]

    @property
    def rejection_key(self) -> str:
        """Where a rejection report of it is written (``rejected/<sys>/<date>/<id>/rejection.json``)."""
        return "rejected/" + self.folder[len("inbox/"):] + "rejection.json"


# --------------------------------------------------------------------------- dropping


def drop(sink_or_store, poisons: Iterable[Poison]) -> None:
    """Write each poison's files, then its ``_READY``: through the generator's sink
    (``sink(key, data)``, e.g. :class:`docpost.storage.S3Sink`, which orders ``_READY`` last
    itself) or an :class:`docpost.storage.ObjectStore` (``put_bytes``)."""
    put: Callable[[str, bytes], None]
    if hasattr(sink_or_store, "put_bytes"):
        put = sink_or_store.put_bytes
    elif callable(sink_or_store):
        put = sink_or_store
    else:
        raise TypeError("drop() needs a sink callable or an ObjectStore")
    for poison in poisons:
        for name, data in poison.files.items():
            put(poison.folder + name, data)
        put(poison.folder + READY, b"")


def recipients(poisons: Iterable[Poison]) -> dict[str, str]:
    """The poisons' entries for the SF1601 simulator's register (``recipients.json``)."""
    return {p.recipient: p.register for p in poisons if p.register and p.recipient}


# --------------------------------------------------------------------------- building blocks


def _cpr(n: int) -> str:
    return identifiers.cpr_for(dt.date(1950, 1, 1) + dt.timedelta(days=97 * n), 100 + n)


def _cvr(n: int) -> str:
    base = 3170000 + 37 * n
    while True:
        first7 = str(base)
        digit = identifiers.cvr_check_digit(first7)
        if digit is not None:
            return f"{first7}{digit}"
        base += 1


ADDRESS = {"StreetName": "Søndergade", "StreetBuildingIdentifier": "12B", "FloorIdentifier": "2",
           "SuiteIdentifier": "th", "PostCodeIdentifier": "8000", "DistrictName": "Aarhus C"}


def _xml(root) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _manifest(title: str, *, identifier: str, name: str = "Mette Hansen", company: bool = False,
              address: dict | None = ADDRESS, channel: str | None = "auto", doc_type: str = "afgoerelse",
              reply: tuple | None = None, main: tuple = ("letter", "brev.xml", None),
              attachments: list | None = None, case_reference: str | None = None) -> bytes:
    return _xml(manifest_xml({
        "id_type": "CVR" if company else "CPR", "identifier": identifier, "name": name,
        "address": address, "title": title, "document_type": doc_type, "channel": channel,
        "reply": reply, "main": main, "attachments": attachments or [], "case_reference": case_reference,
    }))


BODY = ("Kommunen har nu behandlet din sag, og vi har lagt vægt på de oplysninger, du har givet os. "
        "Hvis du er uenig i afgørelsen, kan du klage inden fire uger fra den dag, du har modtaget brevet.")


def _letter(*blocks: tuple, title: str = "Afgørelse") -> bytes:
    return _xml(letter_xml([("h", title[:200], 1), *blocks], "Med venlig hilsen",
                           ["Lone Bækgaard", "Sagsbehandler", "Borgerservice, Søby Kommune"]))


def _pdf(draw: Callable, *, pages: int = 1, size: tuple[float, float] | None = None) -> bytes:
    """A real PDF (reportlab, invariant): ``draw(canvas, page_index, width, height)`` per page."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    width, height = size or A4
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(width, height), invariant=1)
    c.setTitle("Brev fra Søby Kommune")
    for page in range(pages):
        draw(c, page, width, height)
        c.showPage()
    c.save()
    return buf.getvalue()


def _mm(v: float) -> float:
    return v * 72 / 25.4


def _body_text(c, y_top_mm: float, width: float, height: float, lines: int = 12) -> None:
    c.setFont("Helvetica", 10)
    for n in range(lines):
        c.drawString(_mm(25), height - _mm(y_top_mm + 5 * n), "Kommunen har behandlet din sag og truffet afgørelse.")


def _window_address(c, height: float, lines: list[str]) -> None:
    """The recipient's address where the envelope window shows it (page 1)."""
    c.setFont("Helvetica", 10)
    for n, line in enumerate(lines):
        c.drawString(_mm(25), height - _mm(55 + 4.5 * n), line)


WINDOW_LINES = ["Mette Hansen", "Søndergade 12B, 2. th", "8000 Aarhus C"]


def _print_ready(extra: Callable | None = None, *, pages: int = 1, size=None) -> bytes:
    """A letter PDF that passes the print check (address in the window, body below), plus ``extra``."""
    def draw(c, page, w, h):
        if page == 0:
            _window_address(c, h, WINDOW_LINES)
            _body_text(c, 105, w, h)
        else:
            _body_text(c, 25, w, h, lines=40)
        if extra:
            extra(c, page, w, h)
    return _pdf(draw, pages=pages, size=size)


def _text_through_window(pages: int = 1) -> bytes:
    """A case system's PDF whose page 1 runs text straight through the envelope window."""
    def draw(c, page, w, h):
        c.setFont("Helvetica", 10)
        for n in range(45):
            c.drawString(_mm(25), h - _mm(25 + 5 * n),
                         "Afgørelse om byggetilladelse: teksten begynder øverst og løber hen over ruden.")
    return _pdf(draw, pages=pages)


def _odd_rotate_pdf() -> bytes:
    """A readable A4 PDF whose page carries ``/Rotate /Ninety`` (a name, where a number belongs)."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import NameObject

    reader = PdfReader(io.BytesIO(_print_ready()))
    writer = PdfWriter()
    writer.append(reader)
    writer.pages[0][NameObject("/Rotate")] = NameObject("/Ninety")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# --------------------------------------------------------------------------- the corpus


def _first_closed_emne(night: dt.date) -> tuple[int, int] | None:
    """(Postkasse, Emne) of an Emne of the configured hierarchy that is closed on ``night``."""
    from docpost.hierarchy import load_hierarchy

    hierarchy = load_hierarchy()
    for emne in sorted(hierarchy.emner, key=lambda e: e.id):
        if hierarchy.is_closed(emne, night):
            return emne.postkasse_id, emne.id
    return None


#: A recipient whose name and address, each valid, are too many lines for the envelope window.
TOO_LONG_FOR_THE_WINDOW = dict(
    name="Bodil Margrethe Kirstine Østergaard-Lykkegaard Frølund Bækgaard Christensen "
         "Skovgård Holm Sørensen Thøgersen Rasmussen",
    address={"CoNavn": "Anne-Mette Østergaard Christensen", "StreetName": "Præstegårdsvej",
             "StreetBuildingIdentifier": "7", "FloorIdentifier": "3", "SuiteIdentifier": "th",
             "MailDeliverySublocationIdentifier": "Vindmøllegården ved Søby Mose",
             "PostOfficeBoxIdentifier": "1234", "PostCodeIdentifier": "5960",
             "DistrictName": "Marstal Ærø Kommune", "CountryIdentificationCode": "GL"})


def corpus(night: dt.date) -> list[Poison]:
    """The poison submissions for ``night`` (folders dated ``night`` unless the date folder is the poison)."""
    day = night.isoformat()
    out: list[Poison] = []

    def add(name: str, sub_id: str, files: dict[str, bytes], states: Iterable[str], code: str | None, *,
            system: str = "sbsys", date_folder: str = day, recipient: str = "", **more) -> None:
        out.append(Poison(name, f"inbox/{system}/{date_folder}/{sub_id}/", files, frozenset(states), code,
                          recipient=recipient, **more))

    def letter_files(n: int, title: str, *blocks: tuple, company: bool = False, **manifest) -> tuple[str, dict]:
        ident = _cvr(n) if company else _cpr(n)
        files = {"manifest.xml": _manifest(title, identifier=ident, company=company, **manifest),
                 "brev.xml": _letter(*(blocks or (("p", BODY),)), title=title)}
        return ident, files

    def pdf_files(n: int, title: str, pdf: bytes, *, company: bool = False, **manifest) -> tuple[str, dict]:
        ident = _cvr(n) if company else _cpr(n)
        files = {"manifest.xml": _manifest(title, identifier=ident, company=company,
                                           main=("main", "afgoerelse.pdf", title), **manifest),
                 "afgoerelse.pdf": pdf}
        return ident, files

    # -- the path breaks the contract: refused at collect, files valid -------------------------
    _, files = letter_files(1, "Orientering om din sag")
    add("submission id of 101 characters", "p" * 101, files, (), "folder.bad-submission-id",
        refused_folder=True)
    _, files = letter_files(2, "Orientering om din sag")
    add("submission id with a dot", "poison.dot", files, (), "folder.bad-submission-id", refused_folder=True)
    _, files = letter_files(3, "Orientering om din sag")
    add("date folder written DD-MM-YYYY", "poison-date-dmy", files, (), "folder.bad-date",
        date_folder=f"{night:%d-%m-%Y}", refused_folder=True)
    _, files = letter_files(4, "Orientering om din sag")
    add("date folder without zero padding (2026-1-5 style)", "poison-date-unpadded", files, (), "folder.bad-date",
        date_folder=f"{night.year}-1-5", refused_folder=True)
    _, files = letter_files(5, "Orientering om din sag")
    add("source system folder in upper case", "poison-upper", files, (), "folder.bad-source-system",
        system="SBSYS", refused_folder=True)
    _, files = letter_files(6, "Orientering om din sag")
    add("source system folder with a space", "poison-space", files, (), "folder.bad-source-system",
        system="sb sys", refused_folder=True)

    # -- stamping: reply address or profile that does not resolve -------------------------------
    ident, files = letter_files(10, "Afgørelse om boligstøtte", reply=("profile", "findes-ikke"))
    add("reply override names an unknown sending profile", "poison-unknown-profile", files, {REJECTED},
        "stamping.unknown-profile", recipient=ident)
    ident, files = letter_files(11, "Afgørelse om boligstøtte", reply=("reply", 999, 9999))
    add("reply override to an unknown Postkasse", "poison-unknown-postkasse", files, {REJECTED},
        "stamping.unknown-postkasse", recipient=ident)
    ident, files = letter_files(12, "Afgørelse om boligstøtte", reply=("reply", 100, 1999))
    add("reply override to an unknown Emne", "poison-unknown-emne", files, {REJECTED},
        "stamping.unknown-emne", recipient=ident)
    ident, files = letter_files(13, "Afgørelse om boligstøtte", reply=("reply", 100, 2001))
    add("reply override to an Emne of another Postkasse", "poison-emne-elsewhere", files, {REJECTED},
        "stamping.emne-not-in-postkasse", recipient=ident)
    closed = _first_closed_emne(night)
    if closed is not None:
        ident, files = letter_files(14, "Afgørelse om boligstøtte", reply=("reply", *closed))
        add(f"reply override to closed Emne {closed[1]}", "poison-closed-emne", files, {REJECTED},
            "stamping.closed-contact-point", recipient=ident)
    ident, files = letter_files(15, "Orientering om din sag", doc_type="orientering")
    add("source system without a sending profile", "poison-no-profile", files, {REJECTED},
        "stamping.no-profile", system="ukendt-system", recipient=ident)

    # -- render: letter text or supplied PDF that cannot become the letter ----------------------
    ident, files = letter_files(
        20, "Afgørelse om hjælpemidler",
        **TOO_LONG_FOR_THE_WINDOW)
    add("address too long for the envelope window", "poison-address-window", files, {REJECTED},
        "render.address-too-long", recipient=ident)
    ident, files = letter_files(
        21, "Bevilling af hjælpemidler", ("p", BODY),
        ("table", [[f"Kolonne {i}" for i in range(1, 11)], ["W" * 500] * 10]))
    add("table with a cell far taller than a page (reportlab LayoutError)", "poison-table-cell", files,
        {STAMPED}, "internal.LayoutError", recipient=ident, quarantined=True)
    ident, files = letter_files(22, "Afgørelse om tilskud", ("p", "Ø" * 5000), ("h", "x" * 200, 2))
    add("paragraph of one unbreakable 5,000-character word", "poison-long-word", files, {SUBMITTED}, None,
        recipient=ident)
    ident, files = letter_files(23, "Afgørelse om tilskud 電子郵便 😀",
                                ("p", "中文字符 ひらがな 한국어 العربية עברית ✉ 😀🎉 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 — characters the letter font lacks."))
    add("letter text with characters the letter font lacks (CJK, emoji)", "poison-missing-glyphs", files,
        {SUBMITTED}, None, recipient=ident)
    ident, files = pdf_files(24, "Afgørelse om byggetilladelse", _text_through_window(), address=None)
    add("supplied PDF needing an address cover page, no postal address (auto)", "poison-cover-no-address", files,
        {REJECTED}, "render.address-missing", recipient=ident)
    ident, files = pdf_files(
        25, "Afgørelse om byggetilladelse", _text_through_window(), channel="physical",
        **TOO_LONG_FOR_THE_WINDOW)
    add("supplied PDF needing a cover page whose address does not fit the window (physical)",
        "poison-cover-address-window", files, {REJECTED}, "render.address-too-long", recipient=ident)
    ident, files = pdf_files(26, "Afgørelse om byggetilladelse", _odd_rotate_pdf(), channel="physical")
    add("supplied PDF with /Rotate /Ninety (a damaged page dictionary)", "poison-odd-rotate", files, {REJECTED},
        "print.unreadable", recipient=ident)

    # -- print rules on a supplied PDF that may be printed ---------------------------------------
    from reportlab.lib.pagesizes import A4, landscape, letter as us_letter

    ident, files = pdf_files(30, "Opkrævning af ejendomsskat", _print_ready(size=landscape(A4)), channel="physical")
    add("supplied PDF in A4 landscape (physical)", "poison-landscape", files, {REJECTED}, "print.landscape",
        recipient=ident)
    ident, files = pdf_files(31, "Opkrævning af ejendomsskat", _print_ready(size=us_letter), channel="auto")
    add("supplied PDF in US Letter (auto)", "poison-us-letter", files, {REJECTED}, "print.not-a4", recipient=ident)
    ident, files = pdf_files(32, "Opkrævning af ejendomsskat", _print_ready(
        lambda c, p, w, h: c.drawString(_mm(30), h - _mm(3), "Sidehoved helt oppe ved kanten")), channel="physical")
    add("supplied PDF with text 3 mm from the paper's edge (physical)", "poison-margin", files, {REJECTED},
        "print.margin", recipient=ident)
    ident, files = pdf_files(33, "Opkrævning af ejendomsskat", _print_ready(
        lambda c, p, w, h: c.rect(_mm(6), h - _mm(150), _mm(4), _mm(20), fill=1)), channel="physical")
    add("supplied PDF with a mark in the print shop's barcode strip (physical)", "poison-omr", files, {REJECTED},
        "print.omr-zone", recipient=ident)
    ident, files = pdf_files(34, "Opkrævning af ejendomsskat", _print_ready(pages=11), channel="physical")
    add("supplied PDF of 11 pages (physical)", "poison-11-pages", files, {REJECTED}, "print.too-many-pages",
        recipient=ident)
    ident, files = pdf_files(35, "Afgørelse om byggetilladelse", _text_through_window(pages=10), channel="auto")
    add("supplied PDF of 10 pages needing a cover page (auto)", "poison-10-pages-cover", files, {REJECTED},
        "print.too-many-pages", recipient=ident)
    ident, files = pdf_files(36, "Opkrævning af ejendomsskat", _print_ready(size=landscape(A4)), channel="digital")
    add("supplied landscape PDF on a digital-only letter (no print check)", "poison-landscape-digital", files,
        {SUBMITTED}, None, recipient=ident)
    ident, files = pdf_files(37, "Afgørelse om byggetilladelse", _text_through_window(), channel="physical")
    add("supplied PDF with text through the window (physical: cover page)", "poison-window-physical", files,
        {SUBMITTED}, None, recipient=ident, cover_page=True)
    ident, files = pdf_files(29, "Afgørelse om byggetilladelse", _pdf(lambda c, p, w, h: _body_text(c, 105, w, h)),
                             channel="physical")
    add("supplied PDF with nothing in the window (physical: cover page)", "poison-no-address-physical", files,
        {SUBMITTED}, None, recipient=ident, cover_page=True)
    ident, files = pdf_files(38, "Afgørelse om byggetilladelse", _text_through_window(), channel="digital")
    add("supplied PDF with text through the window (digital: as it is)", "poison-window-digital", files,
        {SUBMITTED}, None, recipient=ident)

    ident = _cpr(39)
    files = {"manifest.xml": _manifest("Afgørelse om tilskud", identifier=ident, channel="physical",
                                       attachments=[("bilag-liggende.pdf", "Oversigt")]),
             "brev.xml": _letter(("p", BODY)),
             "bilag-liggende.pdf": _print_ready(size=landscape(A4))}
    add("physical letter with a landscape attachment (attachments are not print-checked)",
        "poison-landscape-attachment", files, {SUBMITTED}, None, recipient=ident)

    # -- delivery: the MeMo message or the ForsendelseI cannot be built --------------------------
    foreign = {"StreetName": "Kungsträdgårdsgatan vid Slottsbacken", "StreetBuildingIdentifier": "12",
               "PostCodeIdentifier": "1234", "DistrictName": "Stockholm", "CountryIdentificationCode": "SE"}
    ident, files = letter_files(40, "Indkaldelse til samtale", channel="physical", address=foreign)
    add("physical letter, foreign address line over 34 characters (refused at render)", "poison-fjernprint-line",
        files, {REJECTED}, "fjernprint.input", recipient=ident)
    ident, files = letter_files(41, "Indkaldelse til samtale", channel="auto", address=foreign)
    add("auto letter, foreign address line over 34 characters (print fallback, refused at render)",
        "poison-fjernprint-auto", files, {REJECTED}, "fjernprint.input", recipient=ident)
    ident, files = letter_files(42, "Afgørelse om tilskud til briller (ny\u00adberegning)")
    add("title with a soft hyphen (left out of the MeMo file name)", "poison-soft-hyphen", files, {SUBMITTED}, None,
        recipient=ident)
    ident = _cpr(43)
    files = {"manifest.xml": _manifest("Afgørelse om tilskud", identifier=ident,
                                       attachments=[("Bilag\ue000.pdf", "Bilag")]),
             "brev.xml": _letter(("p", BODY)),
             "Bilag\ue000.pdf": _print_ready()}
    add("attachment file name with a private-use character (replaced in the MeMo file name)",
        "poison-private-use-name", files, {SUBMITTED}, None, recipient=ident)
    ident, files = letter_files(44, "Afgørelse om tilskud")
    files["att.xml"] = _xml(attention_xml({"person": "Jørgen " + "B" * 240, "unit": "Ejendomsadministrationen " * 9}))
    add("attention person and unit labels, each valid, too long together for MeMo (shortened)",
        "poison-attention-line", files, {SUBMITTED}, None, recipient=ident)
    ident, files = letter_files(45, "T" * 256)
    add("title at the manifest's maximum length (256)", "poison-title-256", files, {SUBMITTED}, None,
        recipient=ident)
    ident, files = letter_files(46, "Orientering om vejarbejde",
                                *([("p", " ".join([BODY] * 12))] * 70), channel="physical")
    add("physical letter rendered to some 40 pages (no page limit for rendered letters)", "poison-40-pages",
        files, {SUBMITTED}, None, recipient=ident)

    # -- the service: accepted, then failed by receipt ------------------------------------------
    ident, files = letter_files(50, "Afgørelse om boligstøtte", channel="digital")
    add("digital-only letter to a recipient the service does not know", "poison-recipient-unknown", files,
        {SUBMITTED}, None, recipient=ident, register="unknown", receipt_code="recipient.unknown")
    ident, files = letter_files(51, "Afgørelse om boligstøtte", channel="digital")
    add("digital-only letter to a recipient exempt from Digital Post", "poison-recipient-exempt", files,
        {SUBMITTED}, None, recipient=ident, register="physical", receipt_code="recipient.not-digital")

    # -- the project's own example: digital as dropped, and a physical copy ----------------------
    example = {p.name: p.read_bytes() for p in sorted(EXAMPLE_BYG.iterdir()) if p.name != READY}
    add("examples/inbox/byggesag/.../byg-000002 (digital, supplied PDF)", "byg-000002", example, {SUBMITTED},
        None, system="byggesag", recipient="34567808")
    physical = dict(example)
    physical["manifest.xml"] = example["manifest.xml"].replace(b"<ChannelWish>digital</ChannelWish>",
                                                               b"<ChannelWish>physical</ChannelWish>")
    assert physical["manifest.xml"] != example["manifest.xml"]
    add("byg-000002 sent physical (cover page in front of the supplied PDF)", "byg-000002-fysisk", physical,
        {SUBMITTED}, None, system="byggesag", recipient="34567808", cover_page=True)
    return out
