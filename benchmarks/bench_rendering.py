"""Rendering throughput on one core: 2,000 seeded letters (1-3 pages, the sending profiles' logo)
through docpost.rendering, beside the floor - a bare reportlab canvas drawing the same text with
the same font file through reportlab's own TTFont. Both are timed in CPU seconds of this process
and take turns (--batch letters each), so that other work on a shared machine changes neither.

    .venv/bin/python benchmarks/bench_rendering.py [--letters 2000]

Prints pages per CPU second for both, the ratio, the print-readiness check's pages/s, and peak memory (maxrss).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import resource
import time
from pathlib import Path

from docpost import model
from docpost.rendering import check_print_ready, render_letter
from docpost.rendering.fonts import FONT_DIR
from docpost_testbench import samples

LOGO = Path(__file__).resolve().parents[1] / "config" / "logos" / "soeby-kommune.png"
PAGE = re.compile(rb"/Type /Page[^s]")
REPLY = "Svar via Digital Post: Borgerservice / Enkeltydelser (ref. 27.12.00-G01-123-26)"


def texts(submission: model.Submission) -> list[str]:
    """The letter's words, block by block, as the floor draws them."""
    out = [submission.manifest.title]
    for block in submission.letter.blocks:
        if isinstance(block, model.BulletList):
            out.extend(block.items)
        elif isinstance(block, model.Table):
            out.extend(" ".join(row) for row in block.rows)
        else:
            out.append(block.text)
    return out


def floor_font() -> str:
    """The floor's font: the same DejaVu Sans file as reportlab's own ``TTFont`` (docpost's fonts are
    prepared once per process, see docpost.rendering.fonts, and neither becomes an alias of the other
    although they share the face; the floor is bare reportlab)."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    pdfmetrics.registerFont(TTFont("FloorSans", str(FONT_DIR / "DejaVuSans.ttf")))
    return "FloorSans"


def floor_pdf(submission: model.Submission, regular: str) -> bytes:
    """A bare canvas: the same text in 10 pt at fixed line positions, naive 95-character lines."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen.canvas import Canvas

    buf = io.BytesIO()
    canv = Canvas(buf, pagesize=A4, invariant=1, initialFontName=regular)
    y = 760.0
    canv.setFont(regular, 10)
    for text in texts(submission):
        for start in range(0, len(text), 95):
            if y < 80:
                canv.showPage()
                canv.setFont(regular, 10)
                y = 760.0
            canv.drawString(71, y, text[start:start + 95])
            y -= 14
        y -= 6
    canv.showPage()
    canv.save()
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--letters", type=int, default=2000)
    parser.add_argument("--check", type=int, default=200, help="letters to run through check_print_ready")
    parser.add_argument("--batch", type=int, default=50, help="letters per turn: floor and docpost take turns")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    regular = floor_font()
    head = samples.letterhead(str(LOGO))  # the sending profiles' logo, as the pipeline renders letters
    letters = [samples.generated_letter(i) for i in range(args.letters)]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    outputs: list[bytes] = []  # only the first --check PDFs are kept, as a pipeline would stream them
    pages = floor_pages = sizes = 0
    render_s = floor_s = 0.0
    for first in range(0, len(letters), args.batch):  # turns: both see the same caches and clock speed
        batch = letters[first:first + args.batch]
        start = time.process_time()
        floor_pages += sum(len(PAGE.findall(floor_pdf(s, regular))) for s in batch)
        floor_s += time.process_time() - start
        start = time.process_time()
        for i, s in enumerate(batch, start=first):
            pdf = render_letter(s, head, REPLY, f"{i:08X}", samples.CREATED)
            pages += len(PAGE.findall(pdf))
            sizes += len(pdf)
            if i < args.check:
                outputs.append(pdf)
        render_s += time.process_time() - start

    check_print_ready(outputs[0])  # warm up: pypdf's lazy imports
    start = time.process_time()
    checked = outputs[: args.check]
    bad = sum(1 for pdf in checked if check_print_ready(pdf))
    check_s = time.process_time() - start
    check_pages = sum(len(PAGE.findall(pdf)) for pdf in checked)
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    floor_rate, rate = floor_pages / floor_s, pages / render_s
    print(f"letters: {len(letters)}  pages: {pages} (floor drew {floor_pages})  mean PDF: {sizes / len(letters) / 1024:.1f} KiB")
    print(f"docpost render_letter: {rate:8.1f} pages/s  {len(letters) / render_s:7.1f} letters/s  ({render_s:.1f} CPU s)")
    print(f"floor (bare canvas):   {floor_rate:8.1f} pages/s  ({floor_s:.1f} CPU s)")
    print(f"ratio docpost/floor:   {rate / floor_rate:8.2f}  (floor is {floor_rate / rate:.1f}x faster)")
    print(f"check_print_ready:     {check_pages / check_s:8.1f} pages/CPU s on {len(checked)} letters, {bad} flagged")
    print(f"peak memory (maxrss):  {rss_peak / 1024:8.1f} MiB (after building the letters: {rss_before / 1024:.1f} MiB; "
          f"{len(outputs)} PDFs kept for the check)")


if __name__ == "__main__":
    main()
