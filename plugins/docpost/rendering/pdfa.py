"""Fixed dates, a fixed file id, XMP metadata and an sRGB output intent on a reportlab canvas.

What this does and does not give towards PDF/A-2b is written down in docs/rendering.md.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.lib.utils import TimeStamp
from reportlab.pdfbase.pdfdoc import XMP, PDFArray, PDFCatalog, PDFDictionary, PDFName, PDFStream, PDFString

ICC_PROFILE = Path(__file__).resolve().parent.parent / "icc" / "sRGB.icc"


@dataclass(frozen=True)
class Metadata:
    """What goes into the PDF's document information and XMP packet."""

    title: str
    author: str
    subject: str
    keywords: str
    created: dt.datetime
    document_id: bytes  # 16 bytes: the trailer /ID, fixed per message
    language: str = "da"
    creator: str = "docpost"

    @property
    def created_utc(self) -> dt.datetime:
        c = self.created
        return (c.replace(tzinfo=dt.UTC) if c.tzinfo is None else c.astimezone(dt.UTC)).replace(microsecond=0)


class _PdfaCatalog(PDFCatalog):
    """reportlab's catalog, allowed to carry /OutputIntents."""

    __NoDefault__ = [*PDFCatalog.__NoDefault__, "OutputIntents"]


def _timestamp(when: dt.datetime) -> TimeStamp:
    ts = TimeStamp(invariant=True)
    ts.t = when.timestamp()
    ts.lt = when.timetuple()
    ts.YMDhms = tuple(ts.lt)[:6]
    ts.dhh = ts.dmm = 0
    ts.tzname = "UTC"
    return ts


def prepare(canv, meta: Metadata) -> None:
    """Before drawing: the creation date from the message and the fixed file identifier."""
    doc = canv._doc
    doc._timeStamp = _timestamp(meta.created_utc)
    hexid = meta.document_id.hex().upper().encode()
    doc._ID = b"\n[<" + hexid + b"><" + hexid + b">]\n"
    doc.Catalog.__class__ = _PdfaCatalog


def finish(canv, meta: Metadata) -> None:
    """Before saving: the XMP packet (matching the document information) and the output intent."""
    doc = canv._doc
    producer = doc.info.producer
    xmp = XMP(creator=lambda _doc: xmp_packet(meta, producer).encode("utf-8"))
    xmp.filters = []  # PDF/A: the metadata stream stays unfiltered, readable as plain XML
    doc.Catalog.Metadata = xmp
    icc = PDFStream(PDFDictionary({"N": 3}), _icc_profile())
    intent = PDFDictionary({
        "Type": PDFName("OutputIntent"),
        "S": PDFName("GTS_PDFA1"),
        "OutputConditionIdentifier": PDFString("sRGB IEC61966-2.1"),
        "Info": PDFString("sRGB IEC61966-2.1"),
        "RegistryName": PDFString("http://www.color.org"),
        "DestOutputProfile": doc.Reference(icc),
    })
    doc.Catalog.OutputIntents = PDFArray([intent])


@cache
def _icc_profile() -> bytes:
    """The sRGB profile's bytes, read once per process."""
    return ICC_PROFILE.read_bytes()


def xmp_packet(meta: Metadata, producer: str) -> str:
    """The XMP packet: Dublin Core, XMP basic, Adobe PDF and PDF/A identification (part 2, B)."""
    when = meta.created_utc.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    e = escape
    return f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
<dc:format>application/pdf</dc:format>
<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{e(meta.title)}</rdf:li></rdf:Alt></dc:title>
<dc:creator><rdf:Seq><rdf:li>{e(meta.author)}</rdf:li></rdf:Seq></dc:creator>
<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{e(meta.subject)}</rdf:li></rdf:Alt></dc:description>
<dc:language><rdf:Bag><rdf:li>{e(meta.language)}</rdf:li></rdf:Bag></dc:language>
</rdf:Description>
<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/">
<xmp:CreateDate>{when}</xmp:CreateDate>
<xmp:ModifyDate>{when}</xmp:ModifyDate>
<xmp:MetadataDate>{when}</xmp:MetadataDate>
<xmp:CreatorTool>{e(meta.creator)}</xmp:CreatorTool>
</rdf:Description>
<rdf:Description rdf:about="" xmlns:pdf="http://ns.adobe.com/pdf/1.3/">
<pdf:Producer>{e(producer)}</pdf:Producer>
<pdf:Keywords>{e(meta.keywords)}</pdf:Keywords>
<pdf:Trapped>False</pdf:Trapped>
</rdf:Description>
<rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/">
<pdfaid:part>2</pdfaid:part>
<pdfaid:conformance>B</pdfaid:conformance>
</rdf:Description>
</rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""
