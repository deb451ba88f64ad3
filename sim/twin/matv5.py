"""A small MAT-file v5 encoder for the twin's trajectory.mat.

scipy.io.savemat spends ~0.2 ms per struct element, i.e. seconds per thousand scenes of
moving objects. Every object struct of trajectory.mat has the same layout, so this encoder
serialises one template record and patches the values of n objects into n copies of it
with numpy. Read back by scipy.io.loadmat (and so by deepverse) like any MAT v5 file.

Layout (little endian): 128-byte header, then one zlib-compressed miMATRIX per variable.
A miMATRIX holds array flags, dimensions, a name, then per class: real data (double),
UTF-16 code units (char), the elements (cell), or field names then per element per field
a miMATRIX (struct). Data are padded to 8 bytes.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

MI_INT8, MI_INT32, MI_UINT32, MI_DOUBLE, MI_UINT16, MI_MATRIX, MI_COMPRESSED = 1, 5, 6, 9, 4, 14, 15
MX_CELL, MX_STRUCT, MX_CHAR, MX_DOUBLE = 1, 2, 4, 6
FIELD_LEN = 32


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 8)


def _element(mtype: int, data: bytes) -> bytes:
    if len(data) <= 4:     # small data element format
        return struct.pack("<HH", mtype, len(data)) + data.ljust(4, b"\0")
    return struct.pack("<II", mtype, len(data)) + _pad(data)


def _matrix_head(cls: int, dims: tuple[int, ...], name: bytes = b"") -> bytes:
    return (_element(MI_UINT32, struct.pack("<II", cls, 0))
            + _element(MI_INT32, struct.pack(f"<{len(dims)}i", *dims))
            + _element(MI_INT8, name))


def _matrix(content: bytes) -> bytes:
    return struct.pack("<II", MI_MATRIX, len(content)) + content


def encode(value, name: bytes = b"") -> bytes:
    """A miMATRIX for: number / float array (double), str (char), dict (1x1 struct),
    list (1xN cell)."""
    if isinstance(value, dict):
        names = list(value)
        fields = b"".join(k.encode().ljust(FIELD_LEN, b"\0")[:FIELD_LEN - 1] + b"\0" for k in names)
        body = (_matrix_head(MX_STRUCT, (1, 1), name) + _element(MI_INT32, struct.pack("<i", FIELD_LEN))
                + _element(MI_INT8, fields) + b"".join(encode(value[k]) for k in names))
        return _matrix(body)
    if isinstance(value, (list, tuple)):
        return _matrix(_matrix_head(MX_CELL, (1, len(value)), name) + b"".join(encode(v) for v in value))
    if isinstance(value, str):
        data = np.frombuffer(value.encode("utf-16-le"), "<u2")
        return _matrix(_matrix_head(MX_CHAR, (1, len(data)), name) + _element(MI_UINT16, data.tobytes()))
    arr = np.asarray(value, dtype="<f8")
    arr = arr.reshape(1, 1) if arr.ndim == 0 else (arr.reshape(1, -1) if arr.ndim == 1 else arr)
    return _matrix(_matrix_head(MX_DOUBLE, arr.shape, name)
                   + _element(MI_DOUBLE, np.asfortranarray(arr).tobytes(order="F")))


class RecordEncoder:
    """Encodes n structs with the same fields (scalar doubles, or fixed-shape double arrays)
    as n miMATRIX elements, by patching values into copies of one template."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]):
        self.shapes = shapes
        sentinel = iter(np.arange(1, 10_000) * 1.2345678912345e-300)
        example = {k: (next(sentinel) if not s else np.array([next(sentinel) for _ in range(int(np.prod(s)))])
                       .reshape(s, order="F")) for k, s in shapes.items()}
        self.template = np.frombuffer(encode(example), np.uint8)
        self.offsets = {}
        for k, v in example.items():
            first = np.asarray(v, dtype="<f8").ravel(order="F")[0]
            self.offsets[k] = self.template.tobytes().index(np.float64(first).tobytes())

    def encode(self, columns: dict[str, np.ndarray]) -> bytes:
        """columns[k]: [n] for scalars, [n, *shape] for arrays; returns n elements back to back."""
        n = len(next(iter(columns.values())))
        out = np.tile(self.template, (n, 1))
        for k, shape in self.shapes.items():
            col = np.asarray(columns[k], dtype="<f8").reshape(n, *shape)
            flat = col.transpose(0, *range(col.ndim - 1, 0, -1)).reshape(n, -1)   # column-major
            off = self.offsets[k]
            out[:, off:off + 8 * flat.shape[1]] = flat.view(np.uint8).reshape(n, -1)
        return out.tobytes()


def cell_of(elements: bytes, n: int) -> bytes:
    """A 1xn cell miMATRIX around n already-encoded elements."""
    return _matrix(_matrix_head(MX_CELL, (1, n)) + elements)


def struct_1x1(fields: dict[str, bytes]) -> bytes:
    """A 1x1 struct whose fields are already-encoded miMATRIX elements."""
    names = b"".join(k.encode().ljust(FIELD_LEN, b"\0")[:FIELD_LEN - 1] + b"\0" for k in fields)
    return _matrix(_matrix_head(MX_STRUCT, (1, 1)) + _element(MI_INT32, struct.pack("<i", FIELD_LEN))
                   + _element(MI_INT8, names) + b"".join(fields.values()))


def top_cell(name: str, elements: list[bytes]) -> Iterable[bytes]:
    """A named 1xN cell variable whose elements are already encoded, as chunks for write_mat."""
    head = _matrix_head(MX_CELL, (1, len(elements)), name.encode())
    yield struct.pack("<II", MI_MATRIX, len(head) + sum(len(e) for e in elements)) + head
    yield from elements


def write_mat(path: Path, variables: list[bytes | Iterable[bytes]]) -> None:
    """Write top-level variables (each an encoded, named miMATRIX, or chunks of one), each
    zlib-compressed into its own miCOMPRESSED element."""
    text = b"MATLAB 5.0 MAT-file, written by wmfm twin".ljust(116, b" ")
    with open(path, "wb") as fh:
        fh.write(text + b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM")
        for var in variables:
            comp = zlib.compressobj(1)
            parts = [comp.compress(c) for c in ([var] if isinstance(var, bytes) else var)]
            parts.append(comp.flush())
            data = b"".join(parts)
            fh.write(struct.pack("<II", MI_COMPRESSED, len(data)) + data)
