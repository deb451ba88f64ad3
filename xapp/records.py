"""The typed records that flow between the xApp's stages, each defined once.

    transport (bytes) -> codec -> Indication (CSIReport per UE) | FrameMessage -> Frame
    sync -> Pairing (a CSIReport with its Frame or None) -> inference -> Insight -> sink (Redis)

Times are integer nanoseconds since the Unix epoch (`*_ns`); `received_ns` is this host's
wall clock when the bytes arrived, used for the end-to-end latency.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class CSIReport:
    """One UE's channel from one indication."""
    ran_name: str
    cell: str                  # "<plmn>:<nr_cell_id>"
    ue_id: int
    sn: int                    # RIC indication SN (0 .. 65535)
    t_ns: int                  # CSI collection time
    csi: np.ndarray            # [2, A, K] float32: real/imag, A = ue_ant * bs_ant, K subcarriers
    snr_db: float | None
    received_ns: int


@dataclass(frozen=True, slots=True)
class Indication:
    """A decoded RIC indication: its stream identity, SN and the per-UE reports."""
    ran_name: str
    ran_function_id: int
    ric_action_id: int
    requestor_id: int
    instance_id: int
    sn: int
    cell: str
    t_ns: int
    reports: tuple[CSIReport, ...]
    received_ns: int
    sm: str = "WMFM-CSI/1.0"   # the service model and version that decoded it ("<name>/<version>")

    @property
    def stream(self) -> tuple[str, int, int, int, int]:
        """SN sequences are per E2 node and subscription: (node, requestor, instance, RAN function, action)."""
        return (self.ran_name, self.requestor_id, self.instance_id, self.ran_function_id, self.ric_action_id)


@dataclass(frozen=True, slots=True)
class FrameMessage:
    """A camera frame as received: every field checked, the picture still encoded."""
    camera_id: str
    seq: int
    t_ns: int                  # capture time
    encoding: str              # "jpeg" | "png" | "raw" (RGB8)
    width: int
    height: int
    data: bytes
    received_ns: int


@dataclass(slots=True)
class Frame:
    """A decoded camera frame, already at the model's input size, and its image tokens once embedded
    (held here, so that every report paired with the frame finds them, however long it queued)."""
    camera_id: str
    seq: int
    t_ns: int
    image: np.ndarray          # [H, W, 3] uint8 RGB at the model's image size
    received_ns: int
    tokens: np.ndarray | None = None   # [T, E] float32, set once by inference.Engine


@dataclass(slots=True)
class Pairing:
    """A CSI report and the frame nearest in time within the skew (None: CSI-only)."""
    report: CSIReport
    frame: Frame | None
    ready_ns: int = 0          # when it was paired (the micro-batch wait starts here)


@dataclass(slots=True)
class Insight:
    """What the xApp publishes for one UE."""
    ran_name: str
    ue_id: int
    sn: int
    t_ns: int                  # the CSI collection time
    p_los: float
    los: bool
    position: tuple[float, float, float]   # metres
    mode: str                  # "fused" | "csi_only"
    model: str
    camera_id: str = ""
    frame_t_ns: int = 0
    received_ns: int = 0
    published_ns: int = 0
