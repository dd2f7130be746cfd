"""Static cost of a TFLite model: operator counts, multiply-accumulates and element work.

Counted from the interpreter's own view of the main subgraph (op names and tensor shapes
after ``allocate_tensors``), so the figures hold for whatever ops the exporter emitted.
Delegate nodes (XNNPACK's wrappers around ops already listed) are not counted. Ops inside
control-flow bodies (``WHILE``/``IF`` subgraphs) are invisible from here: the result then
says ``complete: False`` and the exporter's own count, when the bundle records one, wins.

MACs are counted for the ops that multiply weights (fully connected, batch matmul,
convolutions, sequence LSTMs); every other op contributes ``elements`` (output values
produced), which the microcontroller cost model prices per element.
"""

import numpy as np

# Ops whose output values each cost a transcendental function (priced higher on an MCU).
TRANSCENDENTAL_OPS = {"LOGISTIC", "TANH", "SOFTMAX", "EXP", "LOG", "LOG_SOFTMAX", "RSQRT", "SQRT", "GELU", "HARD_SWISH"}
# Ops that only move or reinterpret data; their outputs are counted as cheap copies.
LAYOUT_OPS = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "CONCATENATION", "SLICE", "STRIDED_SLICE",
              "GATHER", "PACK", "UNPACK", "SPLIT", "SPLIT_V", "PAD", "PADV2", "SHAPE"}
CONTROL_FLOW_OPS = {"WHILE", "IF", "CALL_ONCE"}


def model_cost(interpreter):
    """Op counts and MACs of an allocated interpreter's main subgraph.

    Returns:
        dict with ``ops`` (int), ``op_types`` ({name: count}), ``macs`` (int),
        ``elements`` ({"arith"|"transcendental"|"layout": int}) and ``complete`` (bool).
    """
    shapes = {t["index"]: tuple(int(d) for d in t["shape"]) for t in interpreter.get_tensor_details()}
    op_types, macs = {}, 0
    elements = {"arith": 0, "transcendental": 0, "layout": 0}
    complete = True
    for op in interpreter._get_ops_details():  # noqa: SLF001 - the only public-enough op listing
        name = op["op_name"]
        if name == "DELEGATE":
            continue
        op_types[name] = op_types.get(name, 0) + 1
        complete &= name not in CONTROL_FLOW_OPS
        ins = [shapes.get(int(i)) for i in op["inputs"]]
        outs = [shapes.get(int(i)) for i in op["outputs"]]
        op_macs = op_mac_count(name, ins, outs)
        macs += op_macs
        if name in ("UNIDIRECTIONAL_SEQUENCE_LSTM", "LSTM") and outs and outs[0]:
            # Per step and unit: 3 sigmoids + 2 tanh, and ~4 multiplies/adds of the cell update.
            elements["transcendental"] += 5 * _numel(outs[0])
            elements["arith"] += 4 * _numel(outs[0])
        elif not op_macs:
            elements[_element_kind(name)] += sum(_numel(s) for s in outs if s is not None)
    return {"ops": sum(op_types.values()), "op_types": dict(sorted(op_types.items())), "macs": int(macs),
            "elements": elements, "complete": complete}


def op_mac_count(name, ins, outs):
    """Multiply-accumulates of one op from its input/output shapes (None = absent tensor)."""
    out = outs[0] if outs else None
    if name == "FULLY_CONNECTED" and len(ins) > 1 and ins[1] and ins[0]:
        units, depth = ins[1][0], ins[1][-1]
        return _numel(ins[0]) // max(depth, 1) * units * depth
    if name == "BATCH_MATMUL" and out and ins[0]:
        shared = ins[0][-1] if ins[1] and ins[0][-1] in ins[1][-2:] else ins[0][-2]
        return _numel(out) * shared
    if name == "CONV_2D" and out and ins[1]:
        return _numel(out) * int(np.prod(ins[1][1:]))
    if name == "DEPTHWISE_CONV_2D" and out and ins[1]:
        return _numel(out) * ins[1][1] * ins[1][2]
    if name in ("UNIDIRECTIONAL_SEQUENCE_LSTM", "LSTM") and ins[0]:
        # inputs 1-4: input-to-gate weights (units, F); 5-8: recurrent weights (units, units).
        steps = _numel(ins[0][:-1])
        weights = [s for s in ins[1:9] if s is not None and len(s) == 2]
        return steps * sum(_numel(s) for s in weights)
    return 0


def _element_kind(name):
    if name in TRANSCENDENTAL_OPS:
        return "transcendental"
    if name in LAYOUT_OPS:
        return "layout"
    return "arith"


def _numel(shape):
    return int(np.prod(shape)) if shape else 1
