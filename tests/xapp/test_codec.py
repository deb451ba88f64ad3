"""The codec: round trips, every rejection reason, fuzzing (only DecodeError ever comes out)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wmfm.proto import camera_pb2, csi_sm_pb2, ric_indication_pb2
from wmfm.xapp import codec
from wmfm.xapp.codec import DecodeError, Limits

from wmfm import image

ROOT = Path(__file__).resolve().parents[2]
LIM = Limits(n_ant=32, n_sc=64, image_size=(32, 32), source_size=(32, 32), cameras={"cam0": None, "cam1": (64, 48)},
             max_message_bytes=200_000)
RNG = np.random.default_rng(0)
CSI = (RNG.standard_normal((2, 32, 64)) * 1e-6).astype(np.float32)
_yy, _xx = np.mgrid[0:32, 0:32]
IMG = np.stack([_yy * 8, _xx * 8, (_yy + _xx) * 4], -1).astype(np.uint8)     # smooth: JPEG keeps it close


def good_indication(**kw):
    return codec.encode_indication("gnb1", 7, 1_700_000_000_000_000_000, [(1, CSI), (2, CSI * 2)], **kw)


def reason(fn, buf, lim=LIM):
    with pytest.raises(DecodeError) as e:
        fn(buf, lim, 0)
    return e.value.reason


def test_generated_protobuf_code_is_current(tmp_path):
    protos = sorted(str(p.name) for p in (ROOT / "proto").glob("*.proto"))
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'proto'}", f"--python_out={tmp_path}",
                    *protos], check=True)
    for p in protos:
        gen = p.replace(".proto", "_pb2.py")
        assert (tmp_path / gen).read_text() == (ROOT / "proto" / gen).read_text(), f"run `make proto`: {gen} is stale"


@pytest.mark.parametrize("dtype,tol", [("complex64", 0.0), ("complex32", 2e-3)])
def test_indication_round_trip(dtype, tol):
    now = 1_700_000_000_500_000_000
    ind = codec.decode_indication(good_indication(dtype=dtype, ue_ant=2, snr_db=12.5), LIM, now)
    assert ind.sn == 7 and ind.stream == ("gnb1", 1, 1, 2, 1) and ind.cell == "00101:1" and ind.received_ns == now
    assert [r.ue_id for r in ind.reports] == [1, 2] and ind.reports[0].snr_db == 12.5
    for r, want in zip(ind.reports, (CSI, CSI * 2)):
        assert r.csi.shape == (2, 32, 64) and r.csi.dtype == np.float32
        np.testing.assert_allclose(r.csi, want, rtol=tol, atol=1e-12 if tol == 0 else tol * float(np.abs(want).max()))


@pytest.mark.parametrize("enc", ["png", "jpeg", "raw"])
def test_frame_round_trip(enc):
    f = codec.decode_frame(codec.encode_frame("cam0", 3, 99, codec.encode_image(IMG, enc), 32, 32, enc), LIM, 5)
    assert (f.camera_id, f.seq, f.t_ns, f.received_ns) == ("cam0", 3, 99, 5)
    assert f.image.shape == (32, 32, 3) and f.image.dtype == np.uint8
    if enc != "jpeg":
        np.testing.assert_array_equal(f.image, IMG)
    else:
        assert np.abs(f.image.astype(int) - IMG).mean() < 4


def test_frames_are_resized_as_training_did():
    big = np.repeat(np.repeat(IMG, 4, 0), 4, 1)                   # 128x128
    lim = Limits(32, 64, (16, 16), source_size=(32, 32))
    f = codec.decode_frame(codec.encode_frame("c", 0, 1, codec.encode_image(big, "png"), 128, 128, "png"), lim, 0)
    assert f.image.shape == (16, 16, 3)
    want = image.resize(image.resize(big, (32, 32)), (16, 16))    # the cache's size, then the model's (area)
    np.testing.assert_array_equal(f.image, want)
    np.testing.assert_array_equal(want, IMG.reshape(16, 2, 16, 2, 3).mean((1, 3)).round().astype(np.uint8))


def test_the_picture_is_checked_against_the_message_before_decoding():
    jpeg, png = codec.encode_image(IMG, "jpeg"), codec.encode_image(IMG, "png")
    d = codec.decode_frame
    assert reason(d, codec.encode_frame("cam0", 0, 1, jpeg, 32, 32, "png")) == "image"       # JPEG labelled PNG
    assert reason(d, codec.encode_frame("cam0", 0, 1, png, 32, 32, "jpeg")) == "image"
    assert reason(d, codec.encode_frame("cam0", 0, 1, jpeg, 64, 32, "jpeg")) == "image_size"  # header says 32x32
    assert reason(d, codec.encode_frame("cam0", 0, 1, jpeg[:len(jpeg) // 2], 32, 32, "jpeg")) == "image"
    assert reason(d, codec.encode_frame("cam0", 0, 1, b"GIF89a" + bytes(40), 32, 32, "jpeg")) == "image"
    assert reason(d, codec.encode_frame("cam0", 0, 1, bytes(10), 32, 32, "raw")) == "image_size"


def test_each_bad_indication_has_its_reason():
    d = codec.decode_indication
    assert reason(d, b"\xff\xff\xff") == "parse"
    assert reason(d, good_indication()[:-7]) == "parse"
    assert reason(d, b"\x00" * 300_000) == "oversize"
    assert reason(d, good_indication(ran_function_id=5000)) == "range"
    assert reason(d, good_indication(plmn_id="abc")) == "range"
    assert reason(d, codec.encode_indication("bad name!", 1, 1, [(1, CSI)])) == "range"
    assert reason(d, codec.encode_indication("g", 1, 1, [(1, CSI[:, :16])])) == "shape"
    nan = CSI.copy()
    nan[0, 3, 5] = np.nan
    assert reason(d, codec.encode_indication("g", 1, 1, [(1, nan)])) == "nonfinite"
    inf = CSI.copy()
    inf[1, 0, 0] = np.inf
    assert reason(d, codec.encode_indication("g", 1, 1, [(1, inf)])) == "nonfinite"
    assert reason(d, codec.encode_indication("g", 1, 0, [(1, CSI)])) == "range"          # collection time 0
    assert reason(d, codec.encode_indication("g", 1, 1, [(1, CSI), (1, CSI)])) == "range"  # same UE twice
    assert reason(d, codec.encode_indication("gnb1\n", 1, 1, [(1, CSI)])) == "range"
    with pytest.raises(DecodeError, match="collection_time_ns .* from this host's clock"):
        d(good_indication(), LIM, 1_700_000_000_000_000_000 + 7200 * 10**9)        # two hours off
    big = codec.encode_indication("g", 1, 1, [(1, np.full((2, 32, 64), 6e4, np.float32))], dtype="complex32")
    m = ric_indication_pb2.RICIndication.FromString(big)
    body = csi_sm_pb2.CSIIndicationMessage.FromString(m.ric_indication_message)
    body.reports[0].data = np.full(2 * 32 * 64, 6e4, "<f2").tobytes()
    body.reports[0].scale = 1e36                                  # finite FP16 data x a finite scale = inf
    m.ric_indication_message = body.SerializeToString()
    assert reason(d, m.SerializeToString()) == "nonfinite"

    def edit(fn):
        m = ric_indication_pb2.RICIndication.FromString(good_indication())
        fn(m)
        return m.SerializeToString()

    def edit_header(**kw):
        def f(m):
            h = csi_sm_pb2.CSIIndicationHeader.FromString(m.ric_indication_header)
            for k, v in kw.items():
                setattr(h, k, v)
            m.ric_indication_header = h.SerializeToString()
        return edit(f)

    def edit_report(fn):
        def f(m):
            body = csi_sm_pb2.CSIIndicationMessage.FromString(m.ric_indication_message)
            fn(body.reports[0])
            m.ric_indication_message = body.SerializeToString()
        return edit(f)

    assert reason(d, edit_header(sm_version="2.0")) == "sm_version"
    assert reason(d, edit_header(sm_name="KPM")) == "sm_version"
    assert reason(d, edit(lambda m: m.ClearField("cell"))) == "range"
    assert reason(d, edit(lambda m: setattr(m, "ric_indication_type", 0))) == "range"
    assert reason(d, edit_report(lambda r: setattr(r, "dtype", 0))) == "dtype"
    assert reason(d, edit_report(lambda r: setattr(r, "data", r.data[:-8]))) == "length"
    assert reason(d, edit_report(lambda r: r.shape.__setitem__(0, 0))) == "shape"
    assert reason(d, edit_report(lambda r: setattr(r, "snr_db", 500.0))) == "range"


def test_each_bad_frame_has_its_reason():
    d = codec.decode_frame
    png = codec.encode_image(IMG, "png")
    jpg = codec.encode_image(IMG, "jpeg")
    assert reason(d, b"\x0a\xff\x01") == "parse"
    assert reason(d, codec.encode_frame("nope", 0, 1, png, 32, 32, "png")) == "camera"
    assert reason(d, codec.encode_frame("cam0", 0, 1, jpg[: len(jpg) // 2], 32, 32, "jpeg")) == "image"
    assert reason(d, codec.encode_frame("cam0", 0, 1, b"\xff\xd8garbage", 32, 32, "jpeg")) == "image"
    assert reason(d, codec.encode_frame("cam0", 0, 1, png, 40, 32, "png")) == "image_size"     # declared != decoded
    assert reason(d, codec.encode_frame("cam1", 0, 1, png, 32, 32, "png")) == "image_size"     # != configured 64x48
    assert reason(d, codec.encode_frame("cam0", 0, 1, IMG.tobytes()[:-3], 32, 32, "raw")) == "image_size"
    assert reason(d, codec.encode_frame("cam0", 0, 0, png, 32, 32, "png")) == "range"
    assert reason(d, codec.encode_frame("cam0", 0, 1, png, 8, 8, "png")) == "range"
    assert reason(d, codec.encode_frame("cam0", 0, 1, png, 8192, 8192, "png")) == "range"     # pixel cap
    gif = __import__("io").BytesIO()
    __import__("PIL.Image").Image.fromarray(IMG).save(gif, format="GIF")
    assert reason(d, codec.encode_frame("cam0", 0, 1, gif.getvalue(), 32, 32, "png")) == "image"
    m = camera_pb2.CameraFrame.FromString(codec.encode_frame("cam0", 0, 1, png, 32, 32, "png"))
    m.encoding = 0
    assert reason(d, m.SerializeToString()) == "range"
    assert reason(d, codec.encode_frame("cam0", 0, 1, b"\0" * 250_000, 32, 32, "raw")) == "oversize"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_only_ever_raise_decode_error(buf):
    for fn in (codec.decode_indication, codec.decode_frame):
        try:
            fn(buf, LIM, 0)
        except DecodeError as exc:
            assert exc.reason in codec.REASONS


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_truncated_or_bit_flipped_messages_only_ever_raise_decode_error(data):
    good = [good_indication(), codec.encode_frame("cam0", 1, 2, codec.encode_image(IMG, "jpeg"), 32, 32, "jpeg")]
    buf = bytearray(data.draw(st.sampled_from(good)))
    cut = data.draw(st.integers(0, len(buf)))
    flips = data.draw(st.lists(st.integers(0, max(0, cut - 1)), max_size=4)) if cut else []
    buf = buf[:cut]
    for i in flips:
        buf[i] ^= 0xFF
    for fn in (codec.decode_indication, codec.decode_frame):
        try:
            fn(bytes(buf), LIM, 0)
        except DecodeError as exc:
            assert exc.reason in codec.REASONS


def test_a_camera_of_any_size_has_a_pixel_budget_checked_before_decoding(monkeypatch):
    """A camera configured for any size still refuses a frame of more pixels than its budget, from
    the message and the picture's header, before a pixel is decoded (a 4096x4096 PNG costs ~0.2 s)."""
    lim = Limits(32, 64, (32, 32), (32, 32), cameras={"cam0": 64 * 48}, max_message_bytes=4 << 20)
    big = codec.encode_image(np.zeros((64, 96, 3), np.uint8), "png")                  # 6144 pixels > 3072
    decoded = []
    monkeypatch.setattr(image, "decode", lambda *a, **k: decoded.append(1))
    assert reason(codec.decode_frame, codec.encode_frame("cam0", 0, 1, big, 96, 64, "png"), lim) == "image_size"
    assert reason(codec.decode_frame, codec.encode_frame("cam0", 0, 1, big, 48, 64, "png"), lim) == "image_size"
    assert decoded == []                         # declared 48x64 fits the budget: the header (96x64) refused it
    monkeypatch.undo()
    fits = codec.encode_image(np.zeros((48, 64, 3), np.uint8), "png")
    assert codec.decode_frame(codec.encode_frame("cam0", 0, 1, fits, 64, 48, "png"), lim, 0).image.shape == (32, 32, 3)
    from wmfm.xapp.controls import CameraConfig
    assert CameraConfig().limit == 3840 * 2160 and CameraConfig(width=64, height=48).limit == (64, 48)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_corrupt_pictures_in_valid_messages_only_ever_raise_decode_error(data):
    """The frame path behind the message: JPEG/PNG bytes truncated, bit-flipped or spliced decode to a
    frame of the model's size or a counted reason, nothing else."""
    enc = data.draw(st.sampled_from(["jpeg", "png"]))
    pic = bytearray(codec.encode_image(IMG, enc))
    cut = data.draw(st.integers(1, len(pic)))
    pic = pic[:cut]
    for i in data.draw(st.lists(st.integers(0, cut - 1), max_size=6)):
        pic[i] ^= data.draw(st.integers(1, 255))
    if data.draw(st.booleans()):
        pic += data.draw(st.binary(max_size=64))
    w, h = data.draw(st.sampled_from([(32, 32), (64, 48), (16, 16)]))
    try:
        f = codec.decode_frame(codec.encode_frame("cam0", 1, 2, bytes(pic), w, h, enc), LIM, 0)
    except DecodeError as exc:
        assert exc.reason in ("image", "image_size")
    else:
        assert f.image.shape == (32, 32, 3) and f.image.dtype == np.uint8


def test_insight_round_trip():
    from wmfm.xapp.records import Insight
    x = Insight("gnb1", 5, 9, 10, 0.25, False, (1.0, 2.5, -3.0), "csi_only", "wmfm-0.1.0+abc", "", 0, 0, 11)
    y = codec.decode_insight(codec.encode_insight(x))
    assert (y.ran_name, y.ue_id, y.sn, y.t_ns, y.los, y.mode, y.model, y.published_ns) == \
        ("gnb1", 5, 9, 10, False, "csi_only", "wmfm-0.1.0+abc", 11)
    np.testing.assert_allclose([y.p_los, *y.position], [0.25, 1.0, 2.5, -3.0])
