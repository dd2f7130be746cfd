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
    stats <eps> <S> <codes...>         # version 2 only: the head's statistics (0 mean, 1 std, 2 delta_rms)
    invoke <valid frames>
    frames <n> <floats...>             # version 2 only: the valid frames' normalised features
    out <name> <n> <ints...>           # raw output tensors of this invoke
    next <name> <n> <ints...>          # the state inputs the host fed the next invoke
    probs <C> <floats...>              # the Python path's final probabilities
"""

import numpy as np

from ..features.frames import fit_to_length

HEAD_KEYS = ("attention_u", "bn_scale", "bn_shift", "dense_kernel", "dense_bias")
# sertiny_host.h's SERTINY_STAT_* codes.
STAT_CODES = {"mean": 0, "std": 1, "delta_rms": 2}


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
    frames = fit_to_length(x_norm, runner.seq_len, pad=runner.padding == "zeros")
    n_frames = len(frames)
    k = runner.chunk
    bits = np.dtype(runner.inputs["frames"]["dtype"]).itemsize * 8
    head = runner.head
    statistics = head.get("statistics") or []
    hidden, classes = len(head["attention_u"]), np.asarray(head["dense_kernel"]).shape[1]
    lines = [
        f"sertiny-host-trace {2 if statistics else 1}",
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
    if statistics:
        lines.append(f"stats {_f32(head['sqrt_epsilon'])} {len(statistics)} "
                     + " ".join(str(STAT_CODES[name]) for name in statistics))
    for i, (_, raw_outputs) in enumerate(trace):
        valid = min(k, n_frames - i * k)
        lines.append(f"invoke {valid}")
        if statistics:
            rows = np.asarray(frames[i * k : i * k + valid], dtype=np.float32).reshape(-1)
            lines.append(f"frames {rows.size} " + " ".join(_f32(v) for v in rows))
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

