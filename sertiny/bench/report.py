"""Turn benchmark results into a Markdown table and a Pareto plot; merge runs from devices.

A run made under emulation (``device.emulated``) keeps its sizes, op counts and
estimates, but its timings are shown as "emulated" and left out of the plot: qemu's
timings say nothing about the device it imitates.
"""

from pathlib import Path

from .._io import atomic_path, atomic_write_json, atomic_write_text, read_json
from ..errors import ArtifactError
from ..export.tflm import ARENA_METHOD

_MCU_CORES = ("Cortex-M4 @ 80 MHz", "Cortex-M7 @ 480 MHz")


def load_result(path):
    """Read a ``bench.json``; ArtifactError naming the file if it is not one."""
    data = read_json(path)
    if not isinstance(data, dict) or data.get("schema") != "sertiny-bench":
        raise ArtifactError(f"{path}: not a sertiny bench result (no \"schema\": \"sertiny-bench\"). "
                            "Pass the bench.json written by 'sertiny bench'.")
    return data


def save_results(result, out_dir, *, plot=True):
    """Write ``bench.json``, ``bench.md``, ``bench_config.json`` and ``pareto.png`` to ``out_dir``.

    Returns the list of paths written. The plot is skipped (with a note in the Markdown)
    when matplotlib is not installed, as on a light Pi install: merge the JSON on a host.
    """
    out_dir = Path(out_dir)
    paths = [out_dir / "bench.json", out_dir / "bench_config.json", out_dir / "bench.md"]
    atomic_write_json(paths[0], result)
    atomic_write_json(paths[1], result["config"])
    plot_note = None
    if plot:
        plot_note = _try_plot([result], out_dir / "pareto.png", title=f"{result['bundle']['name']} on "
                              f"{result['device']['name']}")
        if plot_note is None:
            paths.append(out_dir / "pareto.png")
    atomic_write_text(paths[2], format_markdown(result, plot_note=plot_note))
    return paths


def _try_plot(results, path, title):
    try:
        plot_pareto(results, path, title=title)
    except ImportError:
        return "Plot skipped: matplotlib is not installed here; run 'sertiny bench compare' on a host."
    return None


def format_markdown(result, *, plot_note=None):
    """The Markdown report of one run: device, command, variants table, peers, notes."""
    d = result["device"]
    emulated = d.get("emulated")
    lines = [f"# sertiny bench: {result['bundle']['name']} on {d['name']}", ""]
    command = f"`{result['command']}`" if result.get("command") else "not recorded (run from Python)"
    lines += [f"- Device: {_device_text(d)}", f"- Load: {_load_text(result.get('load_average'))}",
              f"- Command: {command}",
              f"- Created: {result['created']}, sertiny {result['sertiny_version']}",
              f"- Clips: {result['clips']['count']} timed end to end ({result['clips']['source']})",
              f"- Bundle: T={result['bundle']['seq_len']}, F={result['bundle']['n_features']}, "
              f"{len(result['bundle']['labels'])} classes, weights {result['bundle'].get('weights')}", ""]
    if emulated:
        lines += ["> **Emulated run.** Timings under qemu mean nothing for the real device and are not shown.", ""]
    lines += _variant_table(result, emulated) + [""]
    lines += _peer_table(result, emulated)
    lines += _against_peers(result, emulated)
    lines += _notes(result, plot_note)
    return "\n".join(lines) + "\n"


def _load_text(load):
    """Load average before/after: timings on a machine busy with other work run slow."""
    if not load or not load.get("start"):
        return "n/a"
    start, end = load["start"], load.get("end") or {}
    busy = " (busy: other processes competed for the cores)" if start["1min"] > 0.5 * start["cores"] else ""
    return f"1-min load average {start['1min']} at start, {end.get('1min')} at end, {start['cores']} cores{busy}"


def _device_text(d):
    parts = [d.get("cpu") or d.get("machine"), f"{d.get('cores')} cores", f"{d.get('memory_gb')} GB",
             d.get("os"), f"Python {d.get('python')}", f"numpy {d.get('numpy')}", d.get("tflite_runtime")]
    text = ", ".join(str(p) for p in parts if p)
    return text + (f" (EMULATED: {d.get('emulator')})" if d.get("emulated") else "")


def _variant_table(result, emulated):
    threads = sorted({t for v in result["variants"] for t in v["latency"]}, key=int)
    head = ["variant", "size KB", "UAR", "ops/window", "MACs/window", "load ms"]
    head += [f"p50/p90/p99 ms @{t}T" for t in threads]
    head += ["e2e ms/clip p50", "RTF", "cold start s", "peak RSS MB", "TFLM arena (bytes)"]
    head += [f"{c.split(' @')[0]} est. ms" for c in _MCU_CORES]
    rows = [head, ["---"] * len(head)]
    for v in result["variants"]:
        cold = v.get("cold_start") or {}
        row = [v["name"], f"{v['file_bytes'] / 1024:.1f}", _num(v.get("uar"), ".4f"), str(v["ops"]),
               f"{v['macs']:,}" + ("" if v.get("complete", True) else "+"), _timing(v.get("load_ms"), emulated, ".2f")]
        for t in threads:
            s = v["latency"].get(t)
            row.append("—" if s is None else _timing(s, emulated, None))
        e2e = v["e2e"]
        row += [_timing(e2e["total"]["p50"], emulated, ".2f"), _timing(e2e["rtf"], emulated, ".4f"),
                _timing(cold.get("cold_start_s"), emulated, ".2f") if "error" not in cold else "error",
                _timing(cold.get("peak_rss_mb"), emulated, ".0f"), _arena(v.get("tflm") or {})]
        unmodelled = "*" if "int16_activations" in v["mcu_estimate"] else ""
        row += [f"~{v['mcu_estimate'][c]['ms']:.2f}{unmodelled}" for c in _MCU_CORES]
        rows.append(row)
    return ["## Variants", ""] + _md_rows(rows)


def _peer_table(result, emulated):
    peers = result.get("peers") or []
    if not peers:
        return []
    rows = [["peer", "version", "weights", "load s", "p50/p90/p99 ms @1T", "e2e ms/clip p50"]]
    rows.append(["---"] * len(rows[0]))
    for p in peers:
        if "skipped" in p:
            rows.append([p["name"], f"skipped: {p['skipped']}", "", "", "", ""])
            continue
        weights = "random (timing only)" if p["weights"].startswith("random") else "bundle's float weights"
        rows.append([p["name"], p["version"], weights, _timing(p["load_s"], emulated, ".2f"),
                     _timing(p["latency"], emulated, None), _timing(p["e2e"]["total"]["p50"], emulated, ".2f")])
    return ["## Peers (float model in other frameworks, same windows and front end)", ""] + _md_rows(rows) + [""]


def _against_peers(result, emulated):
    """Each integer variant's time per window against each float peer's, the end-to-end
    split and the machine's load: figures to act on, with no pass/fail against targets the
    user never set."""
    peers = [p for p in result.get("peers") or [] if "latency" in p]
    integer = [v for v in result["variants"] if v.get("quantized") and "1" in v["latency"]]
    if emulated or not peers or not integer:
        return []
    names = [p["name"] for p in peers]
    ratios = [["integer model", *names], ["---"] * (len(names) + 1)]
    for v in integer:
        ratios.append([_variant_label(v), *(f"{v['latency']['1']['p50'] / p['latency']['p50']:.2f}" for p in peers)])
    split = [["model", "decode", "features", "inference", "total"], ["---"] * 5]
    for row in result["variants"] + peers:
        e = row["e2e"]
        split.append([row["name"], *(f"{e[k]:.2f}" for k in ("decode_ms", "features_ms", "inference_ms", "total_ms"))])
    return [
        "## Integer models against the float peers (1 thread)", "",
        f"Machine load while timing: {_load_text(result.get('load_average'))}.", "",
        "Time per model window, integer model ÷ peer (above 1: the TFLite model is the slower):", "",
        *_md_rows(ratios), "",
        "End to end per clip, mean ms (every row runs the same decode and NumPy front end):", "",
        *_md_rows(split), "",
        *(f"- {sentence}" for sentence in _speed_sentences(integer, peers, result["variants"] + peers)), "",
    ]


def _variant_label(v):
    invokes = v.get("invokes_per_window", 1)
    profile = "full unroll" if v["profile"] == "full" else v["profile"]
    return f"{v['name']} ({profile}, {invokes} invoke{'s' if invokes != 1 else ''} per window)"


def _speed_sentences(integer, peers, rows):
    """Plain statements of which model is faster per window, and why a chunked one is slow."""
    sentences = []
    for v in integer:
        time = v["latency"]["1"]["p50"]
        faster = [p for p in peers if p["latency"]["p50"] < time]
        slower = [p for p in peers if p["latency"]["p50"] >= time]
        parts = [f"{verb} than {', '.join(p['name'] for p in group)} ({_ms_range(group)})"
                 for verb, group in (("slower", faster), ("faster", slower)) if group]
        text = f"`{v['name']}` takes {time:.3f} ms per window: {'; '.join(parts)}."
        if v["profile"] == "chunked" and faster:
            text += (f" It makes {v.get('invokes_per_window')} interpreter invokes per window, each with a fixed "
                     "cost: the chunked profile is built for a microcontroller's small arena, not for speed on a host.")
        sentences.append(text)
    if not any(v["profile"] == "full" for v in integer):
        sentences.append("This bundle has no full-unroll integer model (one invoke per window, the faster profile "
                         "on a host); `sertiny export` ships one unless `--no-full`.")
    shares = [(r["e2e"]["decode_ms"] + r["e2e"]["features_ms"]) / r["e2e"]["total_ms"] for r in rows]
    front = [r["e2e"]["decode_ms"] + r["e2e"]["features_ms"] for r in rows]
    sentences.append(f"Decode and features, the same code in every row, take {min(front):.2f}-{max(front):.2f} ms "
                     f"per clip, {min(shares):.0%}-{max(shares):.0%} of the end-to-end time: a faster model "
                     "shortens only the rest.")
    return sentences


def _ms_range(peers):
    times = sorted(p["latency"]["p50"] for p in peers)
    return f"{times[0]:.3f} ms" if len(times) == 1 else f"{times[0]:.3f}-{times[-1]:.3f} ms"


def _md_rows(rows):
    return ["| " + " | ".join(r) + " |" for r in rows]


def _notes(result, plot_note):
    lines = ["## Notes", "",
             "- Latency: one model window (quantise, invoke, dequantise) after warm-up; "
             "`@nT` = interpreter threads. e2e = decode + resample + NumPy features + all windows of the clip "
             "(median over clips; the decode/features/inference split above is the mean). "
             "RTF = total processing time / total audio duration.",
             "- Cold start: spawn of a fresh `sertiny infer` process to its first label (Python start, imports, "
             "bundle load, one clip); peak RSS is that process's maximum resident set." + _heavy_text(result),
             "- MACs: multiply-accumulates of weight ops counted from the model's tensors (`+`: loop bodies not seen).",
             f"- TFLM arena: {ARENA_METHOD} (`sertiny.export.tflm.arena_size`): the bundle's figure, as its model "
             "card gives it, or measured here the same way for a variant whose bundle has none.",
             "- Cortex-M figures are **estimates, not measurements**: cycles = ops x dispatch overhead + MACs x "
             "cycles/MAC + element-wise values x cycles/value (more for sigmoid/tanh/softmax), divided by the clock; "
             "the per-core constants and their basis are in `sertiny/bench/mcu.py` (expect within ~2x; flash wait "
             "states make real boards slower). `*`: an int16x8 model, costed with the int8 kernels' figures (its s16 "
             "kernels are not modelled and are expected slower: read it as a lower bound)."]
    if plot_note:
        lines.append(f"- {plot_note}")
    return lines


def _timing(value, emulated, fmt):
    if emulated:
        return "emulated"
    if value is None:
        return "—"
    if isinstance(value, dict):
        return f"{value['p50']:.3f} / {value['p90']:.3f} / {value['p99']:.3f}"
    return _num(value, fmt)


def _num(value, fmt):
    return "—" if value is None else format(value, fmt)


def _arena(tflm):
    if "arena_bytes" in tflm:
        return f"{tflm['arena_bytes']:,}"
    return "—" if "skipped" in tflm or not tflm else "error"


def _heavy_text(result):
    """Which heavy frameworks the cold-start process imported (the device path should import none)."""
    seen = [v["cold_start"]["heavy_modules"] for v in result["variants"]
            if isinstance((v.get("cold_start") or {}).get("heavy_modules"), list)]
    if not seen:
        return ""
    imported = sorted({m for modules in seen for m in modules})
    return (f" It imported {', '.join(imported)}." if imported
            else " It imported none of TensorFlow, Keras, JAX, librosa, PyTorch or ONNX Runtime.")


def plot_pareto(results, path, *, title="sertiny bench"):
    """UAR against 1-thread p50 latency, marker area proportional to file size.

    One colour per device; emulated runs and variants without a UAR are not plotted
    (the subtitle says how many were left out). The Pareto front (no other point both
    faster and more accurate) is drawn per device.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    left_out = 0
    all_points = [_plot_points(r) for r in results]
    biggest = max((p[3] for points in all_points for p in points), default=1)
    for i, (result, points) in enumerate(zip(results, all_points)):
        left_out += len(result["variants"]) - len(points)
        if not points:
            continue
        colour = f"C{i % 10}"
        xs, ys, sizes = zip(*[(p[1], p[2], p[3]) for p in points])
        ax.scatter(xs, ys, s=[40 + 900 * size / biggest for size in sizes], color=colour, alpha=0.55,
                   label=result["device"]["name"], edgecolors="black")
        for name, x, y, size in points:
            kb = f"{size / 1024:.0f} KB"
            ax.annotate(f"{name}\n{kb}", (x, y), textcoords="offset points", xytext=(12, -4), fontsize=8)
        front = _pareto_front(points)
        ax.plot([p[1] for p in front], [p[2] for p in front], color=colour, linestyle="--", linewidth=1)
    ax.margins(x=0.25, y=0.15)
    _log_ms_axis(ax)
    _honest_uar_range(ax, [p[2] for points in all_points for p in points])
    ax.set_xlabel("inference latency p50 per window, 1 thread (ms, log)")
    ax.set_ylabel("UAR (bundle metrics)")
    note = f" ({left_out} variant(s) without UAR or emulated, not shown)" if left_out else ""
    ax.set_title(title + note, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if ax.collections:
        legend = ax.legend(title="device (marker area ∝ file size)", fontsize=8, title_fontsize=8, loc="best",
                           markerscale=0.5)
        for handle in legend.legend_handles:
            handle.set_sizes([40])
    else:
        ax.text(0.5, 0.5, "no variant has both a UAR and a real timing", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


# UAR differences smaller than this are drawn within a range this tall, so that a fraction
# of a point does not fill the plot's height.
MIN_UAR_RANGE = 0.06


def _log_ms_axis(ax):
    """Log-scale latency with plain labels at 1-2-5 steps and none on the minor ticks
    (matplotlib's default labels every minor tick when the range is short, and they overlap)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _honest_uar_range(ax, uars):
    if not uars:
        return
    low, high = ax.get_ylim()
    if high - low < MIN_UAR_RANGE:
        middle = (min(uars) + max(uars)) / 2
        ax.set_ylim(middle - MIN_UAR_RANGE / 2, middle + MIN_UAR_RANGE / 2)


def _plot_points(result):
    if result["device"].get("emulated"):
        return []
    points = []
    for v in result["variants"]:
        if v.get("uar") is not None and "1" in v["latency"]:
            points.append((v["name"], v["latency"]["1"]["p50"], v["uar"], v["file_bytes"]))
    return points


def _pareto_front(points):
    """Points no other point beats on both latency (lower) and UAR (higher), by latency."""
    front, best = [], -1.0
    for p in sorted(points, key=lambda p: (p[1], -p[2])):
        if p[2] > best:
            front.append(p)
            best = p[2]
    return front


def compare(paths, out_dir):
    """Merge bench.json files from several devices into ``compare.md``/``.json``/``.png``.

    Returns the list of paths written.
    """
    results = [load_result(p) for p in paths]
    out_dir = Path(out_dir)
    written = [out_dir / "compare.json", out_dir / "compare.md"]
    atomic_write_json(written[0], {"schema": "sertiny-bench-compare", "runs": results,
                                   "sources": [str(p) for p in paths]})
    note = _try_plot(results, out_dir / "compare.png", title="sertiny bench: devices compared")
    if note is None:
        written.append(out_dir / "compare.png")
    atomic_write_text(written[1], format_compare(results, paths, plot_note=note))
    return written


def format_compare(results, paths, *, plot_note=None):
    """One table with a row per (device, variant) and the device each run recorded."""
    lines = ["# sertiny bench: devices compared", ""]
    for path, r in zip(paths, results):
        lines.append(f"- **{r['device']['name']}** ({Path(path).name}, bundle {r['bundle']['name']}, "
                     f"{r['created']}): {_device_text(r['device'])}")
    lines += ["", "| device | variant | size KB | UAR | p50 ms @1T | p99 ms @1T | e2e ms/clip p50 | RTF | "
              "cold start s | peak RSS MB |", "|" + " --- |" * 10]
    for r in results:
        emulated = r["device"].get("emulated")
        for v in r["variants"]:
            lat = v["latency"].get("1") or {}
            cold = v.get("cold_start") or {}
            lines.append("| " + " | ".join([
                r["device"]["name"], v["name"], f"{v['file_bytes'] / 1024:.1f}", _num(v.get("uar"), ".4f"),
                _timing(lat.get("p50"), emulated, ".3f"), _timing(lat.get("p99"), emulated, ".3f"),
                _timing(v["e2e"]["total"]["p50"], emulated, ".2f"), _timing(v["e2e"]["rtf"], emulated, ".4f"),
                _timing(cold.get("cold_start_s"), emulated, ".2f"), _timing(cold.get("peak_rss_mb"), emulated, ".0f"),
            ]) + " |")
    lines.append("")
    if any(r["device"].get("emulated") for r in results):
        lines.append("Emulated runs: timings and memory are not shown; under qemu they say nothing about the "
                     "device it emulates.")
    if plot_note:
        lines.append(plot_note)
    return "\n".join(lines) + "\n"

