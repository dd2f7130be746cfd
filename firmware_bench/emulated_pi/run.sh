#!/usr/bin/env bash
# Run sertiny's Raspberry Pi path under the Pi's own software stack, emulated on any Linux host.
#
# Raspberry Pi OS Bookworm (64-bit) is Debian 12 arm64 with Python 3.11. This script
# assembles that stack - Debian's arm64 python3.11 and the libraries it links, plus the
# official aarch64 wheels of numpy and tflite-runtime from PyPI - in a cache directory,
# runs `sertiny infer` under qemu-aarch64-static (user-mode emulation, no binfmt needed),
# and checks it against the host:
#
#   1. labels (the CI check): the Pi stack and the same runtime on the host (x86_64
#      wheels of the same numpy and tflite-runtime), both with `--kernels reference`,
#      must give the same label for every clip (near-ties excepted and listed); how many
#      clips also have bit-identical probabilities is printed.
#   2. report: the Pi stack with its default (optimized) kernels against the host's
#      default runtime (LiteRT). Different int8 kernel builds round the last bit
#      differently and an int8 LSTM carries it through every step, so a few labels may
#      differ; the script prints how many, and does not fail on it.
#
# Usage:
#   firmware_bench/emulated_pi/run.sh [--variant NAME] [--out DIR] [--no-host] BUNDLE AUDIO...
#
# Needs: qemu-user-static (apt-get install qemu-user-static), apt and dpkg (Debian/Ubuntu
# host, root for 'dpkg --add-architecture arm64' the first time), python3.11 with pip on
# the host, and sertiny installed on the host for the host-side runs. Everything downloaded is cached under
# ${SERTINY_CACHE:-~/.cache/sertiny}/pi-stack/<key>/; a second run downloads nothing.
#
# Timings under emulation mean nothing for a real Pi; this script never reports them.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

# The stack, pinned. numpy stays below 2: tflite-runtime 2.14 (the last release, and the
# one whose aarch64 wheel runs under qemu; ai-edge-litert's SIGSEGVs there) was built
# against the NumPy 1.x ABI.
DEBIAN_PACKAGES=(
  python3.11-minimal libpython3.11-minimal libpython3.11-stdlib
  libc6 libgcc-s1 libstdc++6 zlib1g libexpat1 libffi8 libssl3 libbz2-1.0 liblzma5
  libuuid1 libsqlite3-0 libncursesw6 libtinfo6 libreadline8 libcrypt1
)
WHEELS=(
  numpy==1.26.4 tflite-runtime==2.14.0 soundfile==0.14.0 soxr==1.1.0 click==8.5.1 tqdm==4.70.1
)
# pip --platform takes exact tags; list the glibc versions Debian 12 (glibc 2.36) accepts.
PLATFORMS=(manylinux2014_aarch64 manylinux_2_17_aarch64 manylinux_2_24_aarch64 manylinux_2_27_aarch64
           manylinux_2_28_aarch64 manylinux_2_31_aarch64 manylinux_2_34_aarch64 manylinux_2_35_aarch64)

say() { printf '[emulated-pi] %s\n' "$*" >&2; }
die() { printf '[emulated-pi] error: %s\n' "$*" >&2; exit 2; }

VARIANT=""
OUT=""
HOST=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --variant) VARIANT="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --no-host) HOST=0; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
done
[[ $# -ge 2 ]] || die "usage: $0 [--variant NAME] [--out DIR] [--no-host] BUNDLE AUDIO..."
BUNDLE="$1"; shift
[[ -f "$BUNDLE/sertiny.json" ]] || die "$BUNDLE is not a bundle (no sertiny.json); make one with 'sertiny export'"

QEMU="$(command -v qemu-aarch64-static || true)"
[[ -n "$QEMU" ]] || die "qemu-aarch64-static not found; install it with: apt-get install qemu-user-static"

KEY="$(printf '%s\n' "${DEBIAN_PACKAGES[@]}" "${WHEELS[@]}" | sha256sum | cut -c1-12)"
CACHE="${SERTINY_CACHE:-$HOME/.cache/sertiny}/pi-stack/$KEY"
ROOT="$CACHE/root"
SITE="$CACHE/site"
HOST_SITE="$CACHE/host-site-$(uname -m)"
# The host's same-stack run needs the Pi's Python minor version: tflite-runtime 2.14 has
# no wheels past 3.11, and numpy 1.26 none past 3.12.
HOST_PY="${SERTINY_HOST_PYTHON:-python3}"

assemble_root() {
  if [[ -f "$ROOT/.complete" ]]; then
    say "Debian 12 arm64 root: cached at $ROOT"
    return
  fi
  say "Debian 12 arm64 root: downloading ${#DEBIAN_PACKAGES[@]} packages into $CACHE/debs"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    say "  adding the arm64 architecture to dpkg (dpkg --add-architecture arm64)"
    dpkg --add-architecture arm64 || die "could not add arm64 to dpkg; run as root"
  fi
  if ! apt-cache show python3.11-minimal:arm64 >/dev/null 2>&1; then
    say "  apt-get update (fetching the arm64 package lists)"
    apt-get update -qq || die "apt-get update failed"
  fi
  rm -rf "$CACHE/debs" "$ROOT"
  mkdir -p "$CACHE/debs" "$ROOT"
  (cd "$CACHE/debs" && apt-get download -qq "${DEBIAN_PACKAGES[@]/%/:arm64}" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
  local n
  n=$(find "$CACHE/debs" -name '*.deb' | wc -l)
  [[ "$n" -eq "${#DEBIAN_PACKAGES[@]}" ]] || die "downloaded $n of ${#DEBIAN_PACKAGES[@]} packages; see apt's messages above"
  say "  unpacking into $ROOT (dpkg-deb -x: no maintainer scripts run)"
  for deb in "$CACHE"/debs/*.deb; do dpkg-deb -x "$deb" "$ROOT"; done
  touch "$ROOT/.complete"
}

assemble_site() {
  if [[ -f "$SITE/.complete" ]]; then
    say "aarch64 wheels: cached at $SITE"
    return
  fi
  say "aarch64 wheels: downloading ${WHEELS[*]} (and their dependencies) from PyPI"
  rm -rf "$CACHE/wheels" "$SITE"
  mkdir -p "$CACHE/wheels" "$SITE"
  local platform_args=()
  for p in "${PLATFORMS[@]}"; do platform_args+=(--platform "$p"); done
  python3 -m pip download -q --disable-pip-version-check --only-binary=:all: --python-version 3.11 \
    --implementation cp "${platform_args[@]}" -d "$CACHE/wheels" "${WHEELS[@]}" \
    2> >(grep -v '^WARNING: Location' >&2) || die "pip download of the aarch64 wheels failed"
  say "  unpacking $(ls "$CACHE"/wheels/*.whl | wc -l) wheels into $SITE"
  for whl in "$CACHE"/wheels/*.whl; do python3 -m zipfile -e "$whl" "$SITE"; done
  touch "$SITE/.complete"
}

assemble_host_site() {
  if [[ -f "$HOST_SITE/.complete" ]]; then
    say "host $(uname -m) wheels of the same numpy and tflite-runtime: cached at $HOST_SITE"
    return
  fi
  local version
  version="$("$HOST_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  [[ "$version" == "3.11" ]] || die "the host check needs Python 3.11 like the Pi (got $version from $HOST_PY); set SERTINY_HOST_PYTHON"
  say "host $(uname -m) wheels: downloading numpy==1.26.4 tflite-runtime==2.14.0 (the Pi's versions)"
  rm -rf "$CACHE/host-wheels" "$HOST_SITE"
  mkdir -p "$CACHE/host-wheels" "$HOST_SITE"
  "$HOST_PY" -m pip download -q --disable-pip-version-check --only-binary=:all: --no-deps \
    -d "$CACHE/host-wheels" numpy==1.26.4 tflite-runtime==2.14.0 \
    2> >(grep -v '^WARNING: Location' >&2) || die "pip download of the host wheels failed"
  for whl in "$CACHE"/host-wheels/*.whl; do "$HOST_PY" -m zipfile -e "$whl" "$HOST_SITE"; done
  touch "$HOST_SITE/.complete"
}

run_host_same_stack() {
  # numpy 1.26 and tflite-runtime 2.14 first on the path, ahead of the host's own numpy.
  PYTHONPATH="$HOST_SITE:$REPO" "$HOST_PY" -c 'from sertiny.cli import main; main()' "$@"
}

run_emulated() {
  # PYTHONWARNINGS: numpy warns at import that qemu flushes subnormals to zero; the
  # device path never depends on subnormals, and the warning would drown the output.
  SERTINY_EMULATED="qemu-aarch64-static" PYTHONPATH="$REPO:$SITE" PYTHONNOUSERSITE=1 \
    PYTHONWARNINGS="ignore:The value of the smallest subnormal:UserWarning" \
    "$QEMU" -L "$ROOT" "$ROOT/usr/bin/python3.11" -c 'from sertiny.cli import main; main()' "$@"
}

assemble_root
assemble_site

say "stack: $(run_emulated --version 2>&1 | head -1) on $(SERTINY_EMULATED=1 PYTHONPATH="$SITE" "$QEMU" -L "$ROOT" \
  "$ROOT/usr/bin/python3.11" -c 'import platform, sys, numpy, tflite_runtime; print(f"Python {platform.python_version()} {platform.machine()}, numpy {numpy.__version__}, tflite-runtime {tflite_runtime.__version__}")' \
  2>/dev/null)"

OUT="${OUT:-$(mktemp -d -t sertiny-emulated-pi.XXXXXX)}"
mkdir -p "$OUT"
INFER_ARGS=(infer "$BUNDLE" "$@" --json)
[[ -n "$VARIANT" ]] && INFER_ARGS+=(--variant "$VARIANT")
COMPARE=(python3 "$HERE/compare_predictions.py" --bundle "$BUNDLE" ${VARIANT:+--variant "$VARIANT"})

say "running under qemu: sertiny infer $BUNDLE <$# audio paths> --json${VARIANT:+ --variant $VARIANT}"
run_emulated "${INFER_ARGS[@]}" > "$OUT/emulated.jsonl" || die "sertiny infer failed under emulation (output: $OUT/emulated.jsonl)"
say "  $(wc -l < "$OUT/emulated.jsonl") predictions -> $OUT/emulated.jsonl (emulated timings are meaningless and not reported)"

if [[ "$HOST" -eq 1 ]]; then
  assemble_host_site
  say "CI check: reference kernels, tflite-runtime 2.14 on both machines"
  run_emulated "${INFER_ARGS[@]}" --runtime tflite_runtime --kernels reference > "$OUT/emulated_reference.jsonl" \
    || die "sertiny infer --kernels reference failed under emulation"
  run_host_same_stack "${INFER_ARGS[@]}" --runtime tflite_runtime --kernels reference > "$OUT/host_reference.jsonl" \
    2>/dev/null || die "sertiny infer failed on the host with numpy 1.26 + tflite-runtime 2.14"
  say "report: default kernels on each machine (the Pi's tflite-runtime 2.14, the host's own runtime)"
  python3 -c 'from sertiny.cli import main; main()' "${INFER_ARGS[@]}" > "$OUT/host.jsonl" 2>/dev/null \
    || die "sertiny infer failed on the host"
  "${COMPARE[@]}" --mode report --title "default kernels, host runtime vs Pi's" \
    --out "$OUT/comparison_default_kernels.json" "$OUT/host.jsonl" "$OUT/emulated.jsonl"
  "${COMPARE[@]}" --mode labels --title "same runtime, reference kernels, x86_64 vs emulated Pi" \
    --out "$OUT/comparison.json" "$OUT/host_reference.jsonl" "$OUT/emulated_reference.jsonl"
fi
