"""The content identity collect registers: names, sizes and S3 ETags (no GET), and how a hash made
the old way (names and sizes) is still recognised after the upgrade."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from types import SimpleNamespace

from docpost.ledger import Registration
from docpost.ledger.repository import Ledger
from docpost.pipeline import etag_value, fingerprint

FILES = {"manifest.xml": 812, "brev.xml": 2040, "_READY": 0}
ETAGS = {"manifest.xml": '"0cc175b9c0f1b6a831c399e269772661"', "brev.xml": '"92eb5ffee6ae2fec3ad71c777531578f"',
         "_READY": '"d41d8cd98f00b204e9800998ecf8427e"'}


def test_the_documented_formula():
    expected = hashlib.sha256(
        b"brev.xml\x002040\x0092eb5ffee6ae2fec3ad71c777531578f\n"
        b"manifest.xml\x00812\x000cc175b9c0f1b6a831c399e269772661\n"
    ).hexdigest()
    assert fingerprint(FILES, ETAGS) == expected


def test_other_bytes_of_the_same_length_are_another_identity():
    changed = {**ETAGS, "manifest.xml": '"4a8a08f09d37b73795649038408b5f33"'}
    assert fingerprint(FILES, changed) != fingerprint(FILES, ETAGS)


def test_order_quotes_case_and_ready_do_not_matter():
    shuffled = dict(reversed(list(FILES.items())))
    loud = {n: e.upper().strip('"') for n, e in ETAGS.items()}
    assert fingerprint(shuffled, loud) == fingerprint(FILES, ETAGS)
    assert fingerprint({**FILES, "_READY": 5}, {**ETAGS, "_READY": '"x"'}) == fingerprint(FILES, ETAGS)
    assert etag_value(' "AbC" ') == "abc" and etag_value(None) == ""


def test_names_and_sizes_still_count():
    assert fingerprint({**FILES, "manifest.xml": 813}, ETAGS) != fingerprint(FILES, ETAGS)
    renamed = {("brev2.xml" if n == "brev.xml" else n): v for n, v in FILES.items()}
    assert fingerprint(renamed, {("brev2.xml" if n == "brev.xml" else n): v for n, v in ETAGS.items()}) != \
        fingerprint(FILES, ETAGS)


def old_way(files: dict[str, int]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        if name != "_READY":
            digest.update(f"{name}\0{files[name]}\n".encode())
    return digest.hexdigest()


def reg(etags=ETAGS) -> Registration:
    return Registration("sbsys", "S-1", dt.date(2026, 11, 27), fingerprint(FILES, etags), "inbox/sbsys/2026-11-27/S-1/",
                        listing={n: (s, etags[n]) for n, s in FILES.items()})


def row(content_hash: str, listing: dict | None) -> SimpleNamespace:
    return SimpleNamespace(content_hash=content_hash,
                           listing=json.dumps({n: list(v) for n, v in listing.items()}) if listing is not None else None)


def test_a_row_registered_the_old_way_is_the_same_submission():
    listing = {n: (s, ETAGS[n]) for n, s in FILES.items()}
    assert Ledger._same_content(row(old_way(FILES), listing), reg())
    assert Ledger._same_content(row(old_way(FILES), None), reg())  # no listing kept: the old hash decides
    blank = {n: (s, "") for n, s in FILES.items()}
    assert Ledger._same_content(row(old_way(FILES), blank), reg())  # no ETags kept: the old hash decides


def test_an_old_way_row_still_sees_changed_bytes_when_its_listing_kept_the_etags():
    listing = {n: (s, ETAGS[n]) for n, s in FILES.items()}
    changed = {**ETAGS, "manifest.xml": '"4a8a08f09d37b73795649038408b5f33"'}
    assert not Ledger._same_content(row(old_way(FILES), listing), reg(changed))
    assert not Ledger._same_content(row(old_way({**FILES, "brev.xml": 1}), None), reg())
    no_listing = Registration("sbsys", "S-1", dt.date(2026, 11, 27), "ab" * 32, "inbox/sbsys/2026-11-27/S-1/")
    assert not Ledger._same_content(row(old_way(FILES), listing), no_listing)
