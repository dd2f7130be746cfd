"""Traces of the Python host loop for the firmware C reference to replay.

TFLite Micro is not built here, so the C reference (``firmware_bench/c_reference``) is
tested on what surrounds the invokes: it reads every invoke's raw model outputs recorded
from :class:`~sertiny.runtime.chunked.ChunkedRunner`, does the state hand-over, the
online-softmax pooling and the head itself, and must reproduce the next invokes' state
inputs exactly and the probabilities to float32 precision.

Trace format (text, whitespace-separated; one record per line)::

    sertiny-host-trace 1
    dims F H C K invokes bits          # bits: 8 or 16 (the state tensors' integer type)
    states h1 c1 h2 c2                 # input state names, in this order below
    qin  <name> <scale> <zero_point>   # one per input state
    qout <name> <scale> <zero_point>   # h2_seq and every other output state
    head <key> <n> <floats...>         # attention_u, bn_scale, bn_shift, dense_kernel, dense_bias
    invoke <valid frames>
    out <name> <n> <ints...>           # raw output tensors of this invoke
    next <name> <n> <ints...>          # the state inputs the host fed the next invoke
    probs <C> <floats...>              # the Python path's final probabilities
"""

import numpy as np

from ..features.frames import fit_to_length

HEAD_KEYS = ("attention_u", "bn_scale", "bn_shift", "dense_kernel", "dense_bias")


def _f32(value):
    """Shortest text that parses back to the same float32."""
    return repr(float(np.float32(value)))


def write_host_trace(path, runner, x_norm):
    """Run ``runner`` (an integer chunked model) over one clip and write its trace file."""
    trace = []
    probs = runner.predict(x_norm, trace=trace)
    inputs = sorted(runner.meta["inputs"], key=lambda e: e["position"])
    outputs = sorted(runner.meta["outputs"], key=lambda e: e["position"])
    states = [e["name"] for e in inputs if e["name"] != "frames"]
    in_detail = {name: runner.inputs[name] for name in states}
    n_frames = len(fit_to_length(x_norm, runner.seq_len, pad=runner.padding == "zeros"))
    k = runner.chunk
    bits = np.dtype(runner.inputs["frames"]["dtype"]).itemsize * 8
    head = runner.head
    hidden, classes = np.asarray(head["dense_kernel"]).shape
    lines = [
        "sertiny-host-trace 1",
        f"dims {runner.n_features} {hidden} {classes} {k} {len(trace)} {bits}",
        "states " + " ".join(states),
    ]
    for name in states:
        scale, zero_point = in_detail[name]["quantization"]
        lines.append(f"qin {name} {_f32(scale)} {int(zero_point)}")
    for name in [e["name"] for e in outputs]:
        scale, zero_point = runner.outputs[name]["quantization"]
        lines.append(f"qout {name} {_f32(scale)} {int(zero_point)}")
    for key in HEAD_KEYS:
        values = np.asarray(head[key], dtype=np.float32).reshape(-1)
        lines.append(f"head {key} {values.size} " + " ".join(_f32(v) for v in values))
    for i, (_, raw_outputs) in enumerate(trace):
        lines.append(f"invoke {min(k, n_frames - i * k)}")
        for entry, value in zip(outputs, raw_outputs):
            lines.append(_ints("out", entry["name"], value))
        if i + 1 < len(trace):
            next_inputs = dict(zip([e["name"] for e in inputs], trace[i + 1][0]))
            lines += [_ints("next", name, next_inputs[name]) for name in states]
    lines.append(f"probs {probs.size} " + " ".join(_f32(p) for p in probs))
    path.write_text("\n".join(lines) + "\n")
    return probs


def _ints(tag, name, value):
    flat = np.asarray(value).reshape(-1)
    return f"{tag} {name} {flat.size} " + " ".join(str(int(v)) for v in flat)

