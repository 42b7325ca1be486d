"""Minimal PNG decoder (zlib + numpy): 8-bit greyscale / RGB / RGBA, non-interlaced, filter types 0–4."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS_BY_COLOR_TYPE = {0: 1, 2: 3, 4: 2, 6: 4}  # grey, RGB, grey+alpha, RGBA


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Paeth predictor (PNG spec §9.4) on int16 arrays: the neighbour among a, b, c closest to a + b − c."""
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def decode_png(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Pixels of an 8-bit, non-interlaced PNG as uint8 (H, W, C), C = 1, 3, 2 or 4 by colour type.

    Scanline filters (type byte per row): 0 none, 1 sub (left), 2 up, 3 average ⌊(left + up)/2⌋, 4 Paeth.
    "Up" is vectorised over the row; sub / average / Paeth recurse along it in bytes-per-pixel steps.

    Raises:
        ValueError naming ``source``: bad signature, CRC mismatch, unsupported bit depth / colour type /
        interlace, missing chunks, wrong decompressed size or an unknown filter type.
    """
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError(f"{source}: not a PNG file (bad signature)")
    pos, header, idat = len(PNG_SIGNATURE), None, []
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise ValueError(f"{source}: truncated PNG chunk {kind!r}")
        if zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
            raise ValueError(f"{source}: CRC mismatch in PNG chunk {kind!r}")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None or not idat:
        raise ValueError(f"{source}: PNG lacks an IHDR or IDAT chunk")
    width, height, depth, color_type, _, _, interlace = header
    if depth != 8 or color_type not in CHANNELS_BY_COLOR_TYPE or interlace != 0:
        raise ValueError(
            f"{source}: unsupported PNG (bit depth {depth}, colour type {color_type}, "
            f"interlace {interlace}); only 8-bit non-interlaced grey/RGB/grey-alpha/RGBA is supported"
        )
    channels = CHANNELS_BY_COLOR_TYPE[color_type]
    stride = width * channels
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    if raw.size != height * (stride + 1):
        raise ValueError(
            f"{source}: decompressed PNG data has {raw.size} bytes, expected {height * (stride + 1)}"
        )
    rows = raw.reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.int16)
    previous = np.zeros(stride, dtype=np.int16)
    for i in range(height):
        filter_type, line = int(rows[i, 0]), rows[i, 1:].astype(np.int16)
        if filter_type == 0:
            current = line
        elif filter_type == 2:
            current = (line + previous) & 0xFF
        elif filter_type in (1, 3, 4):
            current = np.zeros(stride, dtype=np.int16)
            zeros = np.zeros(channels, dtype=np.int16)
            for start in range(0, stride, channels):
                sl = slice(start, start + channels)
                left = current[start - channels : start] if start else zeros
                up = previous[sl]
                up_left = previous[start - channels : start] if start else zeros
                if filter_type == 1:
                    predictor = left
                elif filter_type == 3:
                    predictor = (left + up) // 2
                else:
                    predictor = _paeth(left, up, up_left)
                current[sl] = (line[sl] + predictor) & 0xFF
        else:
            raise ValueError(f"{source}: unknown PNG filter type {filter_type} in row {i}")
        out[i] = current
        previous = current
    return out.astype(np.uint8).reshape(height, width, channels)


def read_png(path: str | Path) -> np.ndarray:
    """:func:`decode_png` of the file at ``path``."""
    return decode_png(Path(path).read_bytes(), str(path))
