"""``docpost hierarchy``: check and show the contact hierarchy (Mappe -> Postkasse -> Emne)."""

from __future__ import annotations

import argparse
import datetime as dt

from docpost.commands._output import EXIT_OK, EXIT_PROBLEM, add_output_argument, emit, iso_date, note


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "hierarchy", help="check or show the contact hierarchy (Mappe/Postkasse/Emne)",
        description=__doc__)
    sub = parser.add_subparsers(dest="hierarchy_command", metavar="ACTION", required=True)

    check = sub.add_parser("check", help="validate a hierarchy file; every problem with its line",
                           description="Validate a contact hierarchy file. Exit 0 when valid, "
                                       "1 with every problem (file:line: message [code]) when not.")
    check.add_argument("file", metavar="FILE", help="the hierarchy XML file")
    check.add_argument("--profiles", metavar="PROFILES",
                       help="also check this sending-profiles file against the hierarchy")
    add_output_argument(check)
    check.set_defaults(func=_check)

    show = sub.add_parser("show", help="print the tree with mailbox counts",
                          description="Print the contact hierarchy as a tree, with the number of "
                                      "Emner and distinct functional mailboxes per Mappe and "
                                      "Postkasse (default file: <config dir>/hierarchy.xml).")
    show.add_argument("file", metavar="FILE", nargs="?", help="the hierarchy XML file")
    show.add_argument("--on", metavar="DATE", type=iso_date,
                      help="mark contact points closed on DATE (default: today)")
    add_output_argument(show)
    show.set_defaults(func=_show)


def _problem(error) -> dict:  # noqa: ANN001
    return {"file": error.path, "line": error.line, "code": error.code, "message": error.message}


def _check(args: argparse.Namespace) -> int:
    from docpost.hierarchy import check_hierarchy, load_hierarchy

    data: dict = {"file": args.file, "valid": False, "problems": [], "profiles": None}
    lines: list[str] = []
    errors = check_hierarchy(args.file)
    data["problems"] = [_problem(e) for e in errors]
    lines += [str(e) for e in errors]
    if errors:
        emit(args, data, text="\n".join(lines))
        note(f"{args.file}: {len(errors)} problem(s)")
        return EXIT_PROBLEM
    hierarchy = load_hierarchy(args.file)
    data.update(valid=True, mapper=len(hierarchy.mapper), postkasser=len(hierarchy.postkasser),
                emner=len(hierarchy.emner))
    lines.append(f"{args.file}: valid ({len(hierarchy.mapper)} mapper, {len(hierarchy.postkasser)} "
                 f"postkasser, {len(hierarchy.emner)} emner)")
    problems = []
    if args.profiles:
        from docpost.stamping import check_profiles

        problems = check_profiles(args.profiles, hierarchy)
        data["profiles"] = {"file": args.profiles, "valid": not problems,
                            "problems": [_problem(p) for p in problems]}
        lines += [str(p) for p in problems]
        if not problems:
            lines.append(f"{args.profiles}: valid against {args.file}")
    emit(args, data, text="\n".join(lines))
    if problems:
        note(f"{args.profiles}: {len(problems)} problem(s)")
        return EXIT_PROBLEM
    return EXIT_OK


def _count(hierarchy, emner) -> str:
    return f"{len(emner)} emner, {len(hierarchy.mailboxes(emner))} mailboxes"


def _tree(hierarchy, on: dt.date) -> dict:  # noqa: ANN001
    def emne(e) -> dict:  # noqa: ANN001
        closed_on = hierarchy.closed_on(e)
        return {"id": e.id, "label": e.label, "mailbox": e.mailbox, "contact_point_id": e.contact_point_id,
                "closed_on": closed_on, "closed": bool(closed_on) and hierarchy.is_closed(e, on)}

    def postkasse(p) -> dict:  # noqa: ANN001
        emner = hierarchy.emner_in(p.id)
        return {"id": p.id, "label": p.label, "closed": p.closed,
                "mailboxes": len(hierarchy.mailboxes(emner)), "emner": [emne(e) for e in emner]}

    def mappe(m) -> dict:  # noqa: ANN001
        postkasser = hierarchy.postkasser_in(m.id)
        emner = [e for p in postkasser for e in hierarchy.emner_in(p.id)]
        return {"id": m.id, "label": m.label, "mailboxes": len(hierarchy.mailboxes(emner)),
                "postkasser": [postkasse(p) for p in postkasser]}

    return {"authority": hierarchy.authority, "version": hierarchy.version, "source": hierarchy.source,
            "on": on, "mailboxes": len(hierarchy.mailboxes(hierarchy.emner)),
            "mapper": [mappe(m) for m in hierarchy.mapper]}


def _tree_text(hierarchy, on: dt.date) -> str:  # noqa: ANN001
    lines = [f"{hierarchy.authority}, contact hierarchy {hierarchy.version} ({hierarchy.source}): "
             f"{len(hierarchy.mapper)} mapper, {len(hierarchy.postkasser)} postkasser, "
             f"{_count(hierarchy, hierarchy.emner)}"]
    for mappe in hierarchy.mapper:
        postkasser = hierarchy.postkasser_in(mappe.id)
        emner = [e for p in postkasser for e in hierarchy.emner_in(p.id)]
        lines.append(f"Mappe {mappe.id} {mappe.label}  ({len(postkasser)} postkasser, "
                     f"{_count(hierarchy, emner)})")
        for postkasse in postkasser:
            emner = hierarchy.emner_in(postkasse.id)
            closed = f"  [closed {postkasse.closed}]" if postkasse.closed else ""
            lines.append(f"  Postkasse {postkasse.id} {postkasse.label}  "
                         f"({_count(hierarchy, emner)}){closed}")
            for emne in emner:
                mark = ""
                if hierarchy.closed_on(emne):
                    state = "closed" if hierarchy.is_closed(emne, on) else "closes"
                    mark = f"  [{state} {hierarchy.closed_on(emne)}]"
                lines.append(f"    Emne {emne.id} {emne.label} -> {emne.mailbox}  "
                             f"contactPointID {emne.contact_point_id}{mark}")
    return "\n".join(lines)


def _show(args: argparse.Namespace) -> int:
    from docpost.hierarchy import HierarchyError, load_hierarchy

    try:
        hierarchy = load_hierarchy(args.file)
    except HierarchyError as exc:  # the file under examination is invalid: a finding, not a config error
        for error in exc.all_errors:
            note(str(error))
        return EXIT_PROBLEM
    on = args.on or dt.date.today()
    emit(args, _tree(hierarchy, on), text=lambda _: _tree_text(hierarchy, on))
    return EXIT_OK
