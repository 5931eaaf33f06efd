"""Reply stamping: which reply address (and letterhead) a letter gets.

The reply address is one Emne of the contact hierarchy (``docpost.hierarchy``), or
``ikkeMuligt`` when the letter cannot be answered. It is chosen by the sending profiles
(``config/profiles.xml``, format ``schemas/profiles.xsd``), in this order:

1. the manifest's reply override: an explicit Postkasse/Emne (must exist and be open on the
   submission's date), ``NoReply`` (ikkeMuligt), or a named profile (must exist);
2. the source system's rule for the document type;
3. the source system's default profile.

No applicable profile rejects the letter: it is never sent with a guessed address.
:func:`stamp` is a pure function of the submission and the configuration. The result is carried
in the MeMo ``Sender/ContactPoint``, in the legacy fjernprint fields
(:func:`legacy_reply_fields`) and on the letter (:func:`reply_line`). See docs/reply-stamping.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from docpost import model
from docpost.configfile import ConfigFileError
from docpost.errors import DocpostError
from docpost.hierarchy import Emne, Hierarchy, load_hierarchy

NS_PROFILES = "urn:docpost:profiles:1"
NS_DKAL = "urn:oio:dkal:1.0.0"  # the legacy reply fields' namespace (KOMBIT oio schemas)
PROFILES_FILE = "profiles.xml"
PROFILES_SCHEMA = "profiles.xsd"

_Q = f"{{{NS_PROFILES}}}"


# ---------------------------------------------------------------------------------------------
# Errors: the configuration (ProfilesError) and one letter's stamping (StampingError)


class ProfilesError(ConfigFileError):
    """A problem with the sending-profiles file, naming the file and the line."""

    code = "profiles.invalid"
    kind = "profiles"


class ProfilesNotFound(ProfilesError):
    code = "profiles.not-found"


class ProfilesMalformedXml(ProfilesError):
    code = "profiles.malformed-xml"


class ProfilesSchemaError(ProfilesError):
    code = "profiles.schema"


class DuplicateName(ProfilesError):
    code = "profiles.duplicate-name"


class DuplicateRule(ProfilesError):
    code = "profiles.duplicate-rule"


class UndefinedLetterhead(ProfilesError):
    code = "profiles.unknown-letterhead"


class UndefinedProfile(ProfilesError):
    code = "profiles.unknown-profile"


class UndefinedPostkasse(ProfilesError):
    code = "profiles.unknown-postkasse"


class UndefinedEmne(ProfilesError):
    code = "profiles.unknown-emne"


class EmneOutsidePostkasse(ProfilesError):
    code = "profiles.emne-not-in-postkasse"


class MissingLogo(ProfilesError):
    code = "profiles.missing-logo"


class StampingError(DocpostError):
    """A letter that cannot be stamped: rejected with a stable code and a plain reason."""

    code = "stamping.rejected"

    def __init__(self, message: str, *, submission: str | None = None):
        super().__init__(message)
        self.submission = submission  # the submission key (no personal data)

    def __reduce__(self):
        return (_rebuild_stamping_error, (type(self), self.message, self.submission))


def _rebuild_stamping_error(cls, message, submission):
    return cls(message, submission=submission)


class NoProfile(StampingError):
    code = "stamping.no-profile"


class UnknownProfile(StampingError):
    code = "stamping.unknown-profile"


class UnknownPostkasse(StampingError):
    code = "stamping.unknown-postkasse"


class UnknownEmne(StampingError):
    code = "stamping.unknown-emne"


class EmneNotInPostkasse(StampingError):
    code = "stamping.emne-not-in-postkasse"


class ClosedContactPoint(StampingError):
    code = "stamping.closed-contact-point"


class InvalidOverride(StampingError):
    code = "stamping.invalid-override"


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class Profile:
    """A named sending profile: a reply Emne (None: ikkeMuligt) and a letterhead."""

    name: str
    letterhead: model.Letterhead
    postkasse_id: int | None = None
    emne_id: int | None = None
    description: str | None = None

    @property
    def no_reply(self) -> bool:
        return self.emne_id is None


@dataclass(frozen=True)
class SourceSystemProfiles:
    """A source system's default profile and its rules (document type -> profile name)."""

    name: str
    default: str
    rules: tuple[tuple[str, str], ...] = ()

    def profile_name(self, document_type: str) -> tuple[str, str]:
        """(profile name, rule label) for a document type."""
        for doc_type, profile in self.rules:
            if doc_type == document_type:
                return profile, f"rule:{self.name}/{doc_type}"
        return self.default, f"default:{self.name}"


class SendingProfiles:
    """Validated sending profiles bound to a contact hierarchy. Immutable, cheap to share."""

    __slots__ = ("hierarchy", "_profiles", "_source_systems", "version", "source", "digest")

    def __init__(self, hierarchy: Hierarchy, profiles: Iterable[Profile],
                 source_systems: Iterable[SourceSystemProfiles], *, version: str,
                 source: str | None = None, digest: str | None = None):
        object.__setattr__(self, "hierarchy", hierarchy)
        object.__setattr__(self, "_profiles", {p.name: p for p in profiles})
        object.__setattr__(self, "_source_systems", {s.name: s for s in source_systems})
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "digest", digest)

    def __setattr__(self, name, value):
        raise AttributeError("SendingProfiles is immutable")

    def __getstate__(self):
        return {s: getattr(self, s) for s in self.__slots__}

    def __setstate__(self, state):
        for k, v in state.items():
            object.__setattr__(self, k, v)

    def __repr__(self) -> str:
        return (f"SendingProfiles(version={self.version!r}, {len(self._profiles)} profiles, "
                f"source systems {sorted(self._source_systems)})")

    @property
    def profiles(self) -> tuple[Profile, ...]:
        return tuple(self._profiles[n] for n in sorted(self._profiles))

    @property
    def source_systems(self) -> tuple[str, ...]:
        return tuple(sorted(self._source_systems))

    def profile(self, name: str) -> Profile | None:
        """The profile with this name (case-insensitive), or None."""
        return self._profiles.get(name.strip().lower())

    def source_system(self, name: str) -> SourceSystemProfiles | None:
        return self._source_systems.get(name)

    def profile_for(self, source_system: str, document_type: str) -> tuple[Profile, str] | None:
        """(profile, rule label) for a source system and document type; None when none applies."""
        system = self._source_systems.get(source_system)
        if system is None:
            return None
        name, rule = system.profile_name(document_type)
        return self._profiles[name], rule


def default_path() -> Path:
    from docpost import config

    return config.settings().config_dir / PROFILES_FILE


def _schema():
    from docpost import config, xmlsafe

    return xmlsafe.schema(config.settings().schema_dir / PROFILES_SCHEMA)


def _text(el, name: str) -> str | None:
    child = el.find(_Q + name)
    return " ".join(child.text.split()) if child is not None and child.text else None


def _check(data: bytes, path: Path, hierarchy: Hierarchy):
    """Parse and check a profiles file: (SendingProfiles | None, errors in line order)."""
    from lxml import etree

    from docpost import config, xmlsafe

    where = str(path)
    try:
        root = etree.fromstring(data, xmlsafe.parser())
    except etree.XMLSyntaxError as exc:
        return None, [ProfilesMalformedXml(f"the file is not well-formed XML: {exc.msg or exc}",
                                           path=where, line=exc.lineno or None)]
    valid, error_log = _schema().check(root)
    if not valid:
        return None, [ProfilesSchemaError(e.message.replace(_Q, ""), path=where,
                                          line=e.line or None) for e in error_log]

    errors: list[ProfilesError] = []
    sender_cvr = config.settings().sender_cvr
    letterheads: dict[str, model.Letterhead] = {}
    seen_at: dict[tuple[str, str], int] = {}

    def unique(kind: str, name: str, line: int) -> bool:
        if (kind, name) in seen_at:
            errors.append(DuplicateName(f"{kind} {name!r} is defined twice (first on line "
                                        f"{seen_at[kind, name]})", path=where, line=line))
            return False
        seen_at[kind, name] = line
        return True

    for el in root.iterfind(_Q + "Letterhead"):
        ident = el.get("id")
        if not unique("Letterhead", ident, el.sourceline):
            continue
        logo = _text(el, "logo")
        if logo is not None:
            logo_path = (path.parent / logo).resolve()
            if not logo_path.is_file():
                errors.append(MissingLogo(f"letterhead {ident!r} names logo {logo!r}, which is "
                                          f"not a file next to the configuration",
                                          path=where, line=el.find(_Q + "logo").sourceline))
            logo = str(logo_path)
        letterheads[ident] = model.Letterhead(
            municipality=_text(el, "municipality"),
            department=_text(el, "department"),
            address_lines=tuple(" ".join(a.text.split()) for a in el.iterfind(_Q + "addressLine")),
            cvr=_text(el, "cvr") or sender_cvr,
            phone=_text(el, "phone"),
            email=_text(el, "email"),
            web=_text(el, "web"),
            logo_path=logo,
        )

    profiles: dict[str, Profile] = {}
    for el in root.iterfind(_Q + "Profile"):
        name, line = el.get("name"), el.sourceline
        if not unique("Profile", name, line):
            continue
        letterhead = letterheads.get(el.get("letterhead"))
        if letterhead is None:
            errors.append(UndefinedLetterhead(f"profile {name!r} names letterhead "
                                              f"{el.get('letterhead')!r}, which is not defined",
                                              path=where, line=line))
            continue
        reply = el.find(_Q + "Reply")
        postkasse_id = emne_id = None
        if reply is not None:
            postkasse_id, emne_id = int(reply.get("postkasse")), int(reply.get("emne"))
            rline = reply.sourceline
            postkasse, emne = hierarchy.postkasse(postkasse_id), hierarchy.emne(emne_id)
            if postkasse is None:
                errors.append(UndefinedPostkasse(
                    f"profile {name!r} names Postkasse {postkasse_id}, which is not in the "
                    f"contact hierarchy ({hierarchy.source})", path=where, line=rline))
                continue
            if emne is None:
                errors.append(UndefinedEmne(
                    f"profile {name!r} names Emne {emne_id}, which is not in the contact "
                    f"hierarchy ({hierarchy.source})", path=where, line=rline))
                continue
            if emne.postkasse_id != postkasse_id:
                errors.append(EmneOutsidePostkasse(
                    f"profile {name!r} names Emne {emne_id} in Postkasse {postkasse_id}, but the "
                    f"Emne belongs to Postkasse {emne.postkasse_id}", path=where, line=rline))
                continue
        profiles[name] = Profile(name, letterhead, postkasse_id, emne_id, el.get("description"))

    systems: list[SourceSystemProfiles] = []
    defined = {n for (k, n) in seen_at if k == "Profile"}
    for el in root.iterfind(_Q + "SourceSystem"):
        name, line = el.get("name"), el.sourceline
        if not unique("SourceSystem", name, line):
            continue
        if el.get("default") not in defined:
            errors.append(UndefinedProfile(f"source system {name!r} has default profile "
                                           f"{el.get('default')!r}, which is not defined",
                                           path=where, line=line))
        rules: list[tuple[str, str]] = []
        claimed: dict[str, int] = {}
        for rule in el.iterfind(_Q + "Rule"):
            if rule.get("profile") not in defined:
                errors.append(UndefinedProfile(f"a rule of source system {name!r} names profile "
                                               f"{rule.get('profile')!r}, which is not defined",
                                               path=where, line=rule.sourceline))
            for doc_type in rule.get("documentTypes").split():
                if doc_type in claimed:
                    errors.append(DuplicateRule(
                        f"source system {name!r} has two rules for document type {doc_type!r} "
                        f"(first on line {claimed[doc_type]})", path=where, line=rule.sourceline))
                    continue
                claimed[doc_type] = rule.sourceline
                rules.append((doc_type, rule.get("profile")))
        systems.append(SourceSystemProfiles(name, el.get("default"), tuple(rules)))

    if errors:
        errors.sort(key=lambda e: e.line or 0)
        return None, errors
    return SendingProfiles(hierarchy, profiles.values(), systems, version=root.get("version"),
                           source=where, digest=hashlib.sha256(data).hexdigest()), []


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ProfilesNotFound(f"cannot read the sending profiles: {exc.strerror}",
                               path=path) from None


def check_profiles(path: str | Path | None = None,
                   hierarchy: Hierarchy | None = None) -> list[ProfilesError]:
    """Every problem in the profiles file (empty when valid), checked against ``hierarchy``."""
    path = Path(path) if path is not None else default_path()
    try:
        data = _read(path)
    except ProfilesError as exc:
        return [exc]
    return _check(data, path, hierarchy if hierarchy is not None else load_hierarchy())[1]


def load_profiles(path: str | Path | None = None,
                  hierarchy: Hierarchy | None = None) -> SendingProfiles:
    """Load the sending profiles (default ``<config_dir>/profiles.xml``).

    Validated against ``schemas/profiles.xsd`` and cross-checked against ``hierarchy`` (default:
    :func:`docpost.hierarchy.load_hierarchy`). Raises the first :class:`ProfilesError` (its
    ``all_errors`` holds every problem), or a ``HierarchyError`` for a bad hierarchy.
    """
    path = Path(path) if path is not None else default_path()
    data = _read(path)
    result, errors = _check(data, path, hierarchy if hierarchy is not None else load_hierarchy())
    if errors:
        errors[0].all_errors = tuple(errors)
        raise errors[0]
    return result


# ---------------------------------------------------------------------------------------------
# Stamping


@dataclass(frozen=True)
class Stamp:
    """What stamping gives a letter: its reply address and its letterhead."""

    reply: model.ReplyAddress
    letterhead: model.Letterhead
    profile: str | None  # the profile that supplied the letterhead (and, unless overridden, reply)

    def ledger_fields(self) -> dict:
        """The reply address as plain values for the ledger row (no personal data)."""
        r = self.reply
        return {
            "reply_type": r.reply_type.value,
            "reply_rule": r.rule,
            "reply_postkasse_id": r.postkasse_id,
            "reply_emne_id": r.emne_id,
            "reply_contact_point_id": r.contact_point_id,
            "sending_profile": self.profile,
        }


def _no_reply(rule: str) -> model.ReplyAddress:
    return model.ReplyAddress(reply_type=model.ReplyType.NOT_POSSIBLE, rule=rule)


def _given(hierarchy: Hierarchy, emne: Emne, rule: str) -> model.ReplyAddress:
    postkasse = hierarchy.postkasse_of(emne)
    return model.ReplyAddress(
        reply_type=model.ReplyType.GIVEN, rule=rule,
        postkasse_id=postkasse.id, postkasse_label=postkasse.label,
        emne_id=emne.id, emne_label=emne.label,
        contact_point_id=emne.contact_point_id, mailbox=emne.mailbox,
    )


def _open_emne(hierarchy: Hierarchy, emne: Emne, submission: model.Submission,
               source: str) -> Emne:
    """``emne`` if it takes replies on the submission's date, else ClosedContactPoint."""
    closed = hierarchy.closed_on(emne)
    if closed is not None and submission.key.date >= closed:
        postkasse = hierarchy.postkasse_of(emne)
        raise ClosedContactPoint(
            f"{source} gives reply address Postkasse {postkasse.id} \"{postkasse.label}\" / Emne "
            f"{emne.id} \"{emne.label}\", which was closed on {closed.isoformat()}. Choose an "
            "open Emne (see `docpost hierarchy show`).", submission=str(submission.key))
    return emne


def _profile_reply(profiles: SendingProfiles, profile: Profile, rule: str,
                   submission: model.Submission, source: str) -> model.ReplyAddress:
    if profile.no_reply:
        return _no_reply(rule)
    emne = profiles.hierarchy.emne(profile.emne_id)
    return _given(profiles.hierarchy, _open_emne(profiles.hierarchy, emne, submission, source), rule)


def _override_kinds(override: model.ReplyOverride) -> list[str]:
    kinds = []
    if override.postkasse_id is not None or override.emne_id is not None:
        kinds.append("an explicit Postkasse/Emne")
    if override.no_reply:
        kinds.append("NoReply")
    if override.profile:
        kinds.append("a named profile")
    return kinds


def stamp(submission: model.Submission, profiles: SendingProfiles) -> Stamp:
    """The reply address and letterhead of ``submission``; raises a :class:`StampingError`.

    Pure: the same submission and configuration always give an equal :class:`Stamp`. A contact
    point counts as closed from its ``closed`` date on, compared with the submission's date.
    """
    key = str(submission.key)
    source_system = submission.key.source_system
    document_type = submission.manifest.document_type
    override = submission.manifest.reply_override

    if override is not None:
        kinds = _override_kinds(override)
        if len(kinds) != 1:
            raise InvalidOverride(
                "The manifest's ReplyOverride must give exactly one of an explicit "
                f"Postkasse/Emne, NoReply or a named profile; it gives {len(kinds)}"
                + (f" ({', '.join(kinds)})" if kinds else "") + ".", submission=key)
        if override.profile:
            profile = profiles.profile(override.profile)
            if profile is None:
                known = ", ".join(p.name for p in profiles.profiles)
                raise UnknownProfile(
                    f"The manifest asks for sending profile {override.profile!r}, which is not "
                    f"defined. Defined profiles: {known}.", submission=key)
            rule = f"override:profile:{profile.name}"
            reply = _profile_reply(profiles, profile, rule, submission,
                                   f"Sending profile {profile.name!r} (named in the manifest)")
            return Stamp(reply, profile.letterhead, profile.name)

    found = profiles.profile_for(source_system, document_type)
    if found is None:
        raise NoProfile(
            f"No sending profile applies to source system {source_system!r} (document type "
            f"{document_type!r}): it has no default profile in the sending profiles "
            f"({Path(profiles.source or PROFILES_FILE).name}). The letter is not sent with a guessed reply address; ask the "
            "docpost operators to add the source system.", submission=key)
    profile, rule = found

    if override is None:
        source = (f"Sending profile {profile.name!r} (the {rule.split(':')[0]} for "
                  f"{source_system}/{document_type})")
        return Stamp(_profile_reply(profiles, profile, rule, submission, source),
                     profile.letterhead, profile.name)

    if override.no_reply:
        return Stamp(_no_reply("override:ikkeMuligt"), profile.letterhead, profile.name)

    hierarchy = profiles.hierarchy
    if override.emne_id is None or override.postkasse_id is None:
        missing = "Emne" if override.emne_id is None else "Postkasse"
        raise InvalidOverride(
            f"The manifest's reply override gives no {missing} id; an explicit reply address "
            "needs both MeddelelseSvarPostkasseIdentifikator and "
            "MeddelelseSvarEmneIdentifikator.", submission=key)
    postkasse = hierarchy.postkasse(override.postkasse_id)
    if postkasse is None:
        raise UnknownPostkasse(
            f"The manifest asks for replies to Postkasse {override.postkasse_id}, which does not "
            "exist in the contact hierarchy. Use a Postkasse/Emne listed by `docpost hierarchy "
            "show`, or leave out the override to use the sending profile.", submission=key)
    emne = hierarchy.emne(override.emne_id)
    if emne is None:
        raise UnknownEmne(
            f"The manifest asks for replies to Emne {override.emne_id} in Postkasse "
            f"{postkasse.id} \"{postkasse.label}\", but that Emne does not exist in the contact "
            "hierarchy. Use an Emne listed by `docpost hierarchy show`, or leave out the "
            "override to use the sending profile.", submission=key)
    if emne.postkasse_id != postkasse.id:
        raise EmneNotInPostkasse(
            f"The manifest asks for replies to Emne {emne.id} in Postkasse {postkasse.id}, but "
            f"Emne {emne.id} \"{emne.label}\" belongs to Postkasse {emne.postkasse_id}.",
            submission=key)
    emne = _open_emne(hierarchy, emne, submission, "The manifest's reply override")
    return Stamp(_given(hierarchy, emne, "override"), profile.letterhead, profile.name)


def stamp_many(submissions: Iterable[model.Submission],
               profiles: SendingProfiles) -> list[Stamp | StampingError]:
    """:func:`stamp` each submission, in order; a rejected one gives its StampingError."""
    out: list[Stamp | StampingError] = []
    for submission in submissions:
        try:
            out.append(stamp(submission, profiles))
        except StampingError as exc:
            out.append(exc)
    return out


# ---------------------------------------------------------------------------------------------
# Where the reply address is carried


def legacy_reply_fields(reply: model.ReplyAddress) -> dict[str, str]:
    """The legacy DKAL reply fields (namespace :data:`NS_DKAL`) as XML text, in schema order.

    For fjernprint ``DigitalPostParametre``: ``MeddelelseSvarTypeNavn`` (``angivet`` |
    ``ikkeMuligt``), then for ``angivet`` ``MeddelelseSvarPostkasseIdentifikator`` and
    ``MeddelelseSvarEmneIdentifikator`` (xs:nonNegativeInteger). Absent fields are left out.
    """
    if reply.reply_type is model.ReplyType.NOT_POSSIBLE:
        return {"MeddelelseSvarTypeNavn": model.ReplyType.NOT_POSSIBLE.value}
    return {
        "MeddelelseSvarTypeNavn": model.ReplyType.GIVEN.value,
        "MeddelelseSvarPostkasseIdentifikator": str(reply.postkasse_id),
        "MeddelelseSvarEmneIdentifikator": str(reply.emne_id),
    }


def letter_reference(submission: model.Submission) -> str | None:
    """The letter's reference number: the manifest's case reference, else the case number."""
    if submission.manifest.case_reference:
        return submission.manifest.case_reference
    if submission.case is not None and submission.case.case_number:
        return submission.case.case_number
    return None


def reply_line(reply: model.ReplyAddress, reference: str | None) -> str | None:
    """"Svar via Digital Post: <Postkasse> / <Emne> (ref. <reference>)"; None for ikkeMuligt."""
    line = reply.line
    if line is None:
        return None
    return f"{line} (ref. {reference})" if reference else line
