"""The one way docpost reads XML: the hardened parser, safe parsing with limits, compiled schemas.

- :func:`parser`: the one hardened lxml parser configuration (no DTD loaded, no entities
  resolved, no network, no ID hashing; libxml2's size limits on unless ``huge_tree`` is asked
  for). Use it with ``etree.fromstring`` where a caller handles ``etree.XMLSyntaxError`` itself
  (configuration files, service answers, receipts, documents docpost built).
- :func:`parse`: untrusted documents (submissions, inbound messages) with stable reason codes.
- :func:`schema`: compiled XSDs, cached once per process by resolved path, safe to share
  between threads (see :class:`Schema`).

No other module builds an ``etree.XMLParser`` or compiles an ``XMLSchema`` (enforced by
``tests/unit/test_one_way.py``).

Every submission's XML passes through :func:`parse` before schema validation. It refuses, with a
stable reason code, anything a hostile or broken source system could use against the parser:

- ``xml.too-large``: more bytes than allowed (checked before parsing)
- ``xml.encoding-unsupported``: a declared encoding or byte-order mark other than UTF-8
- ``xml.bom-mismatch``: a byte-order mark that contradicts the declared encoding
- ``xml.encoding-invalid``: bytes that are not valid UTF-8 (an encoding declaration that lies)
- ``xml.dtd-forbidden``: any document type declaration (XXE, billion laughs, external DTD)
- ``xml.xinclude-forbidden``: XInclude elements (never processed, always refused)
- ``xml.too-deep`` / ``xml.too-many-elements``: nesting or size beyond the limits
- ``xml.malformed``: not well-formed XML (including undeclared entity references)
"""

from __future__ import annotations

import codecs
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lxml import etree

from docpost.errors import DocpostError

MAX_XML_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 32
MAX_ELEMENTS = 50_000

XINCLUDE_NAMESPACES = frozenset({"http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude"})
_UTF8_NAMES = frozenset({"utf-8", "utf8"})
_XML_DECL = re.compile(
    rb"<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*[\"'][^\"']*[\"']"
    rb"(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*[\"']([^\"']*)[\"'])?"
    rb"(?:[ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*[\"'][^\"']*[\"'])?[ \t\r\n]*\?>"
)
_WIDE_BOMS = (
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
)


class XMLSafetyError(DocpostError):
    """XML refused before or while parsing. ``code`` is a stable reason code, ``line`` 1-based."""

    code = "xml.unsafe"

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


class XMLTooLarge(XMLSafetyError):
    code = "xml.too-large"


class XMLEncodingUnsupported(XMLSafetyError):
    code = "xml.encoding-unsupported"


class XMLBomMismatch(XMLSafetyError):
    code = "xml.bom-mismatch"


class XMLEncodingInvalid(XMLSafetyError):
    code = "xml.encoding-invalid"


class DTDForbidden(XMLSafetyError):
    code = "xml.dtd-forbidden"


class XIncludeForbidden(XMLSafetyError):
    code = "xml.xinclude-forbidden"


class XMLTooDeep(XMLSafetyError):
    code = "xml.too-deep"


class XMLTooManyElements(XMLSafetyError):
    code = "xml.too-many-elements"


class MalformedXML(XMLSafetyError):
    code = "xml.malformed"


def _line_at(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _check_encoding(data: bytes) -> bytes:
    """Return the document without a UTF-8 BOM, or raise if it is not honest UTF-8."""
    for bom, codec in _WIDE_BOMS:
        if data.startswith(bom):
            head = data[len(bom) : len(bom) + 400].decode(codec, errors="replace").encode("ascii", "replace")
            match = _XML_DECL.match(head)
            declared = match.group(1).decode("ascii").lower() if match and match.group(1) else None
            if declared in _UTF8_NAMES:
                raise XMLBomMismatch(f"the byte-order mark says {codec.upper()} but the declaration says UTF-8", 1)
            raise XMLEncodingUnsupported(f"documents must be UTF-8, this one is {codec.upper()}", 1)
    if data[:2] in (b"<\x00", b"\x00<"):
        raise XMLEncodingUnsupported("documents must be UTF-8, this one looks like UTF-16 without a byte-order mark", 1)
    has_bom = data.startswith(codecs.BOM_UTF8)
    body = data[3:] if has_bom else data
    match = _XML_DECL.match(body)
    if match and match.group(1) is not None:
        declared = match.group(1).decode("ascii", "replace")
        if declared.lower() not in _UTF8_NAMES:
            if has_bom:
                raise XMLBomMismatch(f"a UTF-8 byte-order mark, but the declaration says {declared[:20]!r}", 1)
            raise XMLEncodingUnsupported(f"declared encoding {declared[:20]!r}: documents must be UTF-8", 1)
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise XMLEncodingInvalid(
            f"the bytes at offset {exc.start} are not valid UTF-8 (is the declared encoding true?)",
            _line_at(body, exc.start),
        ) from None
    return body


_PROLOG_SKIP = re.compile(rb"\s+|<!--.*?-->|<\?.*?\?>", re.DOTALL)


def _check_no_doctype(body: bytes) -> None:
    """Refuse a document type declaration: it can only stand in the prolog, before the root."""
    pos = 0
    while True:
        match = _PROLOG_SKIP.match(body, pos)
        if not match or match.end() == pos:
            break
        pos = match.end()
    if body.startswith(b"<!DOCTYPE", pos) or body.startswith(b"<!doctype", pos):
        raise DTDForbidden("document type declarations (DTDs, entities) are not allowed", _line_at(body, pos))


_local = threading.local()


def parser(
    *,
    huge_tree: bool = False,
    remove_comments: bool = False,
    remove_pis: bool = False,
    resolvers: Sequence[etree.Resolver] = (),
) -> etree.XMLParser:
    """The hardened lxml parser: no DTD, no entity expansion, no network, no ID collection.

    ``huge_tree`` lifts libxml2's limits (10 MB text nodes, depth 256): only for documents that
    embed whole files as base64 (a MeMo message, a ``kombi_request``, an inbound message up to
    64 MB). ``remove_comments`` / ``remove_pis`` drop those nodes. ``resolvers`` (lxml
    resolvers, e.g. for in-memory XSD imports) give a new parser; otherwise one parser per
    thread and configuration is reused (an lxml parser serialises concurrent use).
    """
    key = (huge_tree, remove_comments, remove_pis)
    cache = None
    if not resolvers:
        cache = getattr(_local, "parsers", None)
        if cache is None:
            cache = _local.parsers = {}
        found = cache.get(key)
        if found is not None:
            return found
    made = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=huge_tree,
        collect_ids=False,
        remove_comments=remove_comments,
        remove_pis=remove_pis,
    )
    for resolver in resolvers:
        made.resolvers.add(resolver)
    if cache is not None:
        cache[key] = made
    return made


def parse(
    data: bytes,
    *,
    max_bytes: int = MAX_XML_BYTES,
    max_depth: int = MAX_DEPTH,
    max_elements: int = MAX_ELEMENTS,
    huge_tree: bool = False,
) -> etree._ElementTree:
    """Parse untrusted XML bytes into an lxml tree, or raise an :class:`XMLSafetyError`.

    ``huge_tree``: see :func:`parser` (needed when ``max_bytes`` allows text nodes over 10 MB).
    """
    if len(data) > max_bytes:
        raise XMLTooLarge(f"{len(data)} bytes is more than the {max_bytes} allowed")
    if not data.strip():
        raise MalformedXML("the document is empty", 1)
    body = _check_encoding(data)
    _check_no_doctype(body)
    try:
        root = etree.fromstring(body, parser(huge_tree=huge_tree, remove_pis=True))
    except etree.XMLSyntaxError as exc:
        text = str(exc.msg or exc)
        if "Excessive depth" in text or "depth" in text.lower() and "exceed" in text.lower():
            raise XMLTooDeep(f"elements nest deeper than {max_depth} levels", exc.lineno) from None
        raise MalformedXML(f"not well-formed XML: {_first_line(text)}", exc.lineno) from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:  # defence in depth
        raise DTDForbidden("document type declarations (DTDs, entities) are not allowed", 1)
    _check_structure(root, max_depth, max_elements)
    return tree


def _first_line(text: str) -> str:
    return text.splitlines()[0][:200] if text else "unknown error"


def _check_structure(root: etree._Element, max_depth: int, max_elements: int) -> None:
    depth = 0
    count = 0
    for event, element in etree.iterwalk(root, events=("start", "end")):
        if event == "end":
            depth -= 1
            continue
        depth += 1
        count += 1
        if depth > max_depth:
            raise XMLTooDeep(f"elements nest deeper than {max_depth} levels", element.sourceline)
        if count > max_elements:
            raise XMLTooManyElements(f"more than {max_elements} elements", element.sourceline)
        if isinstance(element.tag, str) and element.tag.startswith("{"):
            namespace = element.tag[1:].partition("}")[0]
            if namespace in XINCLUDE_NAMESPACES:
                raise XIncludeForbidden("XInclude is not allowed", element.sourceline)
        elif not isinstance(element.tag, str) and element.tag is etree.Entity:
            raise MalformedXML("entity references are not allowed", element.sourceline)


# --------------------------------------------------------------------------- compiled schemas

SchemaBuilder = Callable[[Path], tuple[str, Sequence[etree.Resolver]]]


class Schema:
    """A compiled lxml XSD that threads may share.

    A compiled ``etree.XMLSchema`` keeps the error log of its last validation, so two threads
    validating with one object can mix up (or lose) each other's errors. :meth:`check` therefore
    borrows a compiled copy from a small pool for each validation (compiling one more only when
    all are busy): the verdict and its errors always belong together, and threads still
    validate in parallel (lxml releases the GIL while validating).
    """

    def __init__(self, path: Path, compile_: Callable[[], etree.XMLSchema]):
        self.path = path
        self._compile = compile_
        self._free: list[etree.XMLSchema] = [compile_()]  # compile errors surface at once

    def check(self, tree: etree._ElementTree | etree._Element) -> tuple[bool, list[Any]]:
        """``(valid, error log entries)`` of ``tree`` (entries empty when valid)."""
        try:
            compiled = self._free.pop()  # list.pop and list.append are atomic: no lock needed
        except IndexError:
            compiled = self._compile()
        try:
            if compiled.validate(tree):
                return True, []
            return False, list(compiled.error_log)
        finally:
            self._free.append(compiled)

    def validate(self, tree: etree._ElementTree | etree._Element) -> bool:
        return self.check(tree)[0]


_schemas: dict[tuple, Any] = {}
_schemas_by_name: dict[tuple, Any] = {}
_schemas_lock = threading.Lock()


def schema(
    path: Path | str,
    *,
    driver: str | None = None,
    build: SchemaBuilder | None = None,
    engine: str = "lxml",
) -> Any:
    """The compiled XSD at ``path``, compiled once per process (cached by resolved path).

    - ``engine="lxml"`` (default): a thread-safe :class:`Schema`.
    - ``engine="xmlschema"``: an ``xmlschema.XMLSchema`` (validation does not mutate it).
    - ``driver``: an in-memory XSD text used as the entry document, resolved relative to
      ``path`` (when a schema set needs one document importing several namespaces).
    - ``build(resolved path) -> (driver text, lxml resolvers)``: computes the driver and the
      resolvers that serve generated XSDs from memory, on first use only.

    Schema documents are docpost's own files, parsed with :func:`parser`.
    """
    name_key = (str(path), driver, build, engine)
    found = _schemas_by_name.get(name_key)
    if found is not None:
        return found
    resolved = Path(path).resolve()
    key = (str(resolved), driver, build, engine)
    with _schemas_lock:
        found = _schemas.get(key)
        if found is None:
            found = _schemas[key] = _compile(resolved, driver, build, engine)
        _schemas_by_name[name_key] = found
        return found


def _compile(path: Path, driver: str | None, build: SchemaBuilder | None, engine: str) -> Any:
    if engine == "xmlschema":
        if driver is not None or build is not None:
            raise ValueError("driver/build are for the lxml engine")
        import xmlschema

        return xmlschema.XMLSchema(str(path))
    if engine != "lxml":
        raise ValueError(f"unknown schema engine {engine!r}")

    def compile_() -> etree.XMLSchema:
        text, resolvers = (driver, ()) if build is None else build(path)
        if text is None:
            doc = etree.parse(str(path), parser())
        else:
            doc = etree.fromstring(text.encode(), parser(resolvers=resolvers), base_url=path.as_uri()).getroottree()
        return etree.XMLSchema(doc)

    return Schema(path, compile_)
