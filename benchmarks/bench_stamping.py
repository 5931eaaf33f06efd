"""Reply stamping speed: loading the configuration, and stamping a night's letters.

Prints figures; asserts nothing about time. Run: .venv/bin/python benchmarks/bench_stamping.py
"""

from __future__ import annotations

import datetime as dt
import random
import time

from docpost import hierarchy, model, stamping

SOURCE_SYSTEMS = ("sbsys", "momentum", "opus-debitor", "kmd-ydelse", "dubu", "byggesag")
DOCUMENT_TYPES = ("afgoerelse", "partshoering", "indkaldelse", "orientering", "opkraevning",
                  "rykker", "kvittering", "bevilling")


def submissions(n: int, seed: int = 5) -> list[model.Submission]:
    rnd = random.Random(seed)
    day = dt.date(2026, 11, 27)
    out = []
    for i in range(n):
        override = None
        roll = rnd.random()
        if roll < 0.05:
            override = model.ReplyOverride(postkasse_id=300, emne_id=3002)
        elif roll < 0.07:
            override = model.ReplyOverride(no_reply=True)
        elif roll < 0.08:
            override = model.ReplyOverride(postkasse_id=100, emne_id=9999)  # rejected
        manifest = model.Manifest(
            recipient=model.Recipient(model.IdType.CPR, f"{rnd.randrange(10**10):010d}", "X"),
            title="Brev", document_type=rnd.choice(DOCUMENT_TYPES), reply_override=override,
            case_reference=f"SAG-{i}")
        key = model.SubmissionKey(rnd.choice(SOURCE_SYSTEMS), day, f"s{i:06d}")
        out.append(model.Submission(key, manifest, "sha256:x"))
    return out


def main() -> None:
    t = time.perf_counter()
    tree = hierarchy.load_hierarchy()
    t_h = time.perf_counter() - t
    t = time.perf_counter()
    hierarchy.load_hierarchy()
    t_hc = time.perf_counter() - t
    t = time.perf_counter()
    profiles = stamping.load_profiles(hierarchy=tree)
    t_p = time.perf_counter() - t
    print(f"load hierarchy (cold, incl. XSD compile): {t_h * 1000:.1f} ms; cached: {t_hc * 1000:.2f} ms")
    print(f"load profiles (incl. XSD compile, cross-check): {t_p * 1000:.1f} ms")
    for n in (10_000, 100_000):
        subs = submissions(n)
        t = time.perf_counter()
        out = stamping.stamp_many(subs, profiles)
        took = time.perf_counter() - t
        rejected = sum(isinstance(x, stamping.StampingError) for x in out)
        print(f"stamp_many {n:>7} letters: {took:.3f} s ({n / took:,.0f} letters/s), "
              f"{rejected} rejected")


if __name__ == "__main__":
    main()
