"""The letterhead logo, read and encoded once per process and drawn into every letter as one image XObject.

``Canvas.drawImage`` decodes, compresses and encodes an image anew for every document. A logo is
the same for thousands of letters: :func:`prepared_logo` does that work once per file (and again
when the file changes) and :func:`draw_logo` registers a copy of the result in the letter's
document and draws it as ``drawImage`` would, so the bytes are the ones ``drawImage`` writes.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from functools import lru_cache

from reportlab.lib.boxstuff import aspectRatioFix
from reportlab.lib.utils import ImageReader, _digester
from reportlab.pdfbase.pdfdoc import PDFImageXObject, xObjectName

from docpost.rendering.errors import LogoUnreadable


@dataclass(frozen=True)
class PreparedLogo:
    """An image XObject ready to be copied into documents (never registered itself), its soft mask."""

    name: str
    image: PDFImageXObject
    smask: PDFImageXObject | None

    @property
    def size(self) -> tuple[int, int]:
        return self.image.width, self.image.height


@lru_cache(maxsize=8)
def _prepare(path: str, _mtime_ns: int, _size: int) -> PreparedLogo:
    reader = ImageReader(path)
    rawdata = reader.getRGBData()
    alpha = reader._dataA  # as drawImage(mask="auto") names and masks it
    name = _digester(rawdata + (alpha.getRGBData() if alpha else b"auto"))
    image = PDFImageXObject(name, reader, mask="auto")
    image.name = name
    smask = image.__dict__.pop("_smask", None)
    return PreparedLogo(name, image, smask)


def prepared_logo(path: str) -> PreparedLogo:
    """The logo at ``path``, prepared once per process (again when the file changed); raises :class:`LogoUnreadable`."""
    try:
        stat = os.stat(path)
        return _prepare(path, stat.st_mtime_ns, stat.st_size)
    except (OSError, ValueError) as exc:
        raise LogoUnreadable(f"The letterhead logo cannot be read ({type(exc).__name__}); "
                             "check the sending profile's logo path.") from None


def draw_logo(canv, logo: PreparedLogo, x: float, y: float, width: float, height: float) -> None:
    """``canv.drawImage(logo, x, y, width, height, preserveAspectRatio=True, anchor="sw", mask="auto")``."""
    doc = canv._doc
    reg_name = xObjectName(logo.name)
    if reg_name not in doc.idToObject:  # registered as drawImage registers a new image
        image = copy.copy(logo.image)
        canv._setXObjects(image)
        doc.Reference(image, reg_name)
        doc.addForm(logo.name, image)
        if logo.smask is not None:
            smask = copy.copy(logo.smask)
            mask_name = xObjectName(smask.name)
            canv._setXObjects(smask)
            image.smask = doc.Reference(smask, mask_name)
    canv._currentPageHasImages = 1
    x, y, width, height, _scaled = aspectRatioFix(True, "sw", x, y, width, height, *logo.size)
    canv.saveState()
    canv.translate(x, y)
    canv.scale(width, height)
    canv._code.append(f"/{reg_name} Do")
    canv.restoreState()
    canv._formsinuse.append(logo.name)
