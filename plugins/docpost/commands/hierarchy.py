"""``docpost hierarchy``: check and show the contact hierarchy (Mappe -> Postkasse -> Emne)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys


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
    check.set_defaults(func=_check)

    show = sub.add_parser("show", help="print the tree with mailbox counts",
                          description="Print the contact hierarchy as a tree, with the number of "
                                      "Emner and distinct functional mailboxes per Mappe and "
                                      "Postkasse (default file: <config dir>/hierarchy.xml).")
    show.add_argument("file", metavar="FILE", nargs="?", help="the hierarchy XML file")
    show.add_argument("--on", metavar="DATE", type=dt.date.fromisoformat,
                      help="mark contact points closed on DATE (default: today)")
    show.set_defaults(func=_show)


def _check(args: argparse.Namespace) -> int:
    from docpost.hierarchy import check_hierarchy, load_hierarchy

    errors = check_hierarchy(args.file)
    for error in errors:
        print(error)
    if errors:
        print(f"{args.file}: {len(errors)} problem(s)", file=sys.stderr)
        return 1
    hierarchy = load_hierarchy(args.file)
    print(f"{args.file}: valid ({len(hierarchy.mapper)} mapper, {len(hierarchy.postkasser)} "
          f"postkasser, {len(hierarchy.emner)} emner)")
    if args.profiles:
        from docpost.stamping import check_profiles

        problems = check_profiles(args.profiles, hierarchy)
        for problem in problems:
            print(problem)
        if problems:
            print(f"{args.profiles}: {len(problems)} problem(s)", file=sys.stderr)
            return 1
        print(f"{args.profiles}: valid against {args.file}")
    return 0


def _count(hierarchy, emner) -> str:
    return f"{len(emner)} emner, {len(hierarchy.mailboxes(emner))} mailboxes"


def _show(args: argparse.Namespace) -> int:
    from docpost.hierarchy import HierarchyError, load_hierarchy

    try:
        hierarchy = load_hierarchy(args.file)
    except HierarchyError as exc:
        for error in exc.all_errors:
            print(error, file=sys.stderr)
        return 1
    on = args.on or dt.date.today()
    print(f"{hierarchy.authority}, contact hierarchy {hierarchy.version} ({hierarchy.source}): "
          f"{len(hierarchy.mapper)} mapper, {len(hierarchy.postkasser)} postkasser, "
          f"{_count(hierarchy, hierarchy.emner)}")
    for mappe in hierarchy.mapper:
        postkasser = hierarchy.postkasser_in(mappe.id)
        emner = [e for p in postkasser for e in hierarchy.emner_in(p.id)]
        print(f"Mappe {mappe.id} {mappe.label}  ({len(postkasser)} postkasser, "
              f"{_count(hierarchy, emner)})")
        for postkasse in postkasser:
            emner = hierarchy.emner_in(postkasse.id)
            closed = f"  [closed {postkasse.closed}]" if postkasse.closed else ""
            print(f"  Postkasse {postkasse.id} {postkasse.label}  "
                  f"({_count(hierarchy, emner)}){closed}")
            for emne in emner:
                mark = ""
                if hierarchy.closed_on(emne):
                    state = "closed" if hierarchy.is_closed(emne, on) else "closes"
                    mark = f"  [{state} {hierarchy.closed_on(emne)}]"
                print(f"    Emne {emne.id} {emne.label} -> {emne.mailbox}  "
                      f"contactPointID {emne.contact_point_id}{mark}")
    return 0
