"""``docpost render``: a generated submission folder to a preview PDF, through validation and stamping."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

from docpost.cli import main

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils missing: run make debs")


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> list[Path]:
    from docpost_testbench.generate import generate_night

    root = tmp_path_factory.mktemp("night")
    generate_night(4, "2026-11-28", root, seed=1)
    return sorted(p.parent for p in root.glob("inbox/*/2026-11-28/*/manifest.xml"))


def with_role(folders: list[Path], role: str) -> Path:
    for folder in folders:
        if f'role="{role}"' in (folder / "manifest.xml").read_text(encoding="utf-8"):
            return folder
    pytest.skip(f"the generated night has no submission with a {role} document")


def test_renders_a_letter_submission(night, tmp_path, capsys):
    folder = with_role(night, "letter")
    out = tmp_path / "preview" / "brev.pdf"
    assert main(["render", str(folder), "--out", str(out)]) == 0
    pdf = out.read_bytes()
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    pages = len(PdfReader(io.BytesIO(pdf)).pages)
    assert f"Side 1 af {pages}" in text and "Søby Kommune" in text
    printed = capsys.readouterr().out
    assert "rendered letter" in printed and str(out) in printed
    # the preview is reproducible: a second run writes the same bytes
    again = tmp_path / "again.pdf"
    assert main(["render", str(folder), "--out", str(again)]) == 0
    assert again.read_bytes() == pdf


def test_supplied_main_pdf_is_print_checked(night, tmp_path, capsys):
    folder = with_role(night, "main")
    out = tmp_path / "main.pdf"
    # the generator lays out its ready PDFs for the window envelope: they pass as they are
    assert main(["render", str(folder), "--out", str(out)]) == 0, capsys.readouterr().err
    assert out.exists() and "not print-ready" not in capsys.readouterr().err
    # the same letter with body text running through the address window is refused, with the rule
    from docpost_testbench.generate import pdf_document

    broken = tmp_path.joinpath("inbox", *folder.parts[-3:])  # same source system, date and id
    shutil.copytree(folder, broken)
    main_pdf = next(p for p in broken.glob("*.pdf") if p.name == "hoveddokument.pdf")
    main_pdf.write_bytes(pdf_document("Afgørelse", ["Tekst der løber hen over adressefeltet. " * 40] * 4, 1))
    rc = main(["render", str(broken), "--out", str(tmp_path / "broken.pdf")])
    err = capsys.readouterr().err
    assert rc == 1 and "not print-ready" in err
    assert "print.no-address" in err or "print.content-in-address-window" in err


def test_invalid_folder_is_refused(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["render", str(empty), "--out", str(tmp_path / "x.pdf")]) == 1
    assert not (tmp_path / "x.pdf").exists()
    assert "REJECTED" in capsys.readouterr().err
