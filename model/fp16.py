"""FP32 ONNX -> mixed-precision (FP16) ONNX with FP32 inputs and outputs.

TensorRT's strongly typed networks (the only kind in TensorRT 11) take each tensor's type
from the ONNX graph: FP16 has to be in the graph, not asked of the builder. The FP32 file
stays the source of truth; this pass writes a copy where every node runs in FP16 except
the ones `keep_fp32` names, with a Cast wherever the two regions meet.

Kept in FP32 (`default_keep_fp32`): the CSI power normalisation and angle-delay transform
(channel gains are ~1e-6, their squares underflow FP16) and every reduction/normalisation
(sums of squares overflow FP16's 65504). The heads are not converted at all (position in
metres needs FP32's mantissa for a cm-level match).

(onnxconverter-common's float16 pass casts through FP16 *between* blocked nodes and breaks
on graph outputs that are also consumed inside the graph; our graphs hit both.)
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
_REDUCE_OPS = {"InstanceNormalization", "LayerNormalization", "GroupNormalization", "BatchNormalization",
               "ReduceMean", "ReduceL2", "ReduceSum", "ReduceSumSquare", "Softmax", "LogSoftmax", "Log", "Exp", "Pow"}


def default_keep_fp32(node: onnx.NodeProto) -> bool:
    return node.name.startswith("/transform/") or node.op_type in _REDUCE_OPS


def _float_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*g.value_info, *g.input, *g.output)}
    types.update({i.name: i.data_type for i in g.initializer})
    return types


def to_mixed_fp16(model: onnx.ModelProto, keep_fp32=default_keep_fp32) -> onnx.ModelProto:
    """A new model: FP16 everywhere but `keep_fp32` nodes; graph inputs/outputs stay FP32."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    types = _float_types(model)
    is_float = {name for name, t in types.items() if t == FLOAT}
    half_nodes = [not keep_fp32(n) and n.op_type != "Cast" for n in g.node]
    # a Constant node takes the precision of its consumers when they all agree on FP16
    consumers: dict[str, list[int]] = {}
    for i, n in enumerate(g.node):
        for name in n.input:
            consumers.setdefault(name, []).append(i)
    for i, n in enumerate(g.node):
        if n.op_type == "Constant":
            users = [j for o in n.output for j in consumers.get(o, [])]
            half_nodes[i] = bool(users) and all(half_nodes[j] for j in users) and n.output[0] in is_float

    precision: dict[str, int] = {}                      # float tensor -> its type after conversion
    for init in g.initializer:
        if init.data_type == FLOAT:
            users = consumers.get(init.name, [])
            if users and all(half_nodes[j] for j in users):
                init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))
                precision[init.name] = HALF
            else:
                precision[init.name] = FLOAT
    for inp in g.input:
        if inp.name in is_float:
            precision[inp.name] = FLOAT

    new_nodes, casts = [], {}

    def cast(name: str, to: int) -> str:
        key = (name, to)
        if key not in casts:
            out = f"{name}__to_{'fp16' if to == HALF else 'fp32'}"
            new_nodes.append(helper.make_node("Cast", [name], [out], to=to, name=out))
            casts[key] = out
        return casts[key]

    for i, n in enumerate(g.node):
        want = HALF if half_nodes[i] else FLOAT
        if n.op_type != "Cast":                         # a Cast accepts either type
            for k, name in enumerate(n.input):
                if name in precision and precision[name] != want:
                    n.input[k] = cast(name, want)
        if half_nodes[i] and n.op_type in ("Constant", "ConstantOfShape"):
            for a in n.attribute:
                if a.name == "value" and a.t.data_type == FLOAT:
                    a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16)))
        for o in n.output:
            if n.op_type == "Cast":
                to = next(a.i for a in n.attribute if a.name == "to")
                if to in (FLOAT, HALF):
                    precision[o] = to
            elif o in is_float:
                precision[o] = want
        new_nodes.append(n)

    # graph outputs stay FP32: rename an FP16 producer's output and cast back under the old name
    for out in g.output:
        if precision.get(out.name) == HALF:
            inner = out.name + "__fp16"
            for n in new_nodes:
                n.output[:] = [inner if o == out.name else o for o in n.output]
                n.input[:] = [inner if x == out.name else x for x in n.input]
            new_nodes.append(helper.make_node("Cast", [inner], [out.name], to=FLOAT, name=out.name + "__out"))
    del g.node[:]
    g.node.extend(new_nodes)
    del g.value_info[:]                                 # stale types; checkers re-infer
    onnx.checker.check_model(model)
    return model
