"""The physical fallback (fjernprint ``ForsendelseI``) and the SF1601 ``kombi_request`` body.

``ForsendelseI`` is validated against the KOMBIT SF1600 schemas copied into
``schemas/kombit/`` (see its README). ``kombi_request`` has no public schema: its shape
(``KombiValgKode``, then ``memo:Message``, then ``fjernprint:ForsendelseISamling/ForsendelseI``)
is checked by :func:`parse_kombi_request`, which the SF1601 simulator uses on what it receives.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from docpost import config, model, xmlsafe
from docpost.errors import DocpostError
from docpost.memo import (
    NS_MEMO,
    MemoIssue,
    OutboundLetter,
    redact,
    parse_xml,
    schema_issues,
    utc_z,
)

NS_FJERNPRINT = "urn:oio:fjernprint:1.0.0"
NS_DKAL = "urn:oio:dkal:1.0.0"
NS_SAGDOK = "urn:oio:sagdok:3.0.0"
NS_ADIR = "urn:oio:adir:dagpenge:2009.07.01"
NS_ITST = "http://rep.oio.dk/itst.dk/xml/schemas/2006/01/17/"
NS_DKCC = "http://rep.oio.dk/ebxml/xml/schemas/dkcc/2003/02/13/"
NS_DKCC2005 = "http://rep.oio.dk/ebxml/xml/schemas/dkcc/2005/03/15/"
NS_DKCC2005_2 = "http://rep.oio.dk/ebxml/xml/schemas/dkcc/2005/05/13/"
NS_DKCC2005_3 = "http://rep.oio.dk/ebxml/xml/schemas/dkcc/2005/05/19/"

NSMAP = {
    "fjernprint": NS_FJERNPRINT, "dkal": NS_DKAL, "sd": NS_SAGDOK, "adir": NS_ADIR,
    "itst": NS_ITST, "dkcc": NS_DKCC, "dkcc2005": NS_DKCC2005, "dkcc2005-2": NS_DKCC2005_2,
    "dkcc2005-3": NS_DKCC2005_3,
}
OIO_DIR = Path("kombit") / "SF1600_EP_SP1-2" / "xsd" / "oio"
CPR_PLACEHOLDER = "0000000000"  # SF1601: a CPR recipient's number is never sent in ForsendelseI
FILE_FORMAT_PDF = "PDF"

KOMBI_ROOT = "kombi_request"
KOMBI_VALG = "KombiValgKode"
KOMBI_AUTO = "Automatisk Valg"
KOMBI_DIGITAL = "Digital Post"
KOMBI_PHYSICAL = "Fysisk Post"
KOMBI_NEMSMS = "NemSMS"
KOMBI_CODES = (KOMBI_AUTO, KOMBI_DIGITAL, KOMBI_PHYSICAL, KOMBI_NEMSMS)
FORSENDELSE_SAMLING = "ForsendelseISamling"

_F = f"{{{NS_FJERNPRINT}}}"
_D = f"{{{NS_DKAL}}}"


# ---------------------------------------------------------------- errors


class FjernprintError(DocpostError):
    """Root of fjernprint and kombi_request errors; ``code`` is stable."""

    code = "fjernprint.error"

    def __init__(self, message: str, issues: list[MemoIssue] | None = None):
        super().__init__(message)
        self.issues = list(issues or [])


class ForsendelseInvalidError(FjernprintError):
    """A ForsendelseI breaks the KOMBIT schemas or the SF1601 rules."""

    code = "fjernprint.invalid"


class ForsendelseInputError(FjernprintError):
    """The letter cannot become a ForsendelseI (missing or malformed input)."""

    code = "fjernprint.input"


class KombiRequestError(FjernprintError):
    """A kombi_request body has the wrong shape."""

    code = "kombi.invalid"


class KombiMalformedError(KombiRequestError):
    """Not well-formed XML, a DTD, or a root other than ``kombi_request``."""

    code = "kombi.malformed"


class KombiValgError(KombiRequestError):
    """``KombiValgKode`` missing or not one of the four codes."""

    code = "kombi.unknown-kombivalgkode"


class KombiOrderError(KombiRequestError):
    """The parts are there but in the wrong order (or repeated)."""

    code = "kombi.order"


class KombiContentError(KombiRequestError):
    """A part is missing for the chosen KombiValgKode, or an unknown element is present."""

    code = "kombi.content"


# ---------------------------------------------------------------- schema


def _schema_aggregates(oio: Path) -> list[tuple[str, str]]:
    """One aggregate XSD per namespace, ``(namespace, text)``, in dependency order (leaves first).

    libxml2 honours only the first ``xs:import`` of a namespace, and the KOMBIT files import the
    same namespace from many files; so each namespace gets an in-memory aggregate that includes
    all its files, imported in dependency order before anything imports it piecemeal.
    """
    files: dict[str, list[str]] = {}
    deps: dict[str, set[str]] = {}
    for path in sorted(oio.glob("*.xsd")):
        text = path.read_text(encoding="utf-8")
        match = re.search(r'targetNamespace="([^"]*)"', text)
        if match is None:
            continue
        ns = match.group(1)
        files.setdefault(ns, []).append(path.name)
        deps.setdefault(ns, set()).update(
            n for n in re.findall(r'<import\s+namespace="([^"]*)"', text) if n != ns
        )
    order: list[str] = []

    def visit(ns: str, seen: tuple[str, ...] = ()) -> None:
        if ns in order or ns in seen:
            return
        for dep in sorted(deps.get(ns, ())):
            visit(dep, (*seen, ns))
        order.append(ns)

    for ns in sorted(files):
        visit(ns)
    xs = "http://www.w3.org/2001/XMLSchema"
    parts = []
    for ns in order:
        if ns not in files:
            continue
        includes = "".join(f'<xs:include schemaLocation="{name}"/>' for name in files[ns])
        parts.append((ns, f'<xs:schema xmlns:xs="{xs}" targetNamespace="{ns}" '
                          f'elementFormDefault="qualified">{includes}</xs:schema>'))
    return parts


class _AggregateResolver(etree.Resolver):
    """Serves the per-namespace aggregate XSDs of :func:`_schema_aggregates` from memory."""

    def __init__(self, aggregates: dict[str, str]):
        super().__init__()
        self.aggregates = aggregates

    def resolve(self, url, pubid, context):  # noqa: D102 (lxml API)
        name = url.rsplit("/", 1)[-1]
        if name in self.aggregates:
            return self.resolve_string(self.aggregates[name], context, base_url=url)
        return None


def _driver(driver_path: Path) -> tuple[str, list[etree.Resolver]]:
    """The in-memory entry XSD importing one aggregate per namespace, and their resolver."""
    oio = driver_path.parent
    parts = _schema_aggregates(oio)
    aggregates = {f"docpost-aggregate-{i}.xsd": text for i, (_, text) in enumerate(parts)}
    imports = "".join(
        f'<xs:import namespace="{ns}" schemaLocation="{(oio / f"docpost-aggregate-{i}.xsd").as_uri()}"/>'
        for i, (ns, _) in enumerate(parts)
    )
    driver = f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">{imports}</xs:schema>'
    return driver, [_AggregateResolver(aggregates)]


def forsendelse_schema() -> xmlsafe.Schema:
    """The compiled KOMBIT fjernprint schema set from ``schema_dir`` (:func:`docpost.xmlsafe.schema`)."""
    return xmlsafe.schema(config.settings().schema_dir / OIO_DIR / "docpost-driver.xsd", build=_driver)


# ---------------------------------------------------------------- building ForsendelseI


@dataclass(frozen=True)
class PrintOptions:
    """Print and post parameters of the physical letter (KOMBIT code lists)."""

    simplex_duplex: str = "Duplex"  # Simplex | Duplex
    colour: str = "SH"  # SH (black and white) | Farve
    envelope: str = "C5"  # C4 | C5 | MA
    post_category: str | None = None  # None: Prioritaire (A) for legal notification, else Economique (B)
    forsendelse_type: int | None = None  # ForsendelseTypeIdentifikator agreed with KOMBIT, if any


_BUILDING = re.compile(r"([1-9]|[1-9][0-9]|[1-9][0-9]{2})|([1-9][A-Z]|[1-9][0-9][A-Z]|[1-9][0-9]{2}[A-Z])")
_FLOOR = re.compile(r"[1-9]|[1-9][0-9]|KL|ST|kl|st|k[2-9]|K[2-9]")


def _sub(parent: etree._Element, tag: str, text: str | bytes | None = None) -> etree._Element:
    el = etree.SubElement(parent, tag)
    if text is not None:
        el.text = text
    return el


def _structured_address(address: model.PostalAddress) -> dict[str, str] | None:
    """The DKCC fields when the address fits them, else None (the address lines are used)."""
    building = address.street_building.replace(" ", "").upper()
    floor = (address.floor or "").strip().rstrip(".")
    if floor.lower() in ("st", "kl"):
        floor = floor.lower()
    fits = (
        address.country_code.upper() == "DK"
        and 1 <= len(address.street_name) <= 40
        and _BUILDING.fullmatch(building) is not None
        and (not floor or _FLOOR.fullmatch(floor) is not None)
        and (not address.suite or len(address.suite) <= 4)
        and re.fullmatch(r"[0-9]{4}", address.postcode) is not None
        and (not address.co_name or len(address.co_name) <= 130)
        and (not address.mail_delivery_sublocation or len(address.mail_delivery_sublocation) <= 34)
        and (not address.post_office_box or (address.post_office_box.isdigit()
                                             and 1 <= int(address.post_office_box) <= 9999))
    )
    if not fits:
        return None
    return {"building": building, "floor": floor}


def check_print_address(address: model.PostalAddress | None) -> list[str]:
    """The address lines of a printed letter; :class:`ForsendelseInputError` if it has none or
    they do not fit print (an address DKCC's fields cannot hold: at most 6 lines of 34 characters)."""
    if address is None:
        raise ForsendelseInputError("the recipient has no postal address to print")
    lines = address.lines()
    if _structured_address(address) is None and (len(lines) > 6 or any(len(line) > 34 for line in lines)):
        raise ForsendelseInputError(
            "the recipient address does not fit a printed letter (at most 6 lines of 34 characters)"
        )
    return lines


def _modtager_adresse(parent: etree._Element, recipient: model.Recipient) -> None:
    address = recipient.address
    assert address is not None
    adr = _sub(parent, f"{_F}ModtagerAdresse")
    _sub(adr, f"{{{NS_ITST}}}PersonName", recipient.name[:130])
    fields = _structured_address(address)
    if fields is not None:
        if address.co_name:
            _sub(adr, f"{_F}CoNavn", address.co_name)
        _sub(adr, f"{{{NS_DKCC2005}}}StreetName", address.street_name)
        _sub(adr, f"{{{NS_DKCC}}}StreetBuildingIdentifier", fields["building"])
        if fields["floor"]:
            _sub(adr, f"{{{NS_DKCC}}}FloorIdentifier", fields["floor"])
        if address.suite:
            _sub(adr, f"{{{NS_DKCC}}}SuiteIdentifier", address.suite)
        if address.mail_delivery_sublocation:
            _sub(adr, f"{{{NS_DKCC}}}MailDeliverySublocationIdentifier",
                 address.mail_delivery_sublocation)
        _sub(adr, f"{{{NS_DKCC2005}}}PostCodeIdentifier", address.postcode)
        if address.post_office_box:
            _sub(adr, f"{{{NS_DKCC2005_2}}}PostOfficeBoxIdentifier", address.post_office_box)
    else:
        lines = check_print_address(address)
        names = ("First", "Second", "Third", "Fourth", "Fifth", "Sixth")
        for name, line in zip(names, lines, strict=False):
            _sub(adr, f"{{{NS_DKCC2005_3}}}PostalAddress{name}LineText", line)
        if address.country_code.upper() == "DK" and re.fullmatch(r"[0-9]{4}", address.postcode):
            _sub(adr, f"{{{NS_DKCC2005}}}PostCodeIdentifier", address.postcode)
    country = _sub(adr, f"{{{NS_DKCC}}}CountryIdentificationCode", address.country_code.upper())
    country.set("scheme", "iso3166-alpha2")


def legacy_reply(reply: model.ReplyAddress) -> dict[str, str]:
    """The old Digital Post reply fields (``MeddelelseSvar*``) for a reply address.

    Uses ``docpost.stamping.legacy_reply_fields`` when stamping provides it.
    """
    try:
        from docpost.stamping import legacy_reply_fields  # type: ignore[attr-defined]
    except ImportError:
        legacy_reply_fields = None
    if legacy_reply_fields is not None:
        fields = legacy_reply_fields(reply)
        if isinstance(fields, dict) and "MeddelelseSvarTypeNavn" in fields:
            return {k: str(v) for k, v in fields.items() if v is not None}
    out = {"MeddelelseSvarTypeNavn": reply.reply_type.value}
    if reply.reply_type is model.ReplyType.GIVEN:
        if reply.postkasse_id is not None:
            out["MeddelelseSvarPostkasseIdentifikator"] = str(reply.postkasse_id)
        if reply.emne_id is not None:
            out["MeddelelseSvarEmneIdentifikator"] = str(reply.emne_id)
    return out


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _fesd(parent: etree._Element, case: model.CaseDocument | None) -> None:
    if case is None:
        return
    values = [
        ("FESDdokumentIdentifikator", case.document_uuid),
        ("FESDaktoerIdentifikator", case.acting_party_id),
        ("FESDsagIdentifikator", case.case_uuid),
    ]
    values = [(n, v.lower()) for n, v in values if v and _UUID.fullmatch(v.lower())]
    if not values:
        return
    fesd = _sub(parent, f"{_D}MeddelelseFESDmetadata")
    for name, value in values:
        _sub(fesd, f"{_D}{name}", value)


def forsendelse_tree(letter: OutboundLetter, options: PrintOptions | None = None) -> etree._Element:
    """The ``fjernprint:ForsendelseI`` element for a letter (not yet validated)."""
    options = options or PrintOptions()
    if not letter.pdf:
        raise ForsendelseInputError("the letter has no main document (empty PDF)")
    if len(letter.attachments) > 100:
        raise ForsendelseInputError("a physical letter takes at most 100 attachments")
    manifest = letter.manifest
    recipient = manifest.recipient
    root = etree.Element(f"{_F}ForsendelseI", nsmap=NSMAP)
    _sub(root, f"{_F}AfsendelseIdentifikator", letter.message_uuid.lower())
    if options.forsendelse_type is not None:
        _sub(root, f"{_F}ForsendelseTypeIdentifikator", str(options.forsendelse_type))

    modtager = _sub(root, f"{_F}ForsendelseModtager")
    ident = _sub(modtager, f"{_D}AfsendelseModtager")
    if recipient.id_type is model.IdType.CPR:
        _sub(ident, f"{{{NS_ADIR}}}CPRnummerIdentifikator", CPR_PLACEHOLDER)
    else:
        _sub(ident, f"{{{NS_ADIR}}}CVRnummerIdentifikator", recipient.identifier)
    if recipient.address is not None:
        _modtager_adresse(modtager, recipient)

    _sub(root, f"{_D}FilformatNavn", FILE_FORMAT_PDF)
    _sub(root, f"{_D}MeddelelseIndholdData", base64.b64encode(letter.pdf))
    trans = _sub(root, f"{_F}TransaktionsParametreI")
    _sub(trans, f"{_F}TransaktionsDatoTid", utc_z(letter.created))

    doc = _sub(root, f"{_F}DokumentParametre")
    _sub(doc, f"{{{NS_SAGDOK}}}TitelTekst", manifest.title)
    case = letter.submission.case
    if case is not None and case.document_uuid:
        _sub(doc, f"{{{NS_SAGDOK}}}UUIDIdentifikator", case.document_uuid)
    letter_date = (case.letter_date if case is not None and case.letter_date else
                   letter.created.date())
    _sub(doc, f"{{{NS_SAGDOK}}}BrevDato", letter_date.isoformat())

    prnt = _sub(root, f"{_F}PrintParametre")
    _sub(prnt, f"{_F}SimplexDuplexKode", options.simplex_duplex)
    _sub(prnt, f"{_F}FarveSHKode", options.colour)
    _sub(prnt, f"{_F}KuvertTypeKode", options.envelope)

    dpp = _sub(root, f"{_F}DigitalPostParametre")
    reply = legacy_reply(letter.reply)
    for name in ("MeddelelseSvarTypeNavn", "MeddelelseSvarPostkasseIdentifikator",
                 "MeddelelseSvarEmneIdentifikator"):
        if name in reply:
            _sub(dpp, f"{_D}{name}", reply[name])
    _fesd(dpp, case)
    _sub(dpp, f"{_F}MedsendDokumentRegistreringIndikator", "false")

    post = _sub(root, f"{_F}PostParametre")
    category = options.post_category or ("Prioritaire" if manifest.legal_notification
                                         else "Economique")
    _sub(post, f"{_F}PostKategoriKode", category)

    if letter.attachments:
        samling = _sub(root, f"{_F}BilagSamling")
        for index, (filename, label, content) in enumerate(letter.attachments, start=1):
            bilag = _sub(samling, f"{_F}Bilag")
            _sub(bilag, f"{_F}BilagNavn", (label or filename)[:300])
            _sub(bilag, f"{_D}FilformatNavn", FILE_FORMAT_PDF)
            _sub(bilag, f"{_F}BilagSorteringsIndeksIdentifikator", str(index))
            _sub(bilag, f"{_D}VedhaeftningIndholdData", base64.b64encode(content))
    return root


def _forsendelse_rules(tree: etree._ElementTree) -> list[MemoIssue]:
    """SF1601 rules beyond the schema: a CPR number never travels in a ForsendelseI."""
    issues = []
    for el in tree.getroot().iter(f"{{{NS_ADIR}}}CPRnummerIdentifikator"):
        if (el.text or "").strip() != CPR_PLACEHOLDER:
            issues.append(MemoIssue(
                el.sourceline or 0, "/fjernprint:ForsendelseI/fjernprint:ForsendelseModtager/"
                "dkal:AfsendelseModtager/adir:CPRnummerIdentifikator",
                f"a CPR recipient must be given as {CPR_PLACEHOLDER} in ForsendelseI",
            ))
    return issues


def validate_forsendelse_tree(tree: etree._ElementTree) -> list[MemoIssue]:
    """Validate a parsed ForsendelseI against the KOMBIT schemas and the SF1601 rules."""
    root = tree.getroot()
    if root.tag != f"{_F}ForsendelseI":
        return [MemoIssue(root.sourceline or 0, "/", "root element must be fjernprint:ForsendelseI")]
    return schema_issues(forsendelse_schema(), tree) + _forsendelse_rules(tree)


def validate_forsendelse(xml: bytes) -> list[MemoIssue]:
    """Every error in a ForsendelseI (line, path, message); an empty list means valid."""
    tree, issues = parse_xml(xml)
    if tree is None:
        return issues
    return validate_forsendelse_tree(tree)


def build_forsendelse(letter: OutboundLetter, options: PrintOptions | None = None) -> bytes:
    """The letter as a validated fjernprint ``ForsendelseI`` (UTF-8 bytes)."""
    tree = forsendelse_tree(letter, options).getroottree()
    issues = validate_forsendelse_tree(tree)
    if issues:
        head = "; ".join(str(i) for i in issues[:5])
        raise ForsendelseInvalidError(f"the built ForsendelseI is invalid: {head}", issues)
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")


# ---------------------------------------------------------------- kombi_request


def kombi_valg_for(channel_wish: model.ChannelWish) -> str:
    """The ``KombiValgKode`` for the manifest's channel wish."""
    return {
        model.ChannelWish.AUTO: KOMBI_AUTO,
        model.ChannelWish.DIGITAL: KOMBI_DIGITAL,
        model.ChannelWish.PHYSICAL: KOMBI_PHYSICAL,
    }[model.ChannelWish(channel_wish)]


_DECL = re.compile(rb"^(?:\xef\xbb\xbf)?\s*<\?xml[^>]*\?>\s*")
_DECL_ENCODING = re.compile(rb"encoding\s*=\s*[\"']([^\"']+)[\"']")


def _fragment(xml: bytes, what: str) -> bytes:
    """A document's root element as UTF-8 bytes without the XML declaration."""
    match = _DECL.match(xml)
    if match:
        enc = _DECL_ENCODING.search(match.group(0))
        if enc and enc.group(1).lower().replace(b"-", b"") != b"utf8":
            tree, issues = parse_xml(xml)
            if tree is None:
                raise KombiMalformedError(f"the {what} is not well-formed XML: {issues[0]}")
            return etree.tostring(tree.getroot(), encoding="UTF-8").split(b"?>", 1)[-1].lstrip()
        xml = xml[match.end():]
    xml = xml.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not xml.startswith(b"<") or xml.startswith(b"<!"):
        raise KombiMalformedError(f"the {what} must be an XML element without a DOCTYPE")
    return xml


def build_kombi_request(kombi_valg: str, memo_xml: bytes | None,
                        forsendelse_xml: bytes | None) -> bytes:
    """The SF1601 ``kombi_request`` body: KombiValgKode, memo:Message, ForsendelseISamling."""
    if kombi_valg not in KOMBI_CODES:
        raise KombiValgError(f"unknown KombiValgKode {kombi_valg!r}; expected one of "
                             f"{', '.join(KOMBI_CODES)}")
    _check_parts(kombi_valg, memo_xml is not None, forsendelse_xml is not None)
    out = [b'<?xml version="1.0" encoding="UTF-8"?>\n<kombi_request><KombiValgKode>',
           kombi_valg.encode(), b"</KombiValgKode>"]
    if memo_xml is not None:
        out.append(_fragment(memo_xml, "MeMo message"))
    if forsendelse_xml is not None:
        out += [f'<fjernprint:{FORSENDELSE_SAMLING} xmlns:fjernprint="{NS_FJERNPRINT}">'.encode(),
                _fragment(forsendelse_xml, "ForsendelseI"),
                f"</fjernprint:{FORSENDELSE_SAMLING}>".encode()]
    out.append(b"</kombi_request>")
    return b"".join(out)


def _check_parts(kombi_valg: str, has_memo: bool, has_forsendelse: bool) -> None:
    if kombi_valg in (KOMBI_AUTO, KOMBI_DIGITAL, KOMBI_NEMSMS) and not has_memo:
        raise KombiContentError(f"KombiValgKode {kombi_valg!r} needs a memo:Message")
    if kombi_valg == KOMBI_PHYSICAL and not has_forsendelse:
        raise KombiContentError("KombiValgKode 'Fysisk Post' needs a fjernprint:ForsendelseI")
    if kombi_valg in (KOMBI_DIGITAL, KOMBI_NEMSMS) and has_forsendelse:
        raise KombiContentError(f"KombiValgKode {kombi_valg!r} takes no fjernprint:ForsendelseI")


@dataclass(frozen=True)
class KombiRequest:
    """A parsed kombi_request: the code and the two parts as standalone documents."""

    kombi_valg: str
    memo: bytes | None
    forsendelse: bytes | None


_RANK = {KOMBI_VALG: 0, f"{{{NS_MEMO}}}Message": 1, f"{_F}{FORSENDELSE_SAMLING}": 2}
_NAMES = {KOMBI_VALG: "KombiValgKode", f"{{{NS_MEMO}}}Message": "memo:Message",
          f"{_F}{FORSENDELSE_SAMLING}": f"fjernprint:{FORSENDELSE_SAMLING}"}


def _name(tag: str) -> str:
    return _NAMES.get(tag) or redact(tag)


def parse_kombi_request(xml: bytes) -> KombiRequest:
    """Check a kombi_request's shape and split it; a :class:`KombiRequestError` names the fault."""
    tree, issues = parse_xml(xml)
    if tree is None:
        raise KombiMalformedError(f"kombi_request is not acceptable XML: {issues[0]}")
    root = tree.getroot()
    if root.tag != KOMBI_ROOT:
        raise KombiMalformedError(f"the root element must be kombi_request (no namespace), "
                                  f"not {_name(root.tag)}")
    if (root.text or "").strip():
        raise KombiContentError("kombi_request has text outside its elements")
    children = []
    for child in root:
        if (child.tail or "").strip():
            raise KombiContentError("kombi_request has text outside its elements")
        if not isinstance(child.tag, str):  # comments, processing instructions
            continue
        if child.tag not in _RANK:
            raise KombiContentError(f"unexpected element {_name(child.tag)} in kombi_request; "
                                    "expected KombiValgKode, memo:Message, "
                                    f"fjernprint:{FORSENDELSE_SAMLING}")
        children.append(child)
    seen: dict[str, int] = {}
    last = -1
    for position, child in enumerate(children, start=1):
        rank = _RANK[child.tag]
        if child.tag in seen:
            raise KombiOrderError(f"{_name(child.tag)} appears more than once in kombi_request")
        if rank < last:
            previous = next(t for t, r in _RANK.items() if r == last)
            raise KombiOrderError(f"{_name(child.tag)} (element {position}) must come before "
                                  f"{_name(previous)} in kombi_request")
        seen[child.tag] = position
        last = rank
    if KOMBI_VALG not in seen:
        raise KombiValgError("kombi_request has no KombiValgKode")
    valg_el = children[seen[KOMBI_VALG] - 1]
    if len(valg_el):
        raise KombiValgError("KombiValgKode must hold text only")
    kombi_valg = (valg_el.text or "").strip()
    if kombi_valg not in KOMBI_CODES:
        raise KombiValgError(f"unknown KombiValgKode {kombi_valg[:40]!r}; expected one of "
                             f"{', '.join(KOMBI_CODES)}")
    memo_el = root.find(f"{{{NS_MEMO}}}Message")
    samling = root.find(f"{_F}{FORSENDELSE_SAMLING}")
    forsendelse_el = None
    if samling is not None:
        items = [c for c in samling if isinstance(c.tag, str)]
        if len(items) != 1 or items[0].tag != f"{_F}ForsendelseI":
            raise KombiContentError(f"fjernprint:{FORSENDELSE_SAMLING} must hold exactly one "
                                    "fjernprint:ForsendelseI")
        forsendelse_el = items[0]
    _check_parts(kombi_valg, memo_el is not None, forsendelse_el is not None)
    return KombiRequest(
        kombi_valg=kombi_valg,
        memo=None if memo_el is None else _standalone(memo_el),
        forsendelse=None if forsendelse_el is None else _standalone(forsendelse_el),
    )


def _standalone(el: etree._Element) -> bytes:
    """An element as its own UTF-8 document (namespace declarations it uses included)."""
    return etree.tostring(el, xml_declaration=True, encoding="UTF-8", with_tail=False)
