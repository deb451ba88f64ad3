"""wmfm.image: the one frame preprocessing (cache and xApp): header reading, the DCT scale, the pixels."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from wmfm import image

RNG = np.random.default_rng(0)


def camera_picture(w: int, h: int) -> np.ndarray:
    """Smooth structure + sensor noise: compresses like a camera frame."""
    coarse = RNG.integers(0, 255, (9, 16, 3)).astype(np.uint8)
    big = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC)).astype(np.float32)
    return np.clip(big + RNG.normal(0, 3, big.shape), 0, 255).astype(np.uint8)


def encode(rgb: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, **kw)
    return buf.getvalue()


PIC = camera_picture(1280, 720)


@pytest.mark.parametrize("kw,fmt", [({"format": "JPEG", "quality": 85}, "JPEG"),
                                    ({"format": "JPEG", "quality": 85, "progressive": True}, "JPEG"),
                                    ({"format": "JPEG", "exif": b"Exif\x00\x00" + bytes(300)}, "JPEG"),
                                    ({"format": "PNG"}, "PNG")])
def test_header_reads_format_and_size_without_decoding(kw, fmt):
    data = encode(PIC, **kw)
    assert image.header(data) == (fmt, 1280, 720)
    assert image.header(data[:2048]) == (fmt, 1280, 720)          # only the first bytes are needed
    assert image.header(encode(PIC[:, :, 0], format="JPEG")) == ("JPEG", 1280, 720)   # grayscale


@pytest.mark.parametrize("bad", [b"", b"GIF89a" + bytes(30), b"\xff\xd8\xff\xd9", b"\xff\xd8\x00\x00\x00\x00",
                                 b"\x89PNG\r\n\x1a\n" + bytes(16)])
def test_header_refuses_what_is_not_a_jpeg_or_png(bad):
    with pytest.raises(ValueError):
        image.header(bad)


def test_the_dct_scale_is_the_smallest_still_covering_the_model_input():
    assert image.reduction((1280, 720), (64, 64)) == 8             # 160x90
    assert image.reduction((1920, 1080), (128, 128)) == 8          # 240x135
    assert image.reduction((320, 240), (64, 64)) == 2              # 160x120 (1/4: 80x60, too small)
    assert image.reduction((256, 256), (64, 64)) == 4
    assert image.reduction((250, 250), (64, 64)) == 2              # 1/4 -> 63 < 64
    assert image.reduction((64, 64), (64, 64)) == 1
    assert image.reduction((32, 24), (64, 80)) == 1               # smaller than the model input: enlarged


def test_decode_is_reduced_decode_then_area():
    data = encode(PIC, format="JPEG", quality=85)
    got = image.decode(data, (64, 64))
    small = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_COLOR_8)
    assert small.shape == (90, 160, 3)
    want = cv2.cvtColor(cv2.resize(small, (64, 64), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(got, want)
    full = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((64, 64), Image.BOX), np.int16)
    assert np.abs(got.astype(np.int16) - full).mean() < 3          # the same picture as a full-size decode


def test_png_and_raw_take_the_same_area_resize():
    np.testing.assert_array_equal(image.decode(encode(PIC, format="PNG"), (72, 128)), image.resize(PIC, (72, 128)))


def test_truncated_or_corrupt_jpeg_is_refused():
    data = encode(PIC, format="JPEG", quality=85)
    for bad in (data[:len(data) // 2], data[:600]):
        with pytest.raises(ValueError, match="does not decode"):
            image.decode(bad, (64, 64))
