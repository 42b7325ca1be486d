"""Image decoding through Pillow with a pixel limit, and PNG files as uint8 arrays.

Images are opened with Pillow restricted to :data:`IMAGE_FORMATS` (no plugin that calls an external program,
such as EPS → Ghostscript). Opening reads only the header; an image of more than ``MAX_IMAGE_PIXELS``
(width × height) is refused before any pixel is decoded; a PNG's chunk CRCs are all verified (Pillow's
``verify``) before its pixels are decoded; and Pillow's decompression-bomb warning and error,
truncated data and every decoder error become a :class:`~networks.data.errors.DatasetFormatError`
(a ``ValueError``) naming the file.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image

from .errors import DatasetFormatError
from .limits import MAX_FILE_BYTES, MAX_IMAGE_PIXELS, regular_file_size

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMAGE_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
"""Pillow formats the loaders decode (the extensions of ``networks.data.imagenet.IMAGE_EXTENSIONS``)."""
CHANNELS_BY_MODE = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}


@contextmanager
def open_image(
    source: str | Path | bytes, formats: Sequence[str] = IMAGE_FORMATS, *, name: str | None = None
) -> Iterator[Image.Image]:
    """A Pillow image whose pixels are loaded and within ``MAX_IMAGE_PIXELS``; closed on exit.

    ``source`` is a file path or the file's bytes (``name`` labels bytes in messages).

    Raises DatasetFormatError naming the file: not one of ``formats``, more than ``MAX_IMAGE_PIXELS`` pixels
    (or a Pillow decompression bomb), truncated or corrupt data. FileNotFoundError when the path is
    absent.
    """
    label = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
    if isinstance(source, bytes):
        handle: IO[bytes] = io.BytesIO(source)
    else:
        regular_file_size(Path(source), MAX_FILE_BYTES)
        handle = open(source, "rb")  # noqa: SIM115 - closed below
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                image = Image.open(handle, formats=list(formats))
            except Exception as exc:  # UnidentifiedImageError, DecompressionBombError, SyntaxError, ...
                raise DatasetFormatError(
                    f"{label}: not a readable {'/'.join(formats)} image ({type(exc).__name__}: {exc}); "
                    "corrupt, truncated or of another format"
                ) from exc
            with image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise DatasetFormatError(
                        f"{label}: image declares {width}×{height} = {width * height} pixels, above the "
                        f"limit of {MAX_IMAGE_PIXELS} (decompression bomb?)"
                    )
                try:
                    if image.format == "PNG":  # every chunk's CRC, and the chunks up to IEND, first
                        _verify_png(source)
                    image.load()
                except Exception as exc:  # truncated data, zlib errors, decompression bombs in chunks
                    raise DatasetFormatError(
                        f"{label}: corrupt or truncated {image.format} image ({type(exc).__name__}: {exc})"
                    ) from exc
                yield image
    finally:
        handle.close()


def _verify_png(source: str | Path | bytes) -> None:
    """Pillow's ``verify`` on a fresh handle: raises on a CRC mismatch or a truncated chunk anywhere."""
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source, formats=["PNG"]) as check:
        check.verify()


def _pixels(image: Image.Image, label: str) -> np.ndarray:
    """uint8 (H, W, C) pixels: C = 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA; palette and 1-bit images are
    expanded (palette → RGB, or RGBA with transparency); other modes (16-bit, CMYK, float) are refused."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode == "PA":
        image = image.convert("RGBA")
    if image.mode not in CHANNELS_BY_MODE:
        raise DatasetFormatError(
            f"{label}: unsupported image mode {image.mode!r}; only 8-bit grey, grey+alpha, RGB, RGBA and "
            "palette images are read"
        )
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels.reshape(image.size[1], image.size[0], CHANNELS_BY_MODE[image.mode]).copy()


def decode_png(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Pixels of a PNG file's bytes as uint8 (H, W, C), C = 1, 2, 3 or 4 (grey, grey+alpha, RGB, RGBA).

    Raises DatasetFormatError (a ValueError) naming ``source``: bad signature, corrupt or truncated data
    (Pillow checks chunk CRCs and zlib streams), more than ``MAX_IMAGE_PIXELS`` pixels, an unsupported mode.
    """
    if not data.startswith(PNG_SIGNATURE):
        raise DatasetFormatError(f"{source}: not a PNG file (bad signature)")
    with open_image(data, ("PNG",), name=source) as image:
        return _pixels(image, source)


def read_png(path: str | Path) -> np.ndarray:
    """:func:`decode_png` of the file at ``path`` (streamed by Pillow; the file size is bounded first)."""
    path = Path(path)
    with open(path, "rb") as handle:
        if handle.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
            raise DatasetFormatError(f"{path}: not a PNG file (bad signature)")
    with open_image(path, ("PNG",)) as image:
        return _pixels(image, str(path))
