"""Microcontroller latency ESTIMATE from a model's static cost (never a measurement).

Cost model (v1)::

    cycles = ops * op_overhead
           + MACs * cycles_per_mac
           + arith_elements * cycles_per_element
           + transcendental_elements * cycles_per_transcendental
           + layout_elements * cycles_per_copy
    latency = cycles / clock

Per-core constants are for TensorFlow Lite Micro with the CMSIS-NN kernels (int8) or the
optimised float reference kernels (float32), from these assumptions:

- Cortex-M4 (ARMv7E-M + DSP, single-issue): int8 MACs run on SMLAD, two 16-bit MACs per
  instruction, but every 4 weights also need a load and two sign-extensions, so CMSIS-NN's
  fully-connected loop sustains about 1 cycle per MAC. Float32 (FPv4-SP) issues one VFMA
  per cycle but each needs two operand loads: about 3 cycles per MAC.
- Cortex-M7 (dual-issue, 64-bit loads, FPv5): roughly twice the M4 per clock, 0.5 cycles
  per int8 MAC and 1.5 per float32 MAC.
- Every op costs the interpreter's dispatch plus the kernel's set-up (a few thousand
  cycles on an M4 in published TFLM profiles); requantising element-wise int8 arithmetic
  costs a few cycles per value; int8 sigmoid/tanh/softmax use fixed-point polynomial or
  table kernels (~20 cycles per value on an M4), float ones call ``expf`` (~60).
- Memory is assumed to be on-chip SRAM/TCM with no wait states; flash wait states on
  weights and caches missing on an M7 make a real board slower.

An int16x8 model (16-bit activations, int8 weights) is costed like an int8 one: nothing
here measures CMSIS-NN's s16 kernels, which move twice the activation bytes and
accumulate in 64 bits, so its estimate carries ``"int16_activations": "not modelled"``
and is best read as a lower bound.

Expect the real figure within about a factor of two of the estimate; measure on the
board (TFLM's ``MicroProfiler``) before relying on it.
"""

import dataclasses

COST_MODEL_VERSION = "1"


@dataclasses.dataclass(frozen=True)
class CoreModel:
    """Cycle costs of one microcontroller core (see the module docstring for their basis)."""

    name: str
    clock_hz: float
    op_overhead: float
    mac_int8: float
    mac_f32: float
    element_int8: float
    element_f32: float
    transcendental_int8: float
    transcendental_f32: float
    copy: float


CORES = (
    CoreModel("Cortex-M4 @ 80 MHz", 80e6, op_overhead=3000, mac_int8=1.0, mac_f32=3.0, element_int8=4.0,
              element_f32=3.0, transcendental_int8=20.0, transcendental_f32=60.0, copy=1.0),
    CoreModel("Cortex-M7 @ 480 MHz", 480e6, op_overhead=1500, mac_int8=0.5, mac_f32=1.5, element_int8=2.0,
              element_f32=1.5, transcendental_int8=10.0, transcendental_f32=30.0, copy=0.5),
)


def estimate(cost, *, quantized, activation_bits=8, cores=CORES):
    """Estimated latency per core for a :func:`sertiny.bench.graph.model_cost` result.

    Args:
        cost: dict with ``ops``, ``macs`` and ``elements``.
        quantized: True for an int8 model (int8 kernel costs), False for float32.
        activation_bits: 16 for an int16x8 model: costed as int8, and marked as such.

    Returns:
        ``{core name: {"ms": float, "cycles": int, "estimate": True}}`` plus a
        ``"cost_model"`` entry naming this model's version.
    """
    out = {}
    for core in cores:
        e = cost["elements"]
        cycles = (
            cost["ops"] * core.op_overhead
            + cost["macs"] * (core.mac_int8 if quantized else core.mac_f32)
            + e.get("arith", 0) * (core.element_int8 if quantized else core.element_f32)
            + e.get("transcendental", 0) * (core.transcendental_int8 if quantized else core.transcendental_f32)
            + e.get("layout", 0) * core.copy
        )
        out[core.name] = {"ms": round(1e3 * cycles / core.clock_hz, 3), "cycles": int(cycles), "estimate": True}
    out["cost_model"] = f"sertiny.bench.mcu v{COST_MODEL_VERSION} (estimate, not measured)"
    if quantized and activation_bits == 16:
        out["int16_activations"] = "not modelled"
    return out
