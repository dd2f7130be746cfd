"""``BenchConfig``: what ``sertiny bench`` measures and how often (saved beside the results)."""

import dataclasses

from .._config import Config, check_bool_fields, check_choice, check_int
from ..errors import ParameterError
from ..runtime.tflite import RUNTIMES
from .peers import PEERS



@dataclasses.dataclass(frozen=True, kw_only=True)
class BenchConfig(Config):
    """Benchmark settings.

    Attributes:
        runs: timed invokes per variant and thread setting (percentiles need >= 100 for p99).
        warmup: untimed invokes first (allocations, caches, XNNPACK packing).
        max_clips: clips timed end to end (spread evenly over the sorted clip list).
        variants: bundle variants to measure; empty = all of them.
        threads: interpreter thread counts to time; 0 means all cores.
        peers: other frameworks to time the float model in, when installed.
        cold_start: measure cold start and peak RSS on a fresh ``sertiny infer`` process.
        tflm: measure the TensorFlow Lite Micro arena when tflite-micro is installed.
        runtime: force a TFLite runtime (None: the lightest installed).
        seed: seed of the random stand-in weights used by peers when the bundle's
            float weights cannot be found.
    """

    runs: int = 200
    warmup: int = 20
    max_clips: int = 20
    variants: tuple = ()
    threads: tuple = (1, 0)
    peers: tuple = PEERS
    cold_start: bool = True
    tflm: bool = True
    runtime: str | None = None
    seed: int = 0

    def __post_init__(self):
        owner = "BenchConfig"
        check_bool_fields(self)
        check_int(owner, "runs", self.runs, min_value=1)
        check_int(owner, "warmup", self.warmup, min_value=0)
        check_int(owner, "max_clips", self.max_clips, min_value=1)
        # JSON gives lists; keep tuples so the config stays hashable and compares equal.
        for name in ("variants", "threads", "peers"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for t in self.threads:
            check_int(owner, "threads", t, min_value=0)
        if not self.threads:
            raise ParameterError(f"The 'threads' parameter of {owner} must list at least one thread count.")
        for peer in self.peers:
            check_choice(owner, "peers", peer, PEERS)
        if self.runtime is not None:
            check_choice(owner, "runtime", self.runtime, RUNTIMES)
        check_int(owner, "seed", self.seed, min_value=0)
