"""NumPy simulation of the int8 recurrence: which tensors lose top-1 agreement when rounded.

An experiment's tool, shared by export/export_report.py (--diagnose) and
export/cell_range_sim.py: the per-frame LSTM-SA / ResLSTM-SA recurrence of the folded float
weights (:class:`sertiny.export.graph.FoldedWeights`) with chosen tensors fake-quantised,
on ranges taken like the converter's (min/max over calibration clips). Not the exporter's
arithmetic (TFLite's fixed-point kernels round differently); it says where, not how much.
"""

import numpy as np


def simulate(fw, x, groups=frozenset(), ranges=None, bits=8, record=None):
    """Predicted classes of LSTM-SA / ResLSTM-SA (``fw``: folded weights) over ``x`` (N, T, F),
    with the tensors of ``groups`` rounded to ``bits``-bit grids on ``ranges``.

    ``groups``: tensor names (``x``, ``proj``, ``rec``, ``z``, ``fc``, ``ig``, ``c``, ``tc``,
    ``h``, ``x2``; ``*`` for all, ``-name`` to leave one out); ``ranges``: ``{name: (min, max)}``
    per layer-tagged tensor, as ``record`` (a dict) collects them from a float pass.
    """

    def q(name, value):
        base = name.lstrip("12")
        if record is not None:
            lo, hi = record.get(name, (np.inf, -np.inf))
            record[name] = (min(lo, value.min()), max(hi, value.max()))
        if (base in groups or "*" in groups) and f"-{base}" not in groups:
            lo, hi = min(ranges[name][0], 0.0), max(ranges[name][1], 0.0)
            step = (hi - lo) / (2**bits - 1)
            return np.clip(np.round(value / step), np.round(lo / step), np.round(hi / step)) * step
        return value

    def cell(lstm, tag, x_t, h, c):
        units = lstm.units
        z = q(tag + "z", q(tag + "proj", x_t @ lstm.kernel + lstm.bias) + q(tag + "rec", h @ lstm.recurrent))
        gates = 1 / (1 + np.exp(-z[:, : 3 * units]))
        i, f, o = gates[:, :units], gates[:, units : 2 * units], gates[:, 2 * units :]
        c = q(tag + "c", q(tag + "fc", f * c) + q(tag + "ig", i * np.tanh(z[:, 3 * units :])))
        return q(tag + "h", o * q(tag + "tc", np.tanh(c))), c

    n = x.shape[0]
    h1, c1 = np.zeros((n, fw.n_features)), np.zeros((n, fw.n_features))
    h2, c2 = np.zeros((n, fw.hidden)), np.zeros((n, fw.hidden))
    outputs = []
    for t in range(x.shape[1]):
        x_t = q("x", x[:, t])
        if fw.residual:
            h1, c1 = cell(fw.lstm1, "1", x_t, h1, c1)
            x_t = q("x2", h1 + x_t)
        h2, c2 = cell(fw.lstm2, "2", x_t, h2, c2)
        outputs.append(h2)
    h = np.stack(outputs, 1)
    scores = h @ fw.attention
    alpha = np.exp(scores - scores.max(1, keepdims=True))
    context = ((alpha / alpha.sum(1, keepdims=True))[..., None] * h).sum(1)
    return (context @ fw.head_kernel + fw.head_bias).argmax(1)
