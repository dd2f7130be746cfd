#!/usr/bin/env bash
# Check an installed sertiny device stack end to end: classify a clip with the built-in model.
#
#   bash firmware_bench/pi/check.sh [ENV]      # ENV: the virtual environment (default ~/sertiny-env)
#   SERTINY_CHECK_CLIP=clip.wav bash ...       # a clip of your own instead of a synthetic one
#
# 'sertiny --version' passes even when the TFLite runtime cannot be imported (a numpy it was
# not built for, a missing library); only running the model shows it. Exits non-zero, with
# sertiny's own error, when the clip does not get a label. setup.sh runs it last.
set -euo pipefail

ENV="${1:-${SERTINY_ENV:-$HOME/sertiny-env}}"
say() { printf '[sertiny-pi] %s\n' "$*"; }
fail() { say "check FAILED: $*"; exit 1; }

[[ -x "$ENV/bin/sertiny" ]] || fail "$ENV/bin/sertiny not found; install sertiny[pi] into $ENV first (setup.sh)"
clip="${SERTINY_CHECK_CLIP:-}"
if [[ -z "$clip" ]]; then
  clip="$(mktemp -d -t sertiny-check.XXXXXX)/voice.wav"
  # Three seconds of a voiced-like tone at 16 kHz: any label will do, what matters is
  # that decoding, the front end and the TFLite model all run.
  "$ENV/bin/python" - "$clip" <<'PY' || fail "could not write a test clip with numpy and soundfile"
import sys

import numpy as np
import soundfile as sf

sr = 16000
t = np.arange(3 * sr) / sr
f0 = 140 + 15 * np.sin(2 * np.pi * 3 * t)
y = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / sr) + 0.01 * np.random.default_rng(0).standard_normal(t.size)
sf.write(sys.argv[1], y.astype(np.float32), sr, subtype="PCM_16")
PY
fi
if ! out="$("$ENV/bin/sertiny" infer --json "$clip")"; then
  fail "'sertiny infer $clip' failed (its error is above); the install is not usable"
fi
label="$(printf '%s\n' "$out" | "$ENV/bin/python" -c 'import json, sys; print(json.loads(sys.stdin.readline()).get("label") or "")')"
[[ -n "$label" ]] || fail "'sertiny infer' gave no label: $out"
say "check: the built-in model classified $(basename "$clip") as '$label' ($("$ENV/bin/sertiny" --version))"
