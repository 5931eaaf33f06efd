"""Validation of submissions: safe parsing, the XSDs, and the checks the schemas can't express.

Other stages call :func:`validate` (one submission) or :func:`validate_many` (a batch in which one
broken or hostile submission never stops the others). A submission is read through a
:class:`SubmissionSource`, each file at most once and never beyond the size limits, so the same
code validates a local folder (:class:`LocalSubmission`) and an S3 prefix (``docpost.storage``).

The result is a :class:`ValidationReport` naming *every* problem found, each a
:class:`ValidationIssue` with a stable reason code (listed in docs/submission-contract.md), file,
line, element path and a plain-language message. Messages never carry a clear CPR or CVR number.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import re
import stat
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from docpost import model
from docpost.errors import DocpostError, describe
from docpost.model import ATTENTION_FILE, CASE_FILE, MANIFEST_FILE, READY_MARKER
from docpost.privacy import scrub

log = logging.getLogger(__name__)

# Limits (bytes unless said otherwise).
MAX_METADATA_BYTES = 1024 * 1024  # manifest.xml, att.xml, s&d.xml
MAX_LETTER_BYTES = 2 * 1024 * 1024  # the letter text
MAX_PDF_BYTES = 20 * 1024 * 1024  # one PDF document
MAX_SUBMISSION_BYTES = 100 * 1024 * 1024  # all files together
MAX_FILES = 25  # files in one submission, _READY included
MAX_FILENAME_BYTES = 255
METADATA_FILES = (MANIFEST_FILE, ATTENTION_FILE, CASE_FILE)
RESERVED_NAMES = frozenset({*METADATA_FILES, READY_MARKER})

ENGINES = ("lxml", "xmlschema")
_SCHEMA_FILES = {
    "manifest": "manifest.xsd",
    "attention": "attention.xsd",
    "case": "sag-dokument.xsd",
    "letter": "letter.xsd",
}
_NAMESPACES = {
    model.NS_MANIFEST: "manifest",
    model.NS_ATTENTION: "attention",
    model.NS_CASE: "case",
    model.NS_LETTER: "letter",
}


# --------------------------------------------------------------------------- errors and results


class SourceError(DocpostError):
    """A submission's files could not be listed or read. ``code`` is a stable reason code."""

    code = "source.unreadable"


class FileTooLarge(SourceError):
    code = "files.too-large"


class UnsafeFileName(SourceError):
    code = "filename.path-part"


class FileChanged(SourceError):
    """The file is not the version the submission was registered with (replaced after _READY)."""

    code = "submission.changed"


@dataclass(frozen=True)
class ValidationIssue:
    """One problem: a stable reason ``code``, where it is, and what is wrong in plain language."""

    code: str
    message: str
    file: str | None = None
    line: int | None = None
    path: str | None = None

    def to_json(self) -> dict:
        return {"code": self.code, "file": self.file, "line": self.line, "path": self.path, "message": self.message}

    def to_text(self) -> str:
        where = " ".join(
            p for p in (self.file, f"line {self.line}" if self.line else None, self.path) if p
        )
        return f"{self.code}: {where + ': ' if where else ''}{self.message}"


@dataclass
class ValidationReport:
    """The outcome of validating one submission."""

    key: model.SubmissionKey
    issues: list[ValidationIssue] = field(default_factory=list)
    submission: model.Submission | None = None

    @property
    def valid(self) -> bool:
        return not self.issues and self.submission is not None

    @property
    def codes(self) -> list[str]:
        """The distinct reason codes, in order of first appearance."""
        return list(dict.fromkeys(issue.code for issue in self.issues))

    def to_json(self) -> dict:
        return {
            "submission": str(self.key),
            "valid": self.valid,
            "errors": [issue.to_json() for issue in self.issues],
        }

    def to_text(self) -> str:
        if self.valid:
            return f"{self.key}: VALID"
        lines = [f"{self.key}: REJECTED ({len(self.issues)} problem{'s' if len(self.issues) != 1 else ''})"]
        lines += [f"  - {issue.to_text()}" for issue in self.issues]
        return "\n".join(lines)


# --------------------------------------------------------------------------- sources


@runtime_checkable
class SubmissionSource(Protocol):
    """Where a submission's files come from: a local folder, an S3 prefix, ..."""

    key: model.SubmissionKey

    def list_files(self) -> dict[str, int]:
        """File name -> size in bytes, ``_READY`` included."""
        ...

    def read(self, name: str, max_bytes: int) -> bytes:
        """The file's bytes; raises FileTooLarge beyond ``max_bytes``, SourceError if unreadable."""
        ...


def key_from_path(path: Path) -> model.SubmissionKey:
    """``.../<source>/<YYYY-MM-DD>/<id>`` -> its key; other paths get source ``local`` and today."""
    parts = path.resolve().parts
    if len(parts) >= 3:
        try:
            date = dt.date.fromisoformat(parts[-2])
        except ValueError:
            pass
        else:
            return model.SubmissionKey(parts[-3], date, parts[-1])
    return model.SubmissionKey("local", dt.date.today(), path.name)


class LocalSubmission(SubmissionSource):
    """A submission folder on disk. Only regular files count; symbolic links are never followed."""

    MAX_ENTRIES = 1000

    def __init__(self, path: str | os.PathLike, key: model.SubmissionKey | None = None):
        self.path = Path(path)
        self.key = key or key_from_path(self.path)

    def __repr__(self) -> str:
        return f"LocalSubmission({self.key})"

    def list_files(self) -> dict[str, int]:
        files: dict[str, int] = {}
        seen = 0
        if not self.path.is_dir():
            raise SourceError("the submission folder does not exist")
        try:
            for dirpath, dirnames, filenames in os.walk(self.path, followlinks=False):
                rel = os.path.relpath(dirpath, self.path)
                for name in filenames:
                    seen += 1
                    if seen > self.MAX_ENTRIES:
                        return files
                    st = os.lstat(os.path.join(dirpath, name))
                    if stat.S_ISREG(st.st_mode):
                        files[name if rel == "." else f"{rel}/{name}"] = st.st_size
        except OSError as exc:
            raise SourceError(f"the folder could not be listed ({exc.strerror})") from None
        return files

    def read(self, name: str, max_bytes: int) -> bytes:
        if "/" in name or "\\" in name or name in ("", ".", "..") or "\0" in name:
            raise UnsafeFileName("file names may not contain path parts")
        try:
            fd = os.open(self.path / name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            raise SourceError(f"the file could not be opened ({exc.strerror})") from None
        with os.fdopen(fd, "rb") as handle:
            if os.fstat(handle.fileno()).st_size > max_bytes:
                raise FileTooLarge(f"the file is larger than the {max_bytes} bytes allowed")
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise FileTooLarge(f"the file is larger than the {max_bytes} bytes allowed")
        return data


def discover(path: str | os.PathLike) -> list[LocalSubmission]:
    """The submission folders at or below ``path``, in sorted order.

    ``path`` may be one submission folder, a night's output (``<out>/inbox/<source>/<date>/<id>``)
    or any tree: every folder that directly holds files is a submission.
    """
    root = Path(path)
    if not root.is_dir():
        raise SourceError(f"{root} is not a folder")
    inbox = root / "inbox"
    if inbox.is_dir() and not any(p.is_file() for p in root.iterdir() if p.name in (MANIFEST_FILE, READY_MARKER)):
        return [LocalSubmission(p) for p in sorted(inbox.glob("*/*/*")) if p.is_dir()]
    found: list[LocalSubmission] = []

    def walk(folder: Path) -> None:
        entries = sorted(folder.iterdir())
        if any(e.is_file() and not e.is_symlink() for e in entries):
            found.append(LocalSubmission(folder))
            return
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                walk(entry)

    walk(root)
    return found


# --------------------------------------------------------------------------- masking


_VALUE_RE = re.compile(r"(value|literal) '([^']*)'")
# Elements whose values carry no personal data: their values may appear in messages.
_SAFE_VALUE_ELEMENTS = frozenset({
    "DocumentType", "ChannelWish", "Mandatory", "LegalNotification", "DoNotDeliverUntilDate",
    "MeddelelseSvarPostkasseIdentifikator", "MeddelelseSvarEmneIdentifikator", "Profile",
    "subjectKey", "activityFacet", "taskKey", "version", "FESDsagIdentifikator",
    "FESDdokumentIdentifikator", "FESDaktoerIdentifikator", "BrevDato", "OprettetDato",
    "PostCodeIdentifier", "FloorIdentifier", "CountryIdentificationCode", "Heading", "role",
})


def _redact_values(message: str, element: str | None) -> str:
    if element in _SAFE_VALUE_ELEMENTS:
        return message
    return _VALUE_RE.sub(lambda m: f"{m.group(1)} '…'", message)


def display_name(name: str) -> str:
    """A file name fit for a report: control characters escaped, CPR/CVR-like digits masked."""
    shown = name.encode("utf-8", "backslashreplace").decode("utf-8")
    shown = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in shown)
    return scrub(shown)


# --------------------------------------------------------------------------- file names


_FORBIDDEN_CHARS = frozenset('<>:"|?*')


def filename_problems(name: str) -> list[tuple[str, str]]:
    """The Digital Post file-name rules ``name`` breaks, as (code, message) pairs."""
    problems: list[tuple[str, str]] = []
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        problems.append(("filename.path-part", "a file name may not contain path parts (/, \\, . or ..)"))
    if any(0xDC80 <= ord(ch) <= 0xDCFF for ch in name):
        problems.append(("filename.encoding", "the file name is not valid UTF-8"))
    if any(unicodedata.category(ch) == "Cc" or ch in "\u2028\u2029" for ch in name):
        problems.append(("filename.control-characters", "the file name contains control characters or line breaks"))
    if any(ch in _FORBIDDEN_CHARS for ch in name):
        problems.append(("filename.forbidden-characters", 'the file name contains one of < > : " | ? *'))
    if any((unicodedata.category(ch) == "Zs" and ch != " ") or unicodedata.category(ch) == "Cf" for ch in name):
        problems.append(("filename.unusual-space", "the file name contains unusual Unicode spaces or invisible characters"))
    if len(name.encode("utf-8", "surrogateescape")) > MAX_FILENAME_BYTES:
        problems.append(("filename.too-long", f"a file name may be at most {MAX_FILENAME_BYTES} bytes"))
    return problems


# --------------------------------------------------------------------------- schemas


class _Schemas:
    """The four XSDs compiled for one engine, and error mapping to reason codes."""

    def __init__(self, engine: str, schema_dir: Path | str):
        from docpost import xmlsafe

        self.engine = engine
        if engine not in ENGINES:
            raise ValueError(f"unknown schema engine {engine!r}; use one of {ENGINES}")
        # Compiled once per process by xmlsafe.schema; an lxml Schema is safe to share between
        # threads (the pipeline reads submissions in threads): each check gets its own error log.
        self._schemas = {k: xmlsafe.schema(os.path.join(schema_dir, f), engine=engine) for k, f in _SCHEMA_FILES.items()}

    def errors(self, kind: str, tree, file: str) -> list[ValidationIssue]:
        if self.engine == "lxml":
            return self._lxml_errors(kind, tree, file)
        return self._xmlschema_errors(kind, tree, file)

    _LXML_CODES = {
        "SCHEMAV_CVC_MAXLENGTH_VALID": "schema.too-long",
        "SCHEMAV_CVC_ELT_1": "schema.wrong-root",
        "SCHEMAV_CVC_IDC": "schema.duplicate-value",
        "SCHEMAV_CVC_COMPLEX_TYPE_3_2_1": "schema.invalid-attribute",
        "SCHEMAV_CVC_COMPLEX_TYPE_3_2_2": "schema.invalid-attribute",
        "SCHEMAV_CVC_COMPLEX_TYPE_4": "schema.invalid-attribute",
        "SCHEMAV_CVC_COMPLEX_TYPE_2_1": "schema.unexpected-content",
        "SCHEMAV_CVC_COMPLEX_TYPE_2_3": "schema.unexpected-content",
        "SCHEMAV_CVC_COMPLEX_TYPE_2_4": "schema.unexpected-content",
    }
    _LXML_VALUE_TYPES = ("SCHEMAV_CVC_", "SCHEMAV_CVC_DATATYPE")

    def _lxml_errors(self, kind: str, tree, file: str) -> list[ValidationIssue]:
        valid, error_log = self._schemas[kind].check(tree)
        if valid:
            return []
        if not error_log:  # never report a failed check as valid
            return [ValidationIssue("schema.invalid", "the document does not match its schema", file, None, None)]
        issues: list[ValidationIssue] = []
        facet_at: set[tuple[int, str]] = set()
        for entry in error_log:
            element, path = _element_and_path(tree, entry.path)
            type_name = entry.type_name
            if type_name == "SCHEMAV_ELEMENT_CONTENT":
                code = "schema.missing-element" if "Missing child element" in entry.message else "schema.unexpected-element"
            elif type_name in self._LXML_CODES:
                code = self._LXML_CODES[type_name]
            elif type_name.startswith("SCHEMAV_CVC_") and "FACET" not in type_name:
                code = "schema.invalid-value"
            else:
                code = "schema.invalid"
            if type_name.startswith("SCHEMAV_CVC_DATATYPE") and (entry.line, path) in facet_at:
                continue  # libxml2 repeats a facet failure as "not a valid value of the atomic type"
            if type_name.endswith("_VALID") and "facet" in entry.message:
                facet_at.add((entry.line, path))
            message = _redact_values(_clean_lxml_message(entry.message), element)
            issues.append(ValidationIssue(code, scrub(message), file, entry.line, path))
        return issues

    def _xmlschema_errors(self, kind: str, tree, file: str) -> list[ValidationIssue]:
        import xmlschema

        issues: list[ValidationIssue] = []
        for err in self._schemas[kind].iter_errors(tree):
            validator = type(err.validator).__name__
            reason = err.reason or str(err.message)
            if isinstance(err, xmlschema.XMLSchemaChildrenValidationError):
                code = "schema.missing-element" if "expected" in reason and "Unexpected" not in reason else "schema.unexpected-element"
            elif validator == "XsdMaxLengthFacet":
                code = "schema.too-long"
            elif "is not an element of the schema" in reason:
                code = "schema.wrong-root"
            elif "duplicated value" in reason:
                code = "schema.duplicate-value"
            elif "attribute" in reason.lower():
                code = "schema.invalid-attribute"
            elif validator.startswith("Xsd") and validator not in ("XsdElement", "XsdGroup"):
                code = "schema.invalid-value"
            else:
                code = "schema.invalid"
            path = _NS_BRACES.sub("", err.path or "") or None
            element = path.rsplit("/", 1)[-1].split("[")[0] if path else None
            message = _redact_values(_NS_BRACES.sub("", reason), element)
            issues.append(ValidationIssue(code, scrub(message), file, getattr(err, "sourceline", None), path))
        return issues


_NS_BRACES = re.compile(r"\{[^}]*:[^}]*\}")


def _clean_lxml_message(message: str) -> str:
    message = _NS_BRACES.sub("", message)
    return re.sub(r"^Element '[^']*'(, attribute '[^']*')?: ", "", message).strip()


def _element_and_path(tree, xpath: str | None) -> tuple[str | None, str | None]:
    """A readable element path (``/Manifest/Recipient/Name``) for libxml2's index path."""
    if not xpath:
        return None, None
    try:
        found = tree.xpath(xpath)
    except Exception:
        return None, xpath
    if not found or not hasattr(found[0], "tag"):
        return None, xpath
    element = found[0]
    names = []
    node = element
    while node is not None:
        tag = node.tag if isinstance(node.tag, str) else "?"
        names.append(_NS_BRACES.sub("", tag))
        node = node.getparent()
    return names[0], "/" + "/".join(reversed(names))


def schemas(engine: str = "lxml", schema_dir: Path | None = None) -> _Schemas:
    """The four XSDs of ``schema_dir`` (default: the settings') for ``engine``, compiled once
    per process (:func:`docpost.xmlsafe.schema` holds the cache)."""
    if schema_dir is None:
        from docpost.config import settings

        schema_dir = settings().schema_dir
    return _Schemas(engine, schema_dir)


# --------------------------------------------------------------------------- PDFs


def pdf_problems(data: bytes) -> list[tuple[str, str]]:
    """Whether ``data`` is a real, complete, unencrypted PDF with pages, as (code, message) pairs."""
    head = data[:1024]
    if b"%PDF-" not in head:
        kind = "HTML" if b"<html" in head.lower() or b"<!doctype" in head.lower() else "something else"
        return [("pdf.not-a-pdf", f"the file is not a PDF (it looks like {kind})")]
    if b"%%EOF" not in data[-1024:]:
        return [("pdf.truncated", "the PDF is cut short: it has no end-of-file marker")]
    import pypdf

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            return [("pdf.encrypted", "the PDF is encrypted or password-protected")]
        if len(reader.pages) == 0:
            return [("pdf.no-pages", "the PDF has no pages")]
    except Exception as exc:  # pypdf raises many kinds on damaged files
        return [("pdf.unreadable", f"the PDF could not be opened ({type(exc).__name__})")]
    return []


# --------------------------------------------------------------------------- validation


class _Run:
    """The state of validating one submission: what was listed, read and found."""

    def __init__(self, source: SubmissionSource, engine: str):
        self.source = source
        self.engine = engine
        self.issues: list[ValidationIssue] = []
        self.listing: dict[str, int] = {}
        self.data: dict[str, bytes] = {}
        self.trees: dict[str, object] = {}
        self.schema_ok: dict[str, bool] = {}
        self.schemas = schemas(engine)
        self.letters: dict[str, model.Letter] = {}

    def add(self, code: str, message: str, file: str | None = None, line: int | None = None, path: str | None = None):
        self.issues.append(
            ValidationIssue(code, scrub(message), display_name(file) if file is not None else None, line, path)
        )

    def read(self, name: str, limit: int) -> bytes | None:
        """Read a listed file once, within ``limit``; None (and an issue) when it can't be."""
        if name in self.data:
            return self.data[name]
        size = self.listing[name]
        if size > limit:
            self.add("files.too-large", f"the file has {size} bytes; at most {limit} are allowed", name)
            return None
        if size == 0:
            self.add("files.empty", "the file is empty", name)
            return None
        try:
            data = self.source.read(name, limit)
        except SourceError as exc:
            self.add(exc.code, exc.message, name)
            return None
        if len(data) > limit:  # a source that ignored max_bytes
            self.add("files.too-large", f"the file has more than the {limit} bytes allowed", name)
            return None
        self.data[name] = data
        return data

    def load_xml(self, name: str, kind: str, limit: int):
        """Read, parse safely and schema-check one XML file; the tree (or None) is kept."""
        from docpost import xmlsafe

        data = self.read(name, limit)
        if data is None:
            return None
        try:
            tree = xmlsafe.parse(data, max_bytes=limit)
        except xmlsafe.XMLSafetyError as exc:
            self.add(exc.code, exc.message, name, exc.line)
            return None
        errors = self.schemas.errors(kind, tree, display_name(name))
        self.issues.extend(errors)
        self.trees[name] = tree
        self.schema_ok[name] = not errors
        return tree


def _identifier_checks(run: _Run, tree, file: str) -> None:
    """CPR dates and CVR check digits wherever the manifest or att.xml carries them."""
    from docpost import identifiers

    ns_m, ns_a = model.NS_MANIFEST, model.NS_ATTENTION
    checks = (
        (f"{{{ns_m}}}Recipient/{{{ns_m}}}CPRnummerIdentifikator", identifiers.CPR_SHAPE, identifiers.check_cpr),
        (f"{{{ns_m}}}Recipient/{{{ns_m}}}CVRnummerIdentifikator", identifiers.CVR_SHAPE, identifiers.check_cvr),
        (f"{{{ns_a}}}ContentData/{{{ns_a}}}CPRdata/{{{ns_a}}}cprNumber", identifiers.CPR_SHAPE, identifiers.check_cpr),
    )
    root = tree.getroot()
    for xpath, shape, check in checks:
        for el in root.findall(xpath):
            value = (el.text or "").strip()
            if not shape.fullmatch(value):
                continue  # the schema reports the format
            try:
                check(value)
            except identifiers.IdentifierError as exc:
                _, path = _element_and_path(tree, tree.getpath(el))
                run.add(exc.code, str(exc), file, el.sourceline, path)


def validate(source: SubmissionSource, *, engine: str = "lxml") -> ValidationReport:
    """Validate one submission; every problem becomes an issue. Raises only on a bug."""
    from docpost import submission as parsing

    run = _Run(source, engine)
    report = ValidationReport(source.key)
    try:
        run.listing = dict(source.list_files())
    except SourceError as exc:
        run.add(exc.code, exc.message)
        report.issues = run.issues
        return report
    if READY_MARKER not in run.listing:
        run.add("submission.not-ready", "the submission has no _READY marker: it is not complete yet")
        report.issues = run.issues
        return report
    names = sorted(n for n in run.listing if n != READY_MARKER)
    if len(run.listing) > MAX_FILES:
        run.add("submission.too-many-files", f"{len(run.listing)} files; at most {MAX_FILES} are allowed")
    total = sum(run.listing.values())
    if total > MAX_SUBMISSION_BYTES:
        run.add("submission.too-large", f"{total} bytes in all; at most {MAX_SUBMISSION_BYTES} are allowed")

    bad_names: set[str] = set()
    for name in names:
        for code, message in filename_problems(name):
            run.add(code, message, name)
            bad_names.add(name)

    manifest_tree = None
    if MANIFEST_FILE not in run.listing:
        run.add("manifest.missing", "the submission has no manifest.xml", MANIFEST_FILE)
    else:
        manifest_tree = run.load_xml(MANIFEST_FILE, "manifest", MAX_METADATA_BYTES)
    for name, kind in ((ATTENTION_FILE, "attention"), (CASE_FILE, "case")):
        if name in run.listing:
            run.load_xml(name, kind, MAX_METADATA_BYTES)
    for name in (MANIFEST_FILE, ATTENTION_FILE):
        if name in run.trees:
            _identifier_checks(run, run.trees[name], name)

    named: set[str] = set()
    content: list[model.ContentFile] = []
    if manifest_tree is not None:
        content = list(parsing.manifest_files(manifest_tree.getroot()))
        _check_content(run, manifest_tree, content, bad_names, named)
        _check_manifest_rules(run, manifest_tree)
        for name in names:
            if name not in named and name not in METADATA_FILES and name not in bad_names:
                run.add("files.unnamed", "the manifest does not name this file", name)

    report.issues = run.issues
    if not run.issues and manifest_tree is not None:
        report.submission = _build(run, content)
    return report


def _check_content(run: _Run, manifest_tree, content: list[model.ContentFile], bad_names: set[str], named: set[str]):
    """Every file the manifest names: a safe name, present, and a real letter text or PDF."""
    from docpost import submission as parsing

    for index, item in enumerate(content):
        path = "/Manifest/Documents/" + ("MainDocument" if index == 0 and item.role is not model.FileRole.ATTACHMENT else "AdditionalDocument")
        name = item.name
        if name in named:
            continue  # the schema reports duplicate file names
        named.add(name)
        problems = filename_problems(name)
        if problems:
            if name not in bad_names:
                for code, message in problems:
                    run.add(code, message, name, None, path)
            continue
        if name in RESERVED_NAMES:
            run.add("files.reserved-name", "a content file may not be manifest.xml, att.xml, s&d.xml or _READY", name, None, path)
            continue
        if name not in run.listing:
            run.add("files.missing", "the manifest names this file, but the submission holds no such regular file", name, None, path)
            continue
        if item.role is model.FileRole.LETTER:
            tree = run.load_xml(name, "letter", MAX_LETTER_BYTES)
            if tree is not None and run.schema_ok.get(name):
                letter = run.letters[name] = parsing.parse_letter(tree)
                if parsing.letter_is_empty(letter):
                    run.add("letter.empty", "the letter text has no headings, paragraphs, lists or tables with text", name)
        else:
            data = run.read(name, MAX_PDF_BYTES)
            if data is not None:
                for code, message in pdf_problems(data):
                    run.add(code, message, name)


def _check_manifest_rules(run: _Run, manifest_tree) -> None:
    """Rules across manifest fields that the XSD can't express."""
    ns = model.NS_MANIFEST
    root = manifest_tree.getroot()
    wish = root.find(f"{{{ns}}}ChannelWish")
    address = root.find(f"{{{ns}}}Recipient/{{{ns}}}PostalAddress")
    if wish is not None and (wish.text or "").strip() == "physical" and address is None:
        run.add(
            "recipient.address-missing", "a letter for physical post needs the recipient's PostalAddress",
            MANIFEST_FILE, wish.sourceline, "/Manifest/ChannelWish",
        )


def _build(run: _Run, content: list[model.ContentFile]) -> model.Submission:
    from docpost import submission as parsing

    manifest = parsing.parse_manifest(run.trees[MANIFEST_FILE])
    letter = None
    documents: dict[str, bytes] = {}
    for item in content:
        if item.role is model.FileRole.LETTER:
            letter = run.letters[item.name]
        else:
            documents[item.name] = run.data[item.name]
    files = {name: run.data[name] for name in run.listing if name != READY_MARKER}
    return model.Submission(
        key=run.source.key,
        manifest=manifest,
        content_hash=parsing.content_hash(files),
        attention=parsing.parse_attention(run.trees[ATTENTION_FILE]) if ATTENTION_FILE in run.trees else None,
        case=parsing.parse_case(run.trees[CASE_FILE]) if CASE_FILE in run.trees else None,
        letter=letter,
        documents=documents,
    )


def validate_many(sources: Iterable[SubmissionSource], *, engine: str = "lxml") -> Iterator[ValidationReport]:
    """Validate each source in turn; a failure inside one never stops the others and never raises."""
    for source in sources:
        try:
            yield validate(source, engine=engine)
        except (Exception, RecursionError, MemoryError) as exc:  # a bug: report it, go on
            log.error("validator failed on %s: %s", getattr(source, "key", "?"), describe(exc, trace=True))
            key = getattr(source, "key", None) or model.SubmissionKey("unknown", dt.date.today(), "unknown")
            yield ValidationReport(
                key, [ValidationIssue("validator.internal-error", f"the validator failed ({type(exc).__name__})")]
            )


def summary(reports: Iterable[ValidationReport]) -> dict:
    """Counts for a batch: totals and, per reason code, how many submissions had it."""
    total = valid = 0
    by_code: dict[str, int] = {}
    for report in reports:
        total += 1
        if report.valid:
            valid += 1
        for code in report.codes:
            by_code[code] = by_code.get(code, 0) + 1
    return {"submissions": total, "valid": valid, "rejected": total - valid, "by_code": dict(sorted(by_code.items()))}


def report_json_line(report: ValidationReport) -> str:
    """One report as one line of JSON."""
    return json.dumps(report.to_json(), ensure_ascii=False)
