"""The contact hierarchy: the shipped sample, lookups, and each load error with its line."""

from __future__ import annotations

import datetime as dt
import pickle
import re
import uuid

import pytest

from docpost import config, hierarchy as h

NS = 'xmlns="urn:docpost:hierarchy:1"'


def cp(n: int) -> str:
    """A distinct, well-formed contactPointID per n."""
    return str(uuid.UUID(int=n, version=4))


def emne(ident, postkasse, label="Emne", mailbox="post@soeby.dk", contact=None, extra=""):
    contact = cp(ident) if contact is None else contact
    attrs = f'id="{ident}" postkasse="{postkasse}" label="{label}"'
    if mailbox:
        attrs += f' mailbox="{mailbox}"'
    if contact:
        attrs += f' contactPointID="{contact}"'
    return f"  <Emne {attrs}{extra}/>"


def document(*body: str) -> str:
    return "\n".join([
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<ContactHierarchy {NS} authority="Testby Kommune" version="t1">',
        *body,
        "</ContactHierarchy>",
    ]) + "\n"


VALID_BODY = (
    '  <Mappe id="1" label="Borgerservice"/>',
    '  <Postkasse id="100" mappe="1" label="Borgerservice"/>',
    emne(1001, 100, "Pas", "pas@soeby.dk"),
    emne(1002, 100, "Flytning", "pas@soeby.dk"),
    '  <Mappe id="3" label="Børn og Familie"/>',
    '  <Postkasse id="300" mappe="3" label="Børn og Familie"/>',
    emne(3002, 300, "Familierådgivning", "sbsys://esdh.soeby.dk/koe/familie"),
    '  <Postkasse id="390" mappe="3" label="Gammel" closed="2025-01-01"/>',
    emne(3901, 390, "Gammelt emne", "gammel@soeby.dk", extra=' closed="2026-01-01"'),
)


def write(tmp_path, text: str, name: str = "hierarchy.xml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, marker: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line containing ``marker``."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if marker in line]
    return hits[occurrence - 1]


# ---------------------------------------------------------------------------------------------
# The shipped sample


def test_shipped_sample_is_valid_and_has_the_fixed_ids():
    tree = h.load_hierarchy()
    assert h.check_hierarchy() == []
    assert tree.authority == "Søby Kommune"
    assert tree.postkasse(100).label == "Borgerservice"
    assert tree.emne(1001).postkasse_id == 100
    assert tree.postkasse(300).label == "Børn og Familie"
    assert tree.emne(3002).postkasse_id == 300
    assert tree.emne(9999) is None
    departments = {p.label for p in tree.postkasser} | {m.label for m in tree.mapper}
    for wanted in ("Borgerservice", "Jobcenter", "Børn og Familie", "Ældre og Handicap",
                   "Teknik og Miljø", "Opkrævning"):
        assert any(wanted in d for d in departments), wanted


def test_shipped_sample_ids_follow_the_conventions_and_every_emne_is_routable():
    tree = h.load_hierarchy()
    assert all(1 <= m.id <= 9 for m in tree.mapper)
    assert all(100 <= p.id <= 999 for p in tree.postkasser)
    assert all(1000 <= e.id <= 9999 for e in tree.emner)
    assert len({e.contact_point_id for e in tree.emner}) == len(tree.emner)
    for e in tree.emner:
        assert tree.by_contact_point(e.contact_point_id) is e
        assert e.mailbox_kind in ("email", "queue")
        assert tree.postkasse_of(e).id == e.postkasse_id
        assert len(tree.emner_in(e.postkasse_id)) >= 1
    # the reply-routing work needs a contact point that has since been closed
    assert any(tree.closed_on(e) for e in tree.emner)


def test_default_path_follows_the_config_dir(tmp_path, monkeypatch):
    write(tmp_path, document(*VALID_BODY))
    monkeypatch.setenv("DOCPOST_CONFIG_DIR", str(tmp_path))
    assert h.default_path() == config.settings().config_dir / "hierarchy.xml"
    assert h.load_hierarchy().authority == "Testby Kommune"


# ---------------------------------------------------------------------------------------------
# Lookups and the closed marker


@pytest.fixture()
def tree(tmp_path):
    return h.load_hierarchy(write(tmp_path, document(*VALID_BODY)))


def test_lookups_by_id_and_contact_point(tree):
    assert tree.emne(3002).label == "Familierådgivning"
    assert tree.emne(3002).mailbox_kind == "queue"
    assert tree.emne(1001).mailbox_kind == "email"
    assert tree.postkasse(300).mappe_id == 3
    assert tree.mappe(3).label == "Børn og Familie"
    assert tree.by_contact_point(cp(3002).upper()).id == 3002
    assert tree.by_contact_point(cp(4242)) is None
    assert [p.id for p in tree.postkasser_in(3)] == [300, 390]
    assert [e.id for e in tree.emner_in(100)] == [1001, 1002]
    assert tree.mailboxes(tree.emner_in(100)) == {"pas@soeby.dk"}
    assert tree.mappe(2) is None and tree.postkasse(200) is None


def test_closed_counts_the_postkasse_and_starts_on_its_date(tree):
    own = tree.emne(1001)
    assert tree.closed_on(own) is None and not tree.is_closed(own, dt.date(2099, 1, 1))
    old = tree.emne(3901)  # Emne closes 2026-01-01, its Postkasse already 2025-01-01
    assert tree.closed_on(old) == dt.date(2025, 1, 1)
    assert not tree.is_closed(old, dt.date(2024, 12, 31))
    assert tree.is_closed(old, dt.date(2025, 1, 1))


def test_hierarchy_is_immutable_shareable_and_cached(tmp_path, tree):
    with pytest.raises(AttributeError):
        tree.version = "x"
    with pytest.raises(AttributeError):
        tree.emne(1001).label = "x"
    copy = pickle.loads(pickle.dumps(tree))
    assert copy.emne(3002) == tree.emne(3002) and copy.digest == tree.digest
    path = tmp_path / "hierarchy.xml"
    assert h.load_hierarchy(path) is tree  # same content: the shared instance
    path.write_text(document(*VALID_BODY[:4]), encoding="utf-8")
    changed = h.load_hierarchy(path)
    assert changed is not tree and changed.emne(3002) is None


# ---------------------------------------------------------------------------------------------
# Broken files: each a specific error, naming file and line


def _load_error(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(expected) as info:
        h.load_hierarchy(path)
    err = info.value
    assert isinstance(err, h.HierarchyError)
    assert err.path == str(path)
    assert str(err).startswith(f"{path}:{err.line}: ") and err.code in str(err)
    return err


def test_duplicate_emne_id(tmp_path):
    text = document(*VALID_BODY, emne(1001, 300, "Igen", contact=cp(77)))
    err = _load_error(tmp_path, text, h.DuplicateId)
    assert err.code == "hierarchy.duplicate-id"
    assert err.line == line_of(text, 'id="1001"', 2)
    first = line_of(text, 'id="1001"')
    assert f"first on line {first}" in err.message


def test_duplicate_postkasse_and_mappe_ids(tmp_path):
    text = document(*VALID_BODY, '  <Postkasse id="300" mappe="1" label="X"/>',
                    '  <Mappe id="1" label="Igen"/>')
    errors = h.check_hierarchy(write(tmp_path, text))
    assert [(type(e), e.line) for e in errors] == [
        (h.DuplicateId, line_of(text, '<Postkasse id="300"', 2)),
        (h.DuplicateId, line_of(text, '<Mappe id="1"', 2)),
    ]


def test_duplicate_contact_point(tmp_path):
    text = document(*VALID_BODY, emne(1003, 100, "Kopi", contact=cp(1001)))
    err = _load_error(tmp_path, text, h.DuplicateContactPoint)
    assert err.code == "hierarchy.duplicate-contact-point"
    assert err.line == line_of(text, 'id="1003"')


def test_orphan_emne(tmp_path):
    text = document(*VALID_BODY, emne(4001, 400, "Hjemmehjælp"))
    err = _load_error(tmp_path, text, h.OrphanEmne)
    assert err.code == "hierarchy.orphan-emne"
    assert err.line == line_of(text, 'id="4001"')
    assert "Postkasse 400" in err.message


def test_orphan_postkasse(tmp_path):
    text = document(*VALID_BODY, '  <Postkasse id="500" mappe="5" label="Byggeri"/>')
    err = _load_error(tmp_path, text, h.OrphanPostkasse)
    assert err.code == "hierarchy.orphan-postkasse"
    assert err.line == line_of(text, 'id="500"')
    assert "Mappe 5" in err.message


def test_missing_mailbox(tmp_path):
    text = document(*VALID_BODY, emne(1003, 100, "Uden postkasse", mailbox=None))
    err = _load_error(tmp_path, text, h.MissingMailbox)
    assert err.code == "hierarchy.missing-mailbox"
    assert err.line == line_of(text, 'id="1003"')


def test_missing_contact_point(tmp_path):
    text = document(*VALID_BODY, emne(1003, 100, "Uden kontaktpunkt", contact=""))
    err = _load_error(tmp_path, text, h.MissingContactPoint)
    assert err.code == "hierarchy.missing-contact-point"
    assert err.line == line_of(text, 'id="1003"')


def test_malformed_xml(tmp_path):
    text = document(*VALID_BODY, '  <Emne id="1003" postkasse="100" label="Ikke lukket"')
    err = _load_error(tmp_path, text, h.MalformedXml)
    assert err.code == "hierarchy.malformed-xml"
    assert err.line is not None and err.line >= line_of(text, 'id="1003"')


def test_schema_violation(tmp_path):
    text = document(*VALID_BODY, emne(12345, 100, "Fem cifre"))
    err = _load_error(tmp_path, text, h.SchemaError)
    assert err.code == "hierarchy.schema"
    assert err.line == line_of(text, 'id="12345"')
    assert "12345" in err.message and "{urn:" not in err.message


def test_bad_mailbox_value_is_a_schema_error(tmp_path):
    text = document(*VALID_BODY, emne(1003, 100, "Forkert", mailbox="ikke en adresse"))
    err = _load_error(tmp_path, text, h.SchemaError)
    assert err.line == line_of(text, 'id="1003"')


def test_every_problem_is_reported_in_line_order(tmp_path):
    text = document(*VALID_BODY,
                    emne(4001, 400, "Forældreløs"),
                    emne(1003, 100, "Uden postkasse", mailbox=None),
                    '  <Postkasse id="500" mappe="5" label="Byggeri"/>')
    path = write(tmp_path, text)
    errors = h.check_hierarchy(path)
    assert [type(e) for e in errors] == [h.OrphanEmne, h.MissingMailbox, h.OrphanPostkasse]
    assert [e.line for e in errors] == sorted(e.line for e in errors)
    with pytest.raises(h.OrphanEmne) as info:
        h.load_hierarchy(path)
    assert [type(e) for e in info.value.all_errors] == [type(e) for e in errors]


def test_missing_file(tmp_path):
    with pytest.raises(h.HierarchyNotFound) as info:
        h.load_hierarchy(tmp_path / "nowhere.xml")
    assert info.value.code == "hierarchy.not-found"
    assert [type(e) for e in h.check_hierarchy(tmp_path / "nowhere.xml")] == [h.HierarchyNotFound]


def test_error_codes_are_distinct_and_stable():
    classes = [h.HierarchyNotFound, h.MalformedXml, h.SchemaError, h.DuplicateId,
               h.DuplicateContactPoint, h.OrphanPostkasse, h.OrphanEmne, h.MissingMailbox,
               h.MissingContactPoint]
    codes = [c.code for c in classes]
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(r"hierarchy\.[a-z-]+", c) for c in codes)
    err = h.OrphanEmne("x", path="f.xml", line=3)
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is h.OrphanEmne and (again.path, again.line) == ("f.xml", 3)
