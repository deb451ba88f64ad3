"""Camera frame -> model input pixels: the one preprocessing function that the dataset cache
(training) and the xApp's codec (serving) both call, so the model sees the same pixels in both.

    header(data)                 -> Header(format "JPEG" | "PNG", width, height), from the first bytes only
    decode(data, (H, W))         -> uint8 [H, W, 3] RGB: JPEG decoded at a reduced scale in the DCT
                                    domain (1/2, 1/4 or 1/8: the smallest scale still >= H x W), PNG at
                                    full size, then one area resize to H x W
    resize(rgb, (H, W))          -> the same area resize, for frames that arrive as raw RGB

A 1280x720 JPEG going to 64x64 is decoded at 160x90 (1/8): libjpeg skips most of the inverse
DCT and colour conversion work, and the resize averages ~2.5x1.4 pixels per output pixel.
`DECODER` names the method; the cache records it and export checks it (a cache built with another
preprocessing would train the model on pixels the xApp never produces).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import cv2
import numpy as np

DECODER = "opencv-dct-reduced+area/1"
_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}
_PNG = b"\x89PNG\r\n\x1a\n"
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}   # start-of-frame markers

# One decode runs per calling thread: OpenCV's own worker pool would compete with the inference threads
# for the same cores (and buys nothing on 160x90 pictures).
cv2.setNumThreads(1)


class Header(NamedTuple):
    format: str          # "JPEG" or "PNG"
    width: int
    height: int


def header(data: bytes) -> Header:
    """Format and size from the file's header (no pixel is decoded); ValueError if neither a
    JPEG with a frame header nor a PNG with an IHDR chunk."""
    if data[:8] == _PNG:
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ValueError("PNG without an IHDR chunk")
        w, h = struct.unpack(">II", data[16:24])
        return Header("PNG", w, h)
    if data[:2] != b"\xff\xd8":
        raise ValueError("neither JPEG (FF D8) nor PNG (89 50 4E 47) data")
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise ValueError(f"JPEG: no marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:                                  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:        # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if marker in _SOF:
            if i + 9 > n:
                break
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return Header("JPEG", w, h)
        if marker in (0xD9, 0xDA) or length < 2:            # end of image / scan data before any frame header
            break
        i += 2 + length
    raise ValueError("JPEG without a frame header (SOF)")


def reduction(src: tuple[int, int], size: tuple[int, int]) -> int:
    """The DCT scale denominator (1, 2, 4, 8) that keeps a (W, H) = `src` picture at least (H, W) =
    `size` (libjpeg rounds scaled sizes up); 1 for a picture smaller than `size` (area then enlarges it)."""
    (sw, sh), (h, w) = src, size
    return max((k for k in (2, 4, 8) if -(-sw // k) >= w and -(-sh // k) >= h), default=1)


def decode(data: bytes, size: tuple[int, int], head: Header | None = None) -> np.ndarray:
    """JPEG/PNG bytes -> uint8 [H, W, 3] RGB at `size` = (H, W); ValueError when undecodable.
    `head`: the header when the caller has already read it."""
    head = head or header(data)
    k = reduction((head.width, head.height), size) if head.format == "JPEG" else 1
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), _REDUCED[k])
    if bgr is None:
        raise ValueError(f"{head.format} {head.width}x{head.height} does not decode")
    return cv2.cvtColor(resize(bgr, size), cv2.COLOR_BGR2RGB)


def resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 [h, w, 3] RGB -> [H, W, 3] at `size` = (H, W), area-averaged (as `decode` ends)."""
    h, w = size
    if rgb.shape[:2] == (h, w):
        return np.ascontiguousarray(rgb, dtype=np.uint8)
    return cv2.resize(np.ascontiguousarray(rgb, dtype=np.uint8), (w, h), interpolation=cv2.INTER_AREA)
