"""The only module that touches bytes: protobuf messages <-> typed records (records.py).

Decoding validates every field against the ranges written in the `.proto` comments and
raises `DecodeError(reason, detail)`; the app counts the reason and drops the message.
Reasons (the `reason` label of `wmfm_decode_errors_total`):

    parse        not a valid protobuf message of the expected type
    oversize     larger than the configured maximum message size
    range        a field outside its documented range (the detail names it)
    sm_version   unknown service model name or version
    shape        CSI shape wrong, or not the model's antennas x subcarriers
    dtype        unknown CSI dtype
    length       CSI data length does not match shape x dtype
    nonfinite    NaN or Inf in the CSI
    camera       unknown camera id
    image        the picture does not decode, or is not the declared encoding (read from its header)
    image_size   the picture is not the declared (or configured) size (read from its header), or has
                 more pixels than the camera's budget
    multipart    a multipart ZeroMQ message (every message is one part; all its parts are dropped)
    procedure    an E2AP PDU that is not a RIC indication (`indications.encoding: e2ap`, e2ap.py)

Encoding (used by the replay simulator and the load generator) builds the same messages.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
from google.protobuf.message import DecodeError as _PBDecodeError
from PIL import Image
from wmfm.proto import camera_pb2, csi_sm_pb2, insight_pb2, ric_indication_pb2

from wmfm import image

from .records import CSIReport, Frame, FrameMessage, Indication, Insight

SM_NAME, SM_VERSION = "WMFM-CSI", "1.0"
REASONS = ("parse", "oversize", "range", "sm_version", "shape", "dtype", "length", "nonfinite", "camera", "image",
           "image_size", "multipart", "procedure")
_NAME = re.compile(r"[A-Za-z0-9._:\-]{1,150}")
_PLMN = re.compile(r"[0-9]{5,6}")
MAX_PIXELS = 4096 * 4096
_ENCODINGS = {camera_pb2.JPEG: "jpeg", camera_pb2.PNG: "png", camera_pb2.RAW_RGB8: "raw"}
_ITEM = {csi_sm_pb2.COMPLEX64: np.dtype("<f4"), csi_sm_pb2.COMPLEX32: np.dtype("<f2")}


class DecodeError(ValueError):
    def __init__(self, reason: str, detail: str):
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def _range(ok: bool, what: str) -> None:
    if not ok:
        raise DecodeError("range", what)


def _time(t_ns: int, received_ns: int, lim: Limits, what: str) -> None:
    """A source time far from this host's clock is a broken sender (or clock): it would poison the
    frame ring (sorted by time) and every latency figure. `received_ns` 0: no clock to compare."""
    if received_ns and abs(t_ns - received_ns) > lim.max_clock_offset_ns:
        raise DecodeError("range", f"{what} {t_ns} is {(t_ns - received_ns) / 1e9:+.0f} s from this host's clock "
                                   f"(limit {lim.max_clock_offset_ns / 1e9:.0f} s)")


def _parse(cls, buf: bytes, what: str):
    msg = cls()
    try:
        msg.ParseFromString(buf)
    except (_PBDecodeError, RuntimeError, ValueError) as exc:
        raise DecodeError("parse", f"{what}: {exc}") from None
    return msg


@dataclass(frozen=True)
class Limits:
    """What the decoder accepts: the model's CSI layout, image size, cameras and sizes."""
    n_ant: int                          # ue_ant * bs_ant the model takes
    n_sc: int                           # subcarriers
    image_size: tuple[int, int]         # (H, W) the model takes
    source_size: tuple[int, int] | None = None   # (H, W) the training cache held (resize chain), or None
    cameras: dict | None = None         # camera_id -> (width, height) expected, or the most pixels of a frame
                                        # of any size (None: MAX_PIXELS); None: any camera id is accepted
    max_message_bytes: int = 4 << 20
    max_reports: int = 256
    max_clock_offset_ns: int = 3600 * 10**9   # source timestamps further than this from arrival are rejected


def decode_indication(buf: bytes, lim: Limits, received_ns: int) -> Indication:
    """RICIndication bytes -> Indication with one CSIReport per UE, or DecodeError."""
    if len(buf) > lim.max_message_bytes:
        raise DecodeError("oversize", f"indication of {len(buf)} bytes > {lim.max_message_bytes}")
    m = _parse(ric_indication_pb2.RICIndication, buf, "RICIndication")
    _range(m.ric_requestor_id <= 65535, f"ric_requestor_id {m.ric_requestor_id} > 65535")
    _range(m.ric_instance_id <= 65535, f"ric_instance_id {m.ric_instance_id} > 65535")
    _range(m.ran_function_id <= 4095, f"ran_function_id {m.ran_function_id} > 4095")
    _range(m.ric_action_id <= 255, f"ric_action_id {m.ric_action_id} > 255")
    _range(m.ric_indication_sn <= 65535, f"ric_indication_sn {m.ric_indication_sn} > 65535")
    _range(m.ric_indication_type in (ric_indication_pb2.REPORT, ric_indication_pb2.INSERT),
           f"ric_indication_type {m.ric_indication_type} (REPORT or INSERT)")
    _range(bool(_NAME.fullmatch(m.ran_name)), f"ran_name {m.ran_name[:40]!r} (1..150 of [A-Za-z0-9._:-])")
    _range(m.HasField("cell"), "cell missing")
    _range(bool(_PLMN.fullmatch(m.cell.plmn_id)), f"cell.plmn_id {m.cell.plmn_id[:12]!r} (5 or 6 digits)")
    _range(m.cell.nr_cell_id < 1 << 36, f"cell.nr_cell_id {m.cell.nr_cell_id} >= 2^36")
    _range(1 <= len(m.ric_indication_header) <= 4096, f"header of {len(m.ric_indication_header)} bytes (1..4096)")
    _range(len(m.ric_indication_message) >= 1, "empty message")

    h = _parse(csi_sm_pb2.CSIIndicationHeader, m.ric_indication_header, "CSIIndicationHeader")
    if (h.sm_name, h.sm_version) != (SM_NAME, SM_VERSION):
        raise DecodeError("sm_version", f"service model {h.sm_name[:40]!r} {h.sm_version[:20]!r} "
                                        f"(this decoder knows {SM_NAME} {SM_VERSION})")
    _range(h.collection_time_ns > 0, "collection_time_ns must be > 0")
    _time(h.collection_time_ns, received_ns, lim, "collection_time_ns")
    body = _parse(csi_sm_pb2.CSIIndicationMessage, m.ric_indication_message, "CSIIndicationMessage")
    _range(1 <= len(body.reports) <= lim.max_reports, f"{len(body.reports)} reports (1..{lim.max_reports})")
    cell = f"{m.cell.plmn_id}:{m.cell.nr_cell_id}"
    ues = ((r.ue_id, tuple(r.shape), _ITEM.get(r.dtype), r.dtype, r.data, r.scale or 1.0,
            r.snr_db if r.HasField("snr_db") else None) for r in body.reports)
    return Indication(m.ran_name, m.ran_function_id, m.ric_action_id, m.ric_requestor_id, m.ric_instance_id,
                      m.ric_indication_sn, cell, h.collection_time_ns,
                      csi_reports(m.ran_name, cell, m.ric_indication_sn, h.collection_time_ns, ues, lim, received_ns,
                                  "ue_id"), received_ns)


def csi_reports(ran_name: str, cell: str, sn: int, t_ns: int, ues, lim: Limits, received_ns: int,
                id_name: str) -> tuple[CSIReport, ...]:
    """One CSIReport per UE of an indication (either encoding), or DecodeError. `ues` yields (ue id, shape,
    item dtype, dtype as sent, data, scale, SNR dB or None), `id_name` is the UE id's name in the message."""
    reports, seen = [], set()
    for ue, shape, item, code, data, scale, snr in ues:
        _range(ue < 1 << 40, f"{id_name} {ue} >= 2^40")
        _range(ue not in seen, f"{id_name} {ue} twice in one indication")
        seen.add(ue)
        _range(snr is None or -50.0 <= snr <= 100.0, f"snr_db {snr} (-50..100)")
        reports.append(CSIReport(ran_name, cell, ue, sn, t_ns, csi_tensor(ue, shape, item, code, data, scale, lim),
                                 snr, received_ns))
    return tuple(reports)


def csi_tensor(ue_id: int, shape: tuple, item: np.dtype | None, dtype_code, data: bytes, scale: float,
               lim: Limits) -> np.ndarray:
    """One UE's CSI as a message carries it -> [2, ue_ant*bs_ant, K] float32 (or DecodeError).
    shape (ue_ant, bs_ant, subcarriers); item the dtype of one real or imaginary part (None: an unknown
    dtype, `dtype_code` as the message wrote it); data row-major (re, im) pairs; H = data x scale."""
    if len(shape) != 3 or not all(1 <= d <= 4096 for d in shape):
        raise DecodeError("shape", f"ue {ue_id}: shape {list(shape)[:6]} (3 dims, each 1..4096)")
    if (shape[0] * shape[1], shape[2]) != (lim.n_ant, lim.n_sc):
        raise DecodeError("shape", f"ue {ue_id}: shape {list(shape)}: the model takes ue_ant*bs_ant = {lim.n_ant}, "
                                   f"{lim.n_sc} subcarriers")
    if item is None:
        raise DecodeError("dtype", f"ue {ue_id}: dtype {dtype_code} (COMPLEX64 or COMPLEX32)")
    n = shape[0] * shape[1] * shape[2]
    if len(data) != 2 * n * item.itemsize:
        raise DecodeError("length", f"ue {ue_id}: {len(data)} bytes for shape {list(shape)} "
                                    f"({2 * n * item.itemsize} expected)")
    if not (np.isfinite(scale) and scale > 0):
        raise DecodeError("range", f"ue {ue_id}: scale {scale} (finite, > 0)")
    pairs = np.frombuffer(data, dtype=item).reshape(lim.n_ant, lim.n_sc, 2)
    out = np.ascontiguousarray(pairs.transpose(2, 0, 1), dtype=np.float32)
    if scale != 1.0:
        with np.errstate(over="ignore"):
            out *= np.float32(scale)
    if not np.isfinite(out).all():                  # after scaling: FP16 x a large scale can overflow
        raise DecodeError("nonfinite", f"ue {ue_id}: NaN or Inf in the CSI")
    return out


def parse_frame(buf: bytes, lim: Limits, received_ns: int) -> FrameMessage:
    """CameraFrame bytes -> FrameMessage (every field checked, the picture not decoded yet), or
    DecodeError. The frame worker reads these first and decodes only the frames that can still pair."""
    if len(buf) > lim.max_message_bytes:
        raise DecodeError("oversize", f"frame of {len(buf)} bytes > {lim.max_message_bytes}")
    m = _parse(camera_pb2.CameraFrame, buf, "CameraFrame")
    _range(1 <= len(m.camera_id) <= 64, f"camera_id of {len(m.camera_id)} characters (1..64)")
    if lim.cameras is not None and m.camera_id not in lim.cameras:
        raise DecodeError("camera", f"unknown camera {m.camera_id[:64]!r}")
    _range(m.capture_time_ns > 0, "capture_time_ns must be > 0")
    _time(m.capture_time_ns, received_ns, lim, "capture_time_ns")
    _range(16 <= m.width <= 8192 and 16 <= m.height <= 8192 and m.width * m.height <= MAX_PIXELS,
           f"size {m.width}x{m.height} (16..8192 each, at most {MAX_PIXELS} pixels)")
    want = lim.cameras.get(m.camera_id) if lim.cameras else None
    if isinstance(want, int) and m.width * m.height > want:
        raise DecodeError("image_size", f"camera {m.camera_id}: {m.width}x{m.height} is more than its "
                                        f"{want} pixels")
    if isinstance(want, tuple) and want != (m.width, m.height):
        raise DecodeError("image_size", f"camera {m.camera_id}: {m.width}x{m.height}, configured "
                                        f"{want[0]}x{want[1]}")
    enc = _ENCODINGS.get(m.encoding)
    if enc is None:
        raise DecodeError("range", f"encoding {m.encoding} (JPEG, PNG or RAW_RGB8)")
    return FrameMessage(m.camera_id, m.frame_seq, m.capture_time_ns, enc, m.width, m.height, m.data, received_ns)


def decode_image(msg: FrameMessage, lim: Limits) -> Frame:
    """FrameMessage -> Frame with the picture at the model's size (the training cache's
    preprocessing, wmfm.image), or DecodeError. The header is read before any pixel: a picture
    that is not what the message declares (format, size) is refused without decoding it."""
    h, w = lim.image_size
    src = lim.source_size or (h, w)
    if msg.encoding == "raw":
        if len(msg.data) != msg.width * msg.height * 3:
            raise DecodeError("image_size", f"RAW_RGB8 of {len(msg.data)} bytes for {msg.width}x{msg.height}")
        rgb = image.resize(np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3), src)
    else:
        try:
            head = image.header(msg.data)
        except ValueError as exc:
            raise DecodeError("image", f"camera {msg.camera_id}: {exc}") from None
        if head.format.lower() != msg.encoding:
            raise DecodeError("image", f"camera {msg.camera_id}: {head.format} data declared "
                                       f"{msg.encoding.upper()}")
        if (head.width, head.height) != (msg.width, msg.height):
            raise DecodeError("image_size", f"camera {msg.camera_id}: the picture is {head.width}x{head.height}, "
                                            f"declared {msg.width}x{msg.height}")
        try:
            rgb = image.decode(msg.data, src, head)
        except ValueError as exc:
            raise DecodeError("image", f"camera {msg.camera_id}: {exc}") from None
    if src != (h, w):                   # the model takes a smaller picture than the cache holds (training: area)
        rgb = image.resize(rgb, (h, w))
    return Frame(msg.camera_id, msg.seq, msg.t_ns, rgb, msg.received_ns)


def decode_frame(buf: bytes, lim: Limits, received_ns: int) -> Frame:
    """CameraFrame bytes -> Frame with the image at the model's size, or DecodeError."""
    return decode_image(parse_frame(buf, lim, received_ns), lim)


def warmup(lim_ind: Limits, lim_frames: Limits) -> None:
    """Decode an indication and a JPEG and a PNG frame once at start-up: the first calls load
    protobuf's parsers and OpenCV's codecs, which would otherwise land on the first messages."""
    now = 1 << 60                                   # any time: collection and arrival are the same
    decode_indication(encode_indication("warmup", 0, now, [(1, np.zeros((2, lim_ind.n_ant, lim_ind.n_sc)))]),
                      lim_ind, now)
    rgb = np.zeros((lim_frames.image_size[0], lim_frames.image_size[1], 3), np.uint8)
    for enc in ("jpeg", "png", "raw"):
        decode_image(FrameMessage("warmup", 0, now, enc, rgb.shape[1], rgb.shape[0], encode_image(rgb, enc), now),
                     lim_frames)


# --- encoding (replay simulator, load generator, tests) ---------------------------------
def encode_indication(ran_name: str, sn: int, t_ns: int, reports: list[tuple[int, np.ndarray]],
                      ue_ant: int = 1, ran_function_id: int = 2, ric_action_id: int = 1, plmn_id: str = "00101",
                      nr_cell_id: int = 1, dtype: str = "complex64", snr_db: float | None = None,
                      requestor_id: int = 1, instance_id: int = 1) -> bytes:
    """reports: (ue_id, csi [2, ue_ant*bs_ant, K] float (re/im)) -> RICIndication bytes.
    COMPLEX32 data is sent scaled by its largest magnitude (FP16 keeps ~3 significant digits of it)."""
    msg = csi_sm_pb2.CSIIndicationMessage()
    code, item = (csi_sm_pb2.COMPLEX64, "<f4") if dtype == "complex64" else (csi_sm_pb2.COMPLEX32, "<f2")
    for ue_id, csi in reports:
        csi = np.asarray(csi)
        a, k = csi.shape[1:]
        scale = float(np.abs(csi).max()) if dtype == "complex32" else 0.0
        scale = scale if np.isfinite(scale) and scale > 0 else 0.0
        r = msg.reports.add(ue_id=ue_id, shape=[ue_ant, a // ue_ant, k], dtype=code, scale=scale,
                            data=np.ascontiguousarray(csi.transpose(1, 2, 0) / (scale or 1.0), dtype=item).tobytes())
        if snr_db is not None:
            r.snr_db = snr_db
    hdr = csi_sm_pb2.CSIIndicationHeader(collection_time_ns=t_ns, sm_name=SM_NAME, sm_version=SM_VERSION)
    ind = ric_indication_pb2.RICIndication(
        ric_requestor_id=requestor_id, ric_instance_id=instance_id, ran_function_id=ran_function_id,
        ric_action_id=ric_action_id, ric_indication_sn=sn % 65536, ric_indication_type=ric_indication_pb2.REPORT,
        ric_indication_header=hdr.SerializeToString(), ric_indication_message=msg.SerializeToString(),
        ran_name=ran_name, cell=ric_indication_pb2.NRCellGlobalId(plmn_id=plmn_id, nr_cell_id=nr_cell_id))
    return ind.SerializeToString()


def encode_frame(camera_id: str, seq: int, t_ns: int, data: bytes, width: int, height: int,
                 encoding: str = "jpeg") -> bytes:
    enc = {"jpeg": camera_pb2.JPEG, "png": camera_pb2.PNG, "raw": camera_pb2.RAW_RGB8}[encoding]
    return camera_pb2.CameraFrame(camera_id=camera_id, frame_seq=seq, capture_time_ns=t_ns, encoding=enc,
                                  width=width, height=height, data=data).SerializeToString()


def encode_image(rgb: np.ndarray, encoding: str = "jpeg", quality: int = 90) -> bytes:
    """[H, W, 3] uint8 -> JPEG/PNG bytes (raw: the array's bytes)."""
    if encoding == "raw":
        return np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(buf, format="JPEG" if encoding == "jpeg" else "PNG",
                                                          quality=quality)
    return buf.getvalue()


def encode_insight(x: Insight) -> bytes:
    mode = insight_pb2.FUSED if x.mode == "fused" else insight_pb2.CSI_ONLY
    return insight_pb2.Insight(ran_name=x.ran_name, ue_id=x.ue_id, source_time_ns=x.t_ns,
                               published_ns=x.published_ns, sn=x.sn, p_los=x.p_los, los=x.los,
                               x=x.position[0], y=x.position[1], z=x.position[2], mode=mode, model=x.model,
                               camera_id=x.camera_id, frame_time_ns=x.frame_t_ns).SerializeToString()


def decode_insight(buf: bytes) -> Insight:
    m = _parse(insight_pb2.Insight, buf, "Insight")
    return Insight(m.ran_name, m.ue_id, m.sn, m.source_time_ns, m.p_los, m.los, (m.x, m.y, m.z),
                   "fused" if m.mode == insight_pb2.FUSED else "csi_only", m.model, m.camera_id, m.frame_time_ns,
                   0, m.published_ns)
