"""Validation gives the same verdicts when submissions are validated in threads (as the
pipeline's chunk tasks do) as one by one: a shared compiled schema must not lose errors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from docpost_testbench.generate import generate_night
from docpost.validation import discover, validate


def test_threaded_validation_agrees_with_sequential(tmp_path):
    generate_night(150, "2026-11-20", tmp_path, broken_share=0.4, seed=9)
    sources = discover(tmp_path)
    sequential = {str(s.key): (r.valid, sorted(r.codes)) for s, r in ((s, validate(s)) for s in sources)}
    assert sum(not v for v, _ in sequential.values()) >= 40
    for _ in range(4):
        with ThreadPoolExecutor(max_workers=8) as pool:
            threaded = dict(pool.map(lambda s: (str(s.key), (lambda r: (r.valid, sorted(r.codes)))(validate(s))),
                                     sources))
        assert threaded == sequential
