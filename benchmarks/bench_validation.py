"""Validation throughput: 1,000 generated submissions, validated with lxml and with xmlschema.

Generates a night (10 % broken) into a temporary folder, validates every submission with each
schema engine on the same documents and the same XSDs, prints submissions per second, and checks
that every good submission is accepted and every broken one rejected with its expected codes.
Exit 1 if any check fails.

    .venv/bin/python benchmarks/bench_validation.py [--count N] [--broken-share F] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from docpost import validation
from docpost_testbench.generate import generate_night


def run(root: Path, engine: str, expected: dict[str, list[str]]) -> tuple[float, int, list[str]]:
    sources = validation.discover(root)
    validation.schemas(engine)  # compile the XSDs outside the timed loop
    start = time.perf_counter()
    reports = list(validation.validate_many(sources, engine=engine))
    elapsed = time.perf_counter() - start
    problems = []
    for report in reports:
        codes = expected[str(report.key)]
        if not codes and not report.valid:
            problems.append(f"{engine}: good {report.key} rejected: {report.codes}")
        elif codes and report.valid:
            problems.append(f"{engine}: broken {report.key} accepted (expected {codes})")
        elif codes and not set(codes) <= set(report.codes):
            problems.append(f"{engine}: {report.key}: expected {codes}, got {report.codes}")
    return elapsed, len(reports), problems


def schema_only(root: Path) -> None:
    """Schema validation alone, on the same parsed documents, per engine."""
    from docpost import xmlsafe

    kinds = {"manifest.xml": "manifest", "att.xml": "attention", "s&d.xml": "case", "brev.xml": "letter"}
    docs = []
    for path in sorted((root / "inbox").glob("*/*/*/*.xml")):
        if path.name in kinds:
            try:
                docs.append((kinds[path.name], xmlsafe.parse(path.read_bytes())))
            except xmlsafe.XMLSafetyError:
                pass
    for engine in ("lxml", "xmlschema"):
        compiled = validation.schemas(engine)
        start = time.perf_counter()
        for kind, tree in docs:
            compiled.errors(kind, tree, "x")
        elapsed = time.perf_counter() - start
        print(f"{engine:>9}: schema validation only: {len(docs)} documents in {elapsed:.2f} s"
              f" = {len(docs) / elapsed:,.0f} documents/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--broken-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="docpost-bench-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        result = generate_night(args.count, "2026-01-15", root, broken_share=args.broken_share, seed=args.seed)
        print(f"generated {args.count} submissions ({result.broken} broken) in {time.perf_counter() - start:.1f} s")
        expected = json.loads((root / "expected.json").read_text())
        failures: list[str] = []
        for engine in ("lxml", "xmlschema"):
            run(root, engine, expected)  # warm-up: imports, page cache
            elapsed, n, problems = run(root, engine, expected)
            failures += problems
            print(f"{engine:>9}: {n} submissions in {elapsed:.2f} s = {n / elapsed:,.0f} submissions/s"
                  f" ({'all verdicts as expected' if not problems else f'{len(problems)} wrong verdicts'})")
        schema_only(root)
    for failure in failures[:20]:
        print("FAIL", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
