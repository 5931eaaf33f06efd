"""One way to do each cross-cutting thing, checked over the product and the test bench sources.

- XML: only ``docpost/xmlsafe.py`` builds an lxml parser or compiles an XSD (``etree.XMLParser(``,
  ``etree.XMLSchema(``, ``xmlschema.XMLSchema(``); everyone else asks ``xmlsafe.parser()``,
  ``xmlsafe.parse()`` or ``xmlsafe.schema()``.
- Personal identifiers: only ``docpost/privacy.py`` holds a CPR-looking regex (a quantifier
  of six digits, the DDMMYY part, or one whose range takes in ten digits) and defines the
  masking functions. Allowed exception: ``docpost/identifiers.py``, which checks the *format*
  of a whole field value (``CPR_SHAPE``), not masking.

Best effort: a static look at the source (AST), so an aliased or dynamic call can slip through.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (ROOT / "plugins" / "docpost", ROOT / "testbench" / "docpost_testbench")
XML_HOME = "plugins/docpost/xmlsafe.py"
PRIVACY_HOME = "plugins/docpost/privacy.py"
CPR_REGEX_ALLOWED = {PRIVACY_HOME, "plugins/docpost/identifiers.py"}  # identifiers: format checks

_FACTORIES = frozenset({"XMLParser", "ETCompatXMLParser", "XMLSchema", "XMLSchema10", "XMLSchema11"})
_MASKING_FUNCTIONS = frozenset({"mask_identifier", "scrub", "_mask_numbers", "mask_cpr", "mask_cvr"})
# a digit class (\d, [0-9]) with a count quantifier: {m}, {m,} or {m,n}
_DIGIT_RUN = re.compile(r"(?:\\d|\[0-9\])\{(\d+)(,(\d*))?\}")


def _sources() -> list[tuple[str, ast.Module]]:
    found = []
    for package in PACKAGES:
        for path in sorted(package.rglob("*.py")):
            found.append((path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(encoding="utf-8"))))
    return found


SOURCES = _sources()


def _call_name(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def cpr_like(pattern: str) -> bool:
    """Whether a regex text can match a CPR: six digits (DDMMYY) or a run whose range takes in ten."""
    for match in _DIGIT_RUN.finditer(pattern):
        low = int(match.group(1))
        high = low if match.group(2) is None else (int(match.group(3)) if match.group(3) else None)
        if low == 6 or low <= 10 and (high is None or high >= 10) and (high != low or low == 10):
            return True
    return False


def test_the_checks_see_the_sources():
    names = {name for name, _ in SOURCES}
    assert {XML_HOME, PRIVACY_HOME, "testbench/docpost_testbench/simulator/kombi.py"} <= names


@pytest.mark.parametrize(("pattern", "expected"), [
    (r"(?<!\d)(\d{6})-?\d{4}(?!\d)", True),
    (r"[0-9]{10}", True),
    (r"(?<![\w-])\d{8,10}(?![\w-])", True),
    (r"\d{6,}", True),
    (r"\d{4}-\d{2}-\d{2}", False),
    (r"\d{8}", False),
    (r"^\s*(?:(\d{3})\s*[/.-]\s*)?(\d{4})\s*$", False),
    (r"\d{1,9}", False),
])
def test_the_cpr_regex_detector(pattern, expected):
    assert cpr_like(pattern) is expected


def test_only_xmlsafe_builds_parsers_and_compiles_schemas():
    offenders = []
    for name, tree in SOURCES:
        if name == XML_HOME:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _call_name(node) in _FACTORIES:
                offenders.append(f"{name}:{node.lineno} calls {ast.unparse(node.func)}(")
            elif isinstance(node, ast.ImportFrom) and node.module in ("lxml.etree", "xmlschema"):
                offenders += [f"{name}:{node.lineno} imports {a.name} from {node.module}"
                              for a in node.names if a.name in _FACTORIES]
    assert not offenders, "use docpost.xmlsafe.parser()/parse()/schema() instead:\n" + "\n".join(offenders)


def test_only_privacy_holds_cpr_regexes_and_masking_functions():
    offenders = []
    for name, tree in SOURCES:
        for node in ast.walk(tree):
            if (name not in CPR_REGEX_ALLOWED and isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and cpr_like(node.value)):
                offenders.append(f"{name}:{node.lineno} CPR-looking regex {node.value!r}")
            if (name != PRIVACY_HOME and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and node.name in _MASKING_FUNCTIONS):
                offenders.append(f"{name}:{node.lineno} defines {node.name}()")
    assert not offenders, "use docpost.privacy.mask_identifier()/scrub() instead:\n" + "\n".join(offenders)
