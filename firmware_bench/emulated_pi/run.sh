#!/usr/bin/env bash
# Run sertiny's Raspberry Pi path on the Pi's own software stack, emulated on any Linux host.
#
# Raspberry Pi OS Bookworm (64-bit) is Debian 12 arm64 with Python 3.11. This script
# assembles that stack as a user gets it - Debian's arm64 python3.11 and the libraries it
# links, a virtual environment, and `pip install "sertiny[pi]" sounddevice` of a wheel
# built from this repository, resolved by pip itself on the emulated Python (so the
# environment markers see aarch64 and 3.11, and whatever pip picks is what is tested) -
# in a cache directory, and runs `sertiny` there under qemu-aarch64-static (user-mode
# emulation, no binfmt needed). Then, by mode:
#
#   compare (default): `sertiny infer` on BUNDLE and AUDIO, checked against the host:
#     1. labels (the CI check): the Pi stack and the same numpy and TFLite runtime on the
#        host (x86_64 wheels of the versions pip picked for the Pi), both with
#        `--kernels reference`, must give the same label for every clip (near-ties
#        excepted and listed); how many clips also have bit-identical probabilities is printed.
#     2. report: the Pi stack with its default (optimized) kernels against the host's
#        default runtime (LiteRT). Different int8 kernel builds round the last bit
#        differently and an int8 LSTM carries it through every step, so a few labels may
#        differ; the script prints how many, and does not fail on it.
#   --readme: the commands of firmware_bench/pi/README.md, as written, in a home directory
#     laid out as the README's (clip.wav, clips/, bundles/NAME), then check.sh (what
#     setup.sh ends with); fails unless every command succeeds and the last one prints a label.
#
# Usage:
#   firmware_bench/emulated_pi/run.sh [--variant NAME] [--out DIR] [--no-host] BUNDLE AUDIO...
#   firmware_bench/emulated_pi/run.sh --readme [--out DIR] BUNDLE AUDIO...
#
# Needs: qemu-user-static (apt-get install qemu-user-static), apt and dpkg (Debian/Ubuntu
# host, root for 'dpkg --add-architecture arm64' the first time), python3 with pip on the
# host (python3.11 for the host-side comparison), network access to PyPI and Debian the
# first time. Everything downloaded is cached under ${SERTINY_CACHE:-~/.cache/sertiny}/pi-stack/;
# a second run downloads nothing (a changed pyproject.toml resolves the stack again).
#
# Timings under emulation mean nothing for a real Pi; this script never reports them.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

# Debian 12's python3.11 and what it links. Raspberry Pi OS Bookworm runs the same.
DEBIAN_PACKAGES=(
  python3.11-minimal libpython3.11-minimal libpython3.11-stdlib
  libc6 libgcc-s1 libstdc++6 zlib1g libexpat1 libffi8 libssl3 libbz2-1.0 liblzma5
  libuuid1 libsqlite3-0 libncursesw6 libtinfo6 libreadline8 libcrypt1
)
# The pip a Bookworm venv starts with (python3.11's ensurepip); run from its wheel, since
# ensurepip would start a subprocess, which an emulated process cannot (no binfmt).
PIP_VERSION=23.0.1
# What the Pi README installs beside sertiny[pi].
EXTRA_PACKAGES=(sounddevice)

say() { printf '[emulated-pi] %s\n' "$*" >&2; }
die() { printf '[emulated-pi] error: %s\n' "$*" >&2; exit 2; }

MODE=compare
VARIANT=""
OUT=""
HOST=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --readme) MODE=readme; shift ;;
    --variant) VARIANT="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --no-host) HOST=0; shift ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
done
[[ $# -ge 2 ]] || die "usage: $0 [--readme] [--variant NAME] [--out DIR] [--no-host] BUNDLE AUDIO..."
BUNDLE="$1"; shift
[[ -f "$BUNDLE/sertiny.json" ]] || die "$BUNDLE is not a bundle (no sertiny.json); make one with 'sertiny export'"

QEMU="$(command -v qemu-aarch64-static || true)"
[[ -n "$QEMU" ]] || die "qemu-aarch64-static not found; install it with: apt-get install qemu-user-static"

STACKS="${SERTINY_CACHE:-$HOME/.cache/sertiny}/pi-stack"
ROOT_KEY="$(printf '%s\n' "${DEBIAN_PACKAGES[@]}" | sha256sum | cut -c1-12)"
ROOT="$STACKS/root-$ROOT_KEY"
# The environment is resolved again whenever what pip resolves from changes.
ENV_KEY="$(cat "$REPO/pyproject.toml" <(printf '%s\n' "$ROOT_KEY" "$PIP_VERSION" "${EXTRA_PACKAGES[@]}") \
  | sha256sum | cut -c1-12)"
VENV="$STACKS/venv-$ENV_KEY"
PIP_WHEEL_DIR="$STACKS/pip-$PIP_VERSION"
# The host's same-stack run needs the Pi's Python minor version: tflite-runtime 2.14 has
# no wheels past 3.11.
HOST_PY="${SERTINY_HOST_PYTHON:-python3}"
# numpy warns at import that qemu flushes subnormals to zero; the device path never
# depends on subnormals, and the warning would drown the output.
EMULATED_ENV=(SERTINY_EMULATED=qemu-aarch64-static PYTHONNOUSERSITE=1
              PYTHONWARNINGS="ignore:The value of the smallest subnormal:UserWarning")

emulated() {  # emulated() PROGRAM ARGS...: an aarch64 program of the root, e.g. the venv's python
  env "${EMULATED_ENV[@]}" "$QEMU" -L "$ROOT" "$@"
}

assemble_root() {
  if [[ -f "$ROOT/.complete" ]]; then
    say "Debian 12 arm64 root: cached at $ROOT"
    return
  fi
  local debs="$STACKS/debs-$ROOT_KEY"
  say "Debian 12 arm64 root: downloading ${#DEBIAN_PACKAGES[@]} packages into $debs"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    say "  adding the arm64 architecture to dpkg (dpkg --add-architecture arm64)"
    dpkg --add-architecture arm64 || die "could not add arm64 to dpkg; run as root"
  fi
  if ! apt-cache show python3.11-minimal:arm64 >/dev/null 2>&1; then
    say "  apt-get update (fetching the arm64 package lists)"
    apt-get update -qq || die "apt-get update failed"
  fi
  rm -rf "$debs" "$ROOT"
  mkdir -p "$debs" "$ROOT"
  (cd "$debs" && apt-get download -qq "${DEBIAN_PACKAGES[@]/%/:arm64}" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
  local n
  n=$(find "$debs" -name '*.deb' | wc -l)
  [[ "$n" -eq "${#DEBIAN_PACKAGES[@]}" ]] || die "downloaded $n of ${#DEBIAN_PACKAGES[@]} packages; see apt's messages above"
  say "  unpacking into $ROOT (dpkg-deb -x: no maintainer scripts run)"
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$ROOT"; done
  touch "$ROOT/.complete"
}

build_wheel() {
  # Built on the host: building under emulation would need a build subprocess. Built from a
  # copy, so the repository gets no build/ or egg-info.
  local src="$WORK/src"
  mkdir -p "$src" "$WORK/dist"
  cp -r "$REPO/pyproject.toml" "$REPO/README.md" "$REPO/sertiny" "$src/"
  find "$src" -name __pycache__ -prune -exec rm -rf {} +
  python3 -m pip wheel -q --disable-pip-version-check --no-deps -w "$WORK/dist" "$src" >"$WORK/wheel.log" 2>&1 \
    || { cat "$WORK/wheel.log" >&2; die "building sertiny's wheel failed"; }
  WHEEL="$(ls "$WORK"/dist/sertiny-*.whl)"
  say "built $(basename "$WHEEL") from $REPO"
}

assemble_venv() {
  local pip=("$PIP_WHEEL_DIR/pip-$PIP_VERSION-py3-none-any.whl/pip")
  if [[ ! -f "${pip[0]%/pip}" ]]; then
    python3 -m pip download -q --disable-pip-version-check --no-deps -d "$PIP_WHEEL_DIR" "pip==$PIP_VERSION" \
      2> >(grep -v '^WARNING: Location' >&2) || die "could not download pip $PIP_VERSION"
  fi
  if [[ -f "$VENV/.complete" ]]; then
    say "virtual environment: cached at $VENV (resolved for this pyproject.toml); reinstalling sertiny"
    emulated "$VENV/bin/python" "${pip[@]}" install -q --disable-pip-version-check --no-deps \
      --force-reinstall "$WHEEL" || die "reinstalling sertiny's wheel under emulation failed"
    return
  fi
  say "virtual environment: python3.11 -m venv $VENV (under qemu)"
  rm -rf "$VENV"
  emulated "$ROOT/usr/bin/python3.11" -m venv --without-pip "$VENV" || die "python3.11 -m venv failed under emulation"
  say "  pip install \"sertiny[pi]\" ${EXTRA_PACKAGES[*]} (pip $PIP_VERSION under qemu: it resolves for aarch64, Python 3.11)"
  emulated "$VENV/bin/python" "${pip[@]}" install -q --disable-pip-version-check --only-binary=:all: \
    "$WHEEL[pi]" "${EXTRA_PACKAGES[@]}" 2> >(grep -v '^WARNING: Location' >&2) \
    || die "pip install of sertiny[pi] failed under emulation"
  touch "$VENV/.complete"
}

stack_line() {
  emulated "$VENV/bin/python" - <<'PY'
import platform
from importlib import metadata

names = ("numpy", "tflite-runtime", "ai-edge-litert", "soundfile", "soxr")
found = []
for name in names:
    try:
        found.append(f"{name} {metadata.version(name)}")
    except metadata.PackageNotFoundError:
        pass
print(f"Python {platform.python_version()} {platform.machine()}, " + ", ".join(found))
PY
}

pi_version() {  # pi_version DIST: the version pip installed on the Pi stack
  emulated "$VENV/bin/python" -c 'import sys; from importlib import metadata; print(metadata.version(sys.argv[1]))' "$1"
}

assemble_host_site() {
  local numpy runtime version
  numpy="$(pi_version numpy)"
  runtime="$(pi_version tflite-runtime)" || die "the Pi stack has no tflite-runtime; the host check compares against it"
  HOST_SITE="$STACKS/host-site-$(uname -m)-numpy$numpy-tflite$runtime"
  if [[ -f "$HOST_SITE/.complete" ]]; then
    say "host $(uname -m) wheels of the Pi's numpy $numpy and tflite-runtime $runtime: cached at $HOST_SITE"
    return
  fi
  version="$("$HOST_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  [[ "$version" == "3.11" ]] || die "the host check needs Python 3.11 like the Pi (got $version from $HOST_PY); set SERTINY_HOST_PYTHON"
  say "host $(uname -m) wheels: downloading numpy==$numpy tflite-runtime==$runtime (the Pi's versions)"
  rm -rf "$HOST_SITE" "$HOST_SITE.wheels"
  mkdir -p "$HOST_SITE.wheels" "$HOST_SITE"
  "$HOST_PY" -m pip download -q --disable-pip-version-check --only-binary=:all: --no-deps \
    -d "$HOST_SITE.wheels" "numpy==$numpy" "tflite-runtime==$runtime" \
    2> >(grep -v '^WARNING: Location' >&2) || die "pip download of the host wheels failed"
  for whl in "$HOST_SITE".wheels/*.whl; do "$HOST_PY" -m zipfile -e "$whl" "$HOST_SITE"; done
  touch "$HOST_SITE/.complete"
}

run_host_same_stack() {
  # The Pi's numpy and tflite-runtime first on the path, ahead of the host's own numpy.
  PYTHONPATH="$HOST_SITE:$REPO" "$HOST_PY" -c 'from sertiny.cli import main; main()' "$@"
}

run_emulated() {
  emulated "$VENV/bin/python" "$VENV/bin/sertiny" "$@"
}

compare_mode() {
  local infer=(infer "$BUNDLE" "$@" --json)
  [[ -n "$VARIANT" ]] && infer+=(--variant "$VARIANT")
  local compare=(python3 "$HERE/compare_predictions.py" --bundle "$BUNDLE" ${VARIANT:+--variant "$VARIANT"})
  say "running under qemu: sertiny infer $BUNDLE <$# audio paths> --json${VARIANT:+ --variant $VARIANT}"
  run_emulated "${infer[@]}" > "$OUT/emulated.jsonl" || die "sertiny infer failed under emulation (output: $OUT/emulated.jsonl)"
  say "  $(wc -l < "$OUT/emulated.jsonl") predictions -> $OUT/emulated.jsonl (emulated timings are meaningless and not reported)"
  [[ "$HOST" -eq 1 ]] || return 0
  assemble_host_site
  say "CI check: reference kernels, the Pi's tflite-runtime on both machines"
  run_emulated "${infer[@]}" --runtime tflite_runtime --kernels reference > "$OUT/emulated_reference.jsonl" \
    || die "sertiny infer --kernels reference failed under emulation"
  run_host_same_stack "${infer[@]}" --runtime tflite_runtime --kernels reference > "$OUT/host_reference.jsonl" \
    2>/dev/null || die "sertiny infer failed on the host with the Pi's numpy and tflite-runtime"
  say "report: default kernels on each machine (the Pi's tflite-runtime, the host's own runtime)"
  python3 -c 'from sertiny.cli import main; main()' "${infer[@]}" > "$OUT/host.jsonl" 2>/dev/null \
    || die "sertiny infer failed on the host"
  "${compare[@]}" --mode report --title "default kernels, host runtime vs Pi's" \
    --out "$OUT/comparison_default_kernels.json" "$OUT/host.jsonl" "$OUT/emulated.jsonl"
  "${compare[@]}" --mode labels --title "same runtime, reference kernels, x86_64 vs emulated Pi" \
    --out "$OUT/comparison.json" "$OUT/host_reference.jsonl" "$OUT/emulated_reference.jsonl"
}

readme_mode() {
  # The activated environment of the README, as seen from the host: its python and sertiny
  # are the emulated ones.
  local env="$OUT/sertiny-env"
  mkdir -p "$env/bin"
  local quoted
  quoted="$(printf '%q ' env "${EMULATED_ENV[@]}" "$QEMU" -L "$ROOT" "$VENV/bin/python")"
  printf '#!/bin/sh\nexec %s "$@"\n' "$quoted" > "$env/bin/python"
  printf '#!/bin/sh\nexec %s %q "$@"\n' "$quoted" "$VENV/bin/sertiny" > "$env/bin/sertiny"
  chmod +x "$env/bin/python" "$env/bin/sertiny"
  say "the Pi README's commands, as written, under qemu (home: $OUT/home)"
  python3 "$HERE/readme_steps.py" --readme "$REPO/firmware_bench/pi/README.md" --env "$env" \
    --bundle "$BUNDLE" --home "$OUT/home" --out "$OUT/readme_steps.json" "$@" \
    || die "a command of the Pi README failed under emulation (see above and $OUT/readme_steps.json)"
  say "setup.sh's last step: firmware_bench/pi/check.sh"
  bash "$REPO/firmware_bench/pi/check.sh" "$env" >&2 || die "check.sh failed under emulation"
}

assemble_root
WORK="$(mktemp -d -t sertiny-pi-build.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
build_wheel
assemble_venv
say "stack: $(run_emulated --version 2>&1 | head -1) on $(stack_line 2>/dev/null)"

OUT="${OUT:-$(mktemp -d -t sertiny-emulated-pi.XXXXXX)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
if [[ "$MODE" == readme ]]; then
  readme_mode "$@"
else
  compare_mode "$@"
fi
