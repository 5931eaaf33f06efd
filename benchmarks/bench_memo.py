"""MeMo speed: build + validate MeMo messages for a night of letters with ~50 KB PDFs.

Prints figures; asserts nothing about time. Run: .venv/bin/python benchmarks/bench_memo.py [N]
"""

from __future__ import annotations

import datetime as dt
import random
import sys
import time
import uuid

from docpost import fjernprint, memo, model

PDF_SIZE = 50_000


def letters(n: int, seed: int = 11) -> list[memo.OutboundLetter]:
    rnd = random.Random(seed)
    pdfs = [b"%PDF-1.4\n" + rnd.randbytes(PDF_SIZE - 16) + b"\n%%EOF\n" for _ in range(16)]
    day = dt.date(2026, 11, 27)
    out = []
    for i in range(n):
        cpr = (f"{rnd.randint(1, 28):02d}{rnd.randint(1, 12):02d}"
               f"{rnd.randint(40, 99):02d}{rnd.randint(0, 9999):04d}")
        recipient = model.Recipient(
            model.IdType.CPR, cpr, f"Borger {i}",
            model.PostalAddress("Vestergade", f"{rnd.randint(1, 199)}", "8000", "Aarhus C"),
        )
        manifest = model.Manifest(recipient=recipient, title=f"Afgørelse nr. {i}",
                                  document_type="afgoerelse", mandatory=rnd.random() < 0.2)
        submission = model.Submission(
            key=model.SubmissionKey("sbsys", day, f"S{i:06d}"), manifest=manifest,
            content_hash="0" * 64,
            attention=model.Attention(person_label="Sagsbehandler", kle=(model.KleRef("27.12.00"),)),
            case=model.CaseDocument(case_number=f"2026-{i:06d}", case_system="SBSYS"),
        )
        reply = (model.ReplyAddress(model.ReplyType.NOT_POSSIBLE, "override") if i % 20 == 0 else
                 model.ReplyAddress(model.ReplyType.GIVEN, "default:sbsys", 100, "Borgerservice",
                                    1001, "Generelt", contact_point_id=str(uuid.UUID(int=i, version=4))))
        out.append(memo.OutboundLetter(
            message_uuid=str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
            transaction_id=str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
            submission=submission, reply=reply, pdf=pdfs[i % len(pdfs)], sender_cvr="29189846",
            created=dt.datetime(2026, 11, 27, 22, 0, tzinfo=dt.UTC),
        ))
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    batch = letters(n)
    memo.build_memo(batch[0])  # compile the schema outside the timing
    fjernprint.build_forsendelse(batch[0])

    t0 = time.perf_counter()
    built = [memo.build_memo(letter) for letter in batch]
    t_build = time.perf_counter() - t0
    mb = sum(len(b) for b in built) / 1e6

    t0 = time.perf_counter()
    for doc in built:
        assert not memo.validate_memo(doc)
    t_validate = time.perf_counter() - t0

    t0 = time.perf_counter()
    for letter in batch:
        fjernprint.build_forsendelse(letter)
    t_fp = time.perf_counter() - t0

    print(f"letters: {n}, PDF {PDF_SIZE / 1000:.0f} KB each, MeMo output {mb:.1f} MB")
    print(f"build_memo (build + schema check + serialise): {n / t_build:8.0f} messages/s "
          f"{mb / t_build:7.1f} MB/s")
    print(f"validate_memo (parse + schema check, bytes):  {n / t_validate:8.0f} messages/s "
          f"{mb / t_validate:7.1f} MB/s")
    print(f"build + validate together:                     {n / (t_build + t_validate):8.0f} messages/s "
          f"{mb / (t_build + t_validate):7.1f} MB/s")
    print(f"build_forsendelse (fjernprint, validated):     {n / t_fp:8.0f} messages/s")


if __name__ == "__main__":
    main()
