"""Join the main PDF and its attachments into one PDF for the physical channel, deterministically."""

from __future__ import annotations

import hashlib
import io

from docpost.rendering.errors import AssembleError


def assemble(main_pdf: bytes, attachments: list[bytes]) -> bytes:
    """One PDF: the main document's pages, then each attachment's, in order.

    The main document's information (title, author, keywords...) and language are kept; the file
    id is a hash of the inputs, so the same inputs give the same bytes. With no attachments the
    main PDF is returned unchanged (it may be PDF/A; the joined file does not claim to be).
    """
    if not attachments:
        return main_pdf
    from pypdf import PdfReader, PdfWriter
    from pypdf.errors import PdfReadError
    from pypdf.generic import ByteStringObject, ArrayObject, NameObject, TextStringObject

    writer = PdfWriter()
    digest = hashlib.md5(usedforsecurity=False)
    for index, data in enumerate([main_pdf, *attachments]):
        what = "the main document" if index == 0 else f"attachment {index}"
        try:
            reader = PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted:
                raise AssembleError(f"{what.capitalize()} is encrypted (password protected) and cannot be printed.",
                                    code="render.encrypted-pdf")
            writer.append(reader, import_outline=False)
        except AssembleError:
            raise
        except (PdfReadError, ValueError, KeyError, TypeError) as exc:
            raise AssembleError(f"{what.capitalize()} is not a readable PDF ({type(exc).__name__}).") from exc
        if index == 0:
            info = reader.metadata or {}
            lang = reader.trailer["/Root"].get("/Lang")
        digest.update(hashlib.sha256(data).digest())
    writer.add_metadata({k: v for k, v in info.items() if k in ("/Title", "/Author", "/Subject", "/Keywords",
                                                                "/Creator", "/CreationDate", "/ModDate")})
    writer.add_metadata({"/Producer": "docpost (pypdf)"})
    if lang is not None:
        writer._root_object[NameObject("/Lang")] = TextStringObject(str(lang))
    file_id = ByteStringObject(digest.digest())
    writer._ID = ArrayObject([file_id, file_id])
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
