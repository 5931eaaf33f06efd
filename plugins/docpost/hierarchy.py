"""The contact hierarchy: Mappe (folder) -> Postkasse (mailbox) -> Emne (subject).

Citizens and companies write to the municipality through this tree on borger.dk / virk.dk;
a letter's reply address is one Emne in it (see ``docpost.stamping``), and a reply is routed
back to the Emne's functional mailbox by its contactPointID.

The tree is versioned configuration (``config/hierarchy.xml``, format ``schemas/hierarchy.xsd``,
documented in ``docs/reply-stamping.md``). :func:`load_hierarchy` validates it and returns an
immutable :class:`Hierarchy`; :func:`check_hierarchy` lists every problem, each naming the file
and line.
"""

from __future__ import annotations

from docpost.configfile import ConfigFileError

import datetime as dt
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

NS_HIERARCHY = "urn:docpost:hierarchy:1"
HIERARCHY_FILE = "hierarchy.xml"
HIERARCHY_SCHEMA = "hierarchy.xsd"

_Q = f"{{{NS_HIERARCHY}}}"


# ---------------------------------------------------------------------------------------------
# Errors


class HierarchyError(ConfigFileError):
    """A problem with a contact hierarchy file, naming the file and the line."""

    code = "hierarchy.invalid"
    kind = "hierarchy"


class HierarchyNotFound(HierarchyError):
    code = "hierarchy.not-found"


class MalformedXml(HierarchyError):
    code = "hierarchy.malformed-xml"


class SchemaError(HierarchyError):
    code = "hierarchy.schema"


class DuplicateId(HierarchyError):
    code = "hierarchy.duplicate-id"


class DuplicateContactPoint(DuplicateId):
    code = "hierarchy.duplicate-contact-point"


class OrphanPostkasse(HierarchyError):
    code = "hierarchy.orphan-postkasse"


class OrphanEmne(HierarchyError):
    code = "hierarchy.orphan-emne"


class MissingMailbox(HierarchyError):
    code = "hierarchy.missing-mailbox"


class MissingContactPoint(HierarchyError):
    code = "hierarchy.missing-contact-point"


# ---------------------------------------------------------------------------------------------
# The tree


@dataclass(frozen=True)
class Mappe:
    """A folder of Postkasser (e.g. "Børn og Familie")."""

    id: int
    label: str
    line: int | None = None


@dataclass(frozen=True)
class Postkasse:
    """A mailbox citizens write to; ``closed`` is the first day it takes no replies."""

    id: int
    mappe_id: int
    label: str
    closed: dt.date | None = None
    line: int | None = None

    def is_closed(self, on: dt.date) -> bool:
        return self.closed is not None and on >= self.closed


@dataclass(frozen=True)
class Emne:
    """A subject in a Postkasse, with its functional mailbox and NgDP contactPointID.

    ``closed`` is the Emne's own marker; :meth:`Hierarchy.closed_on` also counts its Postkasse.
    """

    id: int
    postkasse_id: int
    label: str
    mailbox: str
    contact_point_id: str
    closed: dt.date | None = None
    line: int | None = None

    @property
    def mailbox_kind(self) -> str:
        """``"queue"`` for a case-system queue URI, ``"email"`` for an e-mail address."""
        return "queue" if "://" in self.mailbox else "email"


class Hierarchy:
    """A validated, immutable contact hierarchy. Cheap to share between threads and tasks."""

    __slots__ = ("_mapper", "_postkasser", "_emner", "_by_contact_point", "authority", "version",
                 "source", "digest")

    def __init__(self, mapper, postkasser, emner, *, authority: str, version: str,
                 source: str | None = None, digest: str | None = None):
        object.__setattr__(self, "_mapper", {m.id: m for m in mapper})
        object.__setattr__(self, "_postkasser", {p.id: p for p in postkasser})
        object.__setattr__(self, "_emner", {e.id: e for e in emner})
        object.__setattr__(self, "_by_contact_point", {e.contact_point_id: e for e in emner})
        object.__setattr__(self, "authority", authority)
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "digest", digest)

    def __setattr__(self, name, value):
        raise AttributeError("Hierarchy is immutable")

    def __getstate__(self):
        return {s: getattr(self, s) for s in self.__slots__}

    def __setstate__(self, state):
        for k, v in state.items():
            object.__setattr__(self, k, v)

    def __repr__(self) -> str:
        return (f"Hierarchy({self.authority!r}, version={self.version!r}, "
                f"{len(self._mapper)} mapper, {len(self._postkasser)} postkasser, "
                f"{len(self._emner)} emner)")

    # lookups -------------------------------------------------------------------------------

    @property
    def mapper(self) -> tuple[Mappe, ...]:
        return tuple(sorted(self._mapper.values(), key=lambda m: m.id))

    @property
    def postkasser(self) -> tuple[Postkasse, ...]:
        return tuple(sorted(self._postkasser.values(), key=lambda p: p.id))

    @property
    def emner(self) -> tuple[Emne, ...]:
        return tuple(sorted(self._emner.values(), key=lambda e: e.id))

    def mappe(self, mappe_id: int) -> Mappe | None:
        return self._mapper.get(mappe_id)

    def postkasse(self, postkasse_id: int) -> Postkasse | None:
        return self._postkasser.get(postkasse_id)

    def emne(self, emne_id: int) -> Emne | None:
        return self._emner.get(emne_id)

    def by_contact_point(self, contact_point_id: str) -> Emne | None:
        """The Emne with this NgDP contactPointID (case-insensitive), or None."""
        return self._by_contact_point.get(contact_point_id.strip().lower())

    def postkasser_in(self, mappe_id: int) -> tuple[Postkasse, ...]:
        return tuple(p for p in self.postkasser if p.mappe_id == mappe_id)

    def emner_in(self, postkasse_id: int) -> tuple[Emne, ...]:
        return tuple(e for e in self.emner if e.postkasse_id == postkasse_id)

    def postkasse_of(self, emne: Emne) -> Postkasse:
        return self._postkasser[emne.postkasse_id]

    def closed_on(self, emne: Emne) -> dt.date | None:
        """The first day the Emne takes no replies, counting its Postkasse's marker."""
        dates = [d for d in (emne.closed, self._postkasser[emne.postkasse_id].closed) if d]
        return min(dates) if dates else None

    def is_closed(self, emne: Emne, on: dt.date) -> bool:
        closed = self.closed_on(emne)
        return closed is not None and on >= closed

    def mailboxes(self, emner=None) -> frozenset[str]:
        """The distinct functional mailboxes behind ``emner`` (default: all)."""
        return frozenset(e.mailbox for e in (self.emner if emner is None else emner))

    def __iter__(self) -> Iterator[Mappe]:
        return iter(self.mapper)


# ---------------------------------------------------------------------------------------------
# Loading and checking


def default_path() -> Path:
    from docpost import config

    return config.settings().config_dir / HIERARCHY_FILE


def _schema():
    from docpost import config, xmlsafe

    return xmlsafe.schema(config.settings().schema_dir / HIERARCHY_SCHEMA)


_lock = threading.Lock()
_hierarchy_cache: dict[tuple[str, str], Hierarchy] = {}


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _parse(data: bytes, path: str):
    """Parse, XSD-check and cross-check ``data``; returns (tree root, errors in line order)."""
    from lxml import etree

    from docpost import xmlsafe

    try:
        root = etree.fromstring(data, xmlsafe.parser())
    except etree.XMLSyntaxError as exc:
        msg = exc.msg or str(exc)
        return None, [MalformedXml(f"the file is not well-formed XML: {msg}", path=path,
                                   line=exc.lineno or None)]

    errors: list[HierarchyError] = []
    valid, error_log = _schema().check(root)
    if not valid:
        for entry in error_log:
            errors.append(SchemaError(_schema_message(entry.message), path=path,
                                      line=entry.line or None))
    if root.tag != f"{_Q}ContactHierarchy":
        return root, errors or [SchemaError("the root element must be ContactHierarchy "
                                            f"in namespace {NS_HIERARCHY}", path=path, line=root.sourceline)]

    mapper: dict[int, int] = {}
    postkasser: dict[int, tuple[int, object]] = {}  # id -> (line, element)
    contact_points: dict[str, int] = {}
    elements = [el for el in root if isinstance(el.tag, str)]
    for el in elements:
        kind = etree.QName(el).localname
        ident = _int(el.get("id"))
        if ident is None:
            continue  # the schema error says why
        if kind == "Mappe":
            if ident in mapper:
                errors.append(DuplicateId(f"Mappe id {ident} is used twice (first on line "
                                          f"{mapper[ident]})", path=path, line=el.sourceline))
            else:
                mapper[ident] = el.sourceline
        elif kind == "Postkasse":
            if ident in postkasser:
                errors.append(DuplicateId(f"Postkasse id {ident} is used twice (first on line "
                                          f"{postkasser[ident][0]})", path=path, line=el.sourceline))
            else:
                postkasser[ident] = (el.sourceline, el)

    emner: dict[int, int] = {}
    for el in elements:
        kind = etree.QName(el).localname
        ident = _int(el.get("id"))
        if ident is None:
            continue
        line = el.sourceline
        if kind == "Postkasse":
            parent = _int(el.get("mappe"))
            if parent is not None and parent not in mapper:
                errors.append(OrphanPostkasse(f"Postkasse {ident} names Mappe {parent}, which "
                                              "does not exist", path=path, line=line))
        elif kind == "Emne":
            if ident in emner:
                errors.append(DuplicateId(f"Emne id {ident} is used twice (first on line "
                                          f"{emner[ident]})", path=path, line=line))
            else:
                emner[ident] = line
            parent = _int(el.get("postkasse"))
            if parent is not None and parent not in postkasser:
                errors.append(OrphanEmne(f"Emne {ident} names Postkasse {parent}, which does "
                                         "not exist", path=path, line=line))
            if not (el.get("mailbox") or "").strip():
                errors.append(MissingMailbox(f"Emne {ident} has no functional mailbox (attribute "
                                             "mailbox: an e-mail address or a queue URI)",
                                             path=path, line=line))
            cp = (el.get("contactPointID") or "").strip().lower()
            if not cp:
                errors.append(MissingContactPoint(f"Emne {ident} has no NgDP contactPointID",
                                                  path=path, line=line))
            elif cp in contact_points:
                errors.append(DuplicateContactPoint(
                    f"Emne {ident} reuses contactPointID {cp} (first on line "
                    f"{contact_points[cp]}); replies could not be routed", path=path, line=line))
            else:
                contact_points[cp] = line
    errors.sort(key=lambda e: (e.line or 0))
    return root, errors


def _schema_message(message: str) -> str:
    """lxml's message without the namespace noise."""
    return message.replace(f"{{{NS_HIERARCHY}}}", "")


def _build(root, path: str, digest: str) -> Hierarchy:
    mapper, postkasser, emner = [], [], []
    for el in root:
        if not isinstance(el.tag, str):
            continue
        kind = el.tag[len(_Q):]
        if kind == "Mappe":
            mapper.append(Mappe(int(el.get("id")), el.get("label").strip(), el.sourceline))
        elif kind == "Postkasse":
            postkasser.append(Postkasse(int(el.get("id")), int(el.get("mappe")),
                                        el.get("label").strip(), _date(el.get("closed")),
                                        el.sourceline))
        elif kind == "Emne":
            emner.append(Emne(int(el.get("id")), int(el.get("postkasse")), el.get("label").strip(),
                              el.get("mailbox").strip(), el.get("contactPointID").strip().lower(),
                              _date(el.get("closed")), el.sourceline))
    return Hierarchy(mapper, postkasser, emner, authority=root.get("authority").strip(),
                     version=root.get("version").strip(), source=path, digest=digest)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise HierarchyNotFound(f"no contact hierarchy file at {path}", path=path) from None
    except OSError as exc:
        raise HierarchyNotFound(f"cannot read the contact hierarchy: {exc.strerror}",
                                path=path) from None


def check_hierarchy(path: str | Path | None = None) -> list[HierarchyError]:
    """Every problem in the hierarchy file at ``path`` (empty when it is valid), in line order."""
    path = Path(path) if path is not None else default_path()
    try:
        data = _read(path)
    except HierarchyError as exc:
        return [exc]
    return _parse(data, str(path))[1]


def load_hierarchy(path: str | Path | None = None) -> Hierarchy:
    """Load and validate the contact hierarchy (default ``<config_dir>/hierarchy.xml``).

    Raises the first problem (a :class:`HierarchyError` subclass, naming file and line); its
    ``all_errors`` holds every problem found. The result is cached by path and content.
    """
    path = Path(path) if path is not None else default_path()
    data = _read(path)
    digest = hashlib.sha256(data).hexdigest()
    key = (str(path.resolve()), digest)
    with _lock:
        cached = _hierarchy_cache.get(key)
    if cached is not None:
        return cached
    root, errors = _parse(data, str(path))
    if errors:
        first = errors[0]
        first.all_errors = tuple(errors)
        raise first
    hierarchy = _build(root, str(path), digest)
    with _lock:
        if len(_hierarchy_cache) > 32:
            _hierarchy_cache.clear()
        _hierarchy_cache[key] = hierarchy
    return hierarchy
