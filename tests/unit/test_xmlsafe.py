"""docpost.xmlsafe as the one XML module: the hardened parser and the shared compiled schemas.

(The refusals of :func:`xmlsafe.parse` are covered by the hostile-input tests.)
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from lxml import etree

from docpost import xmlsafe

XSD = b"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="n"><xs:simpleType><xs:restriction base="xs:integer">
    <xs:maxInclusive value="10"/></xs:restriction></xs:simpleType></xs:element>
</xs:schema>"""


def test_the_parser_is_hardened(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    xxe = f'<!DOCTYPE r [<!ENTITY x SYSTEM "{secret.as_uri()}">]><r>&x;</r>'.encode()
    root = etree.fromstring(xxe, xmlsafe.parser())
    assert "top secret" not in etree.tostring(root, encoding="unicode")
    laughs = b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]><r>&b;&b;</r>'
    assert "aaaaa" not in etree.tostring(etree.fromstring(laughs, xmlsafe.parser()), encoding="unicode")
    with pytest.raises(etree.XMLSyntaxError):  # callers handle lxml's own error, as before
        etree.fromstring(b"<r>", xmlsafe.parser())


def test_one_parser_per_thread_and_configuration():
    assert xmlsafe.parser() is xmlsafe.parser()
    assert xmlsafe.parser(huge_tree=True) is not xmlsafe.parser()
    other = []
    thread = threading.Thread(target=lambda: other.append(xmlsafe.parser()))
    thread.start()
    thread.join()
    assert other[0] is not xmlsafe.parser()
    big = b"<r>" + b"A" * (11 * 1024 * 1024) + b"</r>"  # a text node beyond libxml2's 10 MB default
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(big, xmlsafe.parser())
    assert len(etree.fromstring(big, xmlsafe.parser(huge_tree=True)).text) == 11 * 1024 * 1024
    assert xmlsafe.parse(big, max_bytes=len(big), huge_tree=True).getroot().tag == "r"


def test_schemas_are_compiled_once_per_resolved_path(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "n.xsd").write_bytes(XSD)
    first = xmlsafe.schema(tmp_path / "n.xsd")
    assert xmlsafe.schema(str(tmp_path / "sub" / ".." / "n.xsd")) is first
    assert first.validate(etree.fromstring(b"<n>3</n>"))
    valid, errors = first.check(etree.fromstring(b"<n>11</n>"))
    assert not valid and errors and "maxInclusive" in errors[0].message
    other = xmlsafe.schema(tmp_path / "n.xsd", engine="xmlschema")
    assert other.is_valid(etree.fromstring(b"<n>3</n>")) and not other.is_valid(etree.fromstring(b"<n>11</n>"))
    assert xmlsafe.schema(tmp_path / "n.xsd", engine="xmlschema") is other


def test_a_shared_schema_keeps_each_threads_errors(tmp_path):
    (tmp_path / "n.xsd").write_bytes(XSD)
    schema = xmlsafe.schema(tmp_path / "n.xsd")
    docs = [etree.fromstring(f"<n>{i % 20}</n>".encode()) for i in range(2000)]

    def verdict(doc):
        valid, errors = schema.check(doc)
        return valid, len(errors)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(verdict, docs))
    assert results == [(True, 0) if i % 20 <= 10 else (False, 1) for i in range(2000)]
