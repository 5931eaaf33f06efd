"""``docpost memo check``: validate MeMo messages, fjernprint ForsendelseI and kombi_request files."""

from __future__ import annotations

import argparse

from docpost.commands._output import EXIT_OK, EXIT_PROBLEM, add_output_argument, emit, note


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "memo", help="check MeMo / ForsendelseI / kombi_request XML against docpost's schemas",
        description=__doc__)
    sub = parser.add_subparsers(dest="memo_command", metavar="ACTION", required=True)
    check = sub.add_parser(
        "check", help="validate files; every error with its line",
        description="Validate each FILE by its root element: memo:Message against docpost's MeMo "
                    "schema, fjernprint:ForsendelseI against the KOMBIT schemas, kombi_request "
                    "for its shape and both parts. Exit 0 when all are valid, 1 otherwise.")
    check.add_argument("files", metavar="FILE", nargs="+")
    add_output_argument(check)
    check.set_defaults(func=_check)


def _problems(data: bytes) -> tuple[str, list[str]]:
    from docpost import fjernprint, memo

    tree, issues = memo.parse_xml(data)
    if tree is None:
        return "XML", [str(i) for i in issues]
    tag = tree.getroot().tag
    if tag == f"{{{memo.NS_MEMO}}}Message":
        return "MeMo message", [str(i) for i in memo.validate_tree(tree)]
    if tag == f"{{{fjernprint.NS_FJERNPRINT}}}ForsendelseI":
        return "ForsendelseI", [str(i) for i in fjernprint.validate_forsendelse_tree(tree)]
    if tag == fjernprint.KOMBI_ROOT:
        try:
            request = fjernprint.parse_kombi_request(data)
        except fjernprint.KombiRequestError as exc:
            return "kombi_request", [str(exc)]
        out = []
        if request.memo is not None:
            out += [f"memo:Message: {i}" for i in memo.validate_memo(request.memo)]
        if request.forsendelse is not None:
            out += [f"ForsendelseI: {i}" for i in fjernprint.validate_forsendelse(request.forsendelse)]
        return f"kombi_request ({request.kombi_valg})", out
    return "XML", [f"unknown root element {memo.redact(tag)}: expected memo:Message, "
                   "fjernprint:ForsendelseI or kombi_request"]


def _check(args: argparse.Namespace) -> int:
    results = []
    lines = []
    for name in args.files:
        try:
            with open(name, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            note(f"{name}: cannot read: {exc.strerror}")
            results.append({"file": name, "kind": None, "valid": False, "problems": [f"cannot read: {exc.strerror}"]})
            continue
        kind, problems = _problems(data)
        results.append({"file": name, "kind": kind, "valid": not problems, "problems": problems})
        lines += [f"{name}: {problem}" for problem in problems]
        if problems:
            note(f"{name}: {kind} invalid, {len(problems)} problem(s)")
        else:
            lines.append(f"{name}: {kind} valid")
    emit(args, {"files": results}, text="\n".join(lines))
    return EXIT_OK if all(r["valid"] for r in results) else EXIT_PROBLEM
