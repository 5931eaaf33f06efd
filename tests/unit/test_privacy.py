"""docpost.privacy: the one masking rule for CPR and CVR numbers (identifiers and free text)."""

from __future__ import annotations

import pytest

from docpost import privacy
from docpost.privacy import mask_identifier, scrub


@pytest.mark.parametrize(("identifier", "expected"), [
    ("0101901234", "010190-****"),
    ("010190-1234", "010190-****"),
    (" 010190 1234 ", "010190-****"),
    ("29189846", "2918****"),
    ("123", "****"),
    ("12345678901", "****"),
    ("", "****"),
])
def test_mask_identifier_shows_at_most_the_birth_date_of_a_cpr(identifier, expected):
    assert mask_identifier(identifier) == expected


def test_a_cpr_mask_never_shows_any_of_the_last_four_digits():
    for cpr in ("0101901234", "311299-9876", "2805775678"):
        digits = cpr.replace("-", "")
        for shown in (mask_identifier(cpr), scrub(f"cpr {cpr}.")):
            assert digits[6:] not in shown and digits[:6] in shown


@pytest.mark.parametrize(("text", "expected"), [
    # CPR with and without the hyphen, CVR, embedded in text
    ("recipient 0101901234 unknown", "recipient 010190-**** unknown"),
    ("cpr=010190-1234.", "cpr=010190-****."),
    ("CVR 29189846 closed", "CVR 2918**** closed"),
    ("(0101901234,29189846)", "(010190-****,2918****)"),
    # glued to letters, underscores or dashes: still masked (file names, ids built from a CPR)
    ("brev_0101901234.pdf", "brev_010190-****.pdf"),
    ("CPR0101901234", "CPR010190-****"),
    ("file0101901234.pdf", "file010190-****.pdf"),
    ("x-0101901234-y", "x-010190-****-y"),
    # not personal data: left alone
    ("uuid 12345678-1234-4234-8234-123456789012 kept", "uuid 12345678-1234-4234-8234-123456789012 kept"),
    ("tx 1ab6eb87-a457-4ad3-8952-ed8f18a1676a.", "tx 1ab6eb87-a457-4ad3-8952-ed8f18a1676a."),
    ("sha ab0101901234cd and Emne 1001", "sha ab0101901234cd and Emne 1001"),
    ("on 2026-01-15 at 08:30", "on 2026-01-15 at 08:30"),  # a dashed date is not an identifier
    ("id 123456789012 and 1234567", "id 123456789012 and 1234567"),  # other lengths are not CPR/CVR
    # an 8-digit date cannot be told from a CVR: masked (a false positive is cheap)
    ("due 20260115", "due 2026****"),
    ("", ""),
    (None, None),
])
def test_scrub_masks_cpr_and_cvr_shaped_numbers(text, expected):
    assert scrub(text) == expected


def test_scrub_cuts_to_the_limit_after_masking():
    assert scrub("a" * 5000, limit=2000) == "a" * 2000
    assert scrub("short", limit=2000) == "short"
    assert len(scrub("x " * 3000)) == 6000  # no limit: nothing cut
    cut = scrub("0101901234 and more", limit=9)
    assert cut == "010190-**" and "1234" not in cut  # a cut never exposes the hidden digits


def test_every_caller_uses_the_one_rule():
    from docpost import identifiers, memo, model, validation
    from docpost.channels import sf1601
    from docpost.ledger import records, repository
    from docpost.replies import store

    assert repository.scrub is store.scrub is sf1601.scrub is validation.scrub is privacy.scrub
    assert records.mask_identifier is model.mask_identifier is identifiers.mask_identifier is privacy.mask_identifier
    assert memo.redact("Element 'x': The value '0101901234' is not valid; see 010190-1234") == (
        "Element 'x': The value '…' is not valid; see 010190-****")
