#!/usr/bin/env bash
# Install sertiny's light device path on a Raspberry Pi (Raspberry Pi OS Bookworm, 64-bit).
#
#   SERTINY_SRC=~/sertiny bash firmware_bench/pi/setup.sh     # SERTINY_SRC: a copy of the repo
#   SERTINY_ENV=~/sertiny-env (default) is the virtual environment created or reused.
#
# Idempotent: run it again after updating the copy of the repository. It ends by classifying
# a clip with the built-in model (check.sh) and fails if that fails.
set -euo pipefail

SRC="${SERTINY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
ENV="${SERTINY_ENV:-$HOME/sertiny-env}"
say() { printf '[sertiny-pi] %s\n' "$*"; }

[[ -f "$SRC/pyproject.toml" ]] || { say "error: $SRC is not a copy of the sertiny repository (set SERTINY_SRC)"; exit 2; }
case "$(uname -m)" in
  aarch64) ;;
  *) say "warning: $(uname -m) is not a 64-bit Pi OS; the [pi] extra picks the TFLite runtime by platform" ;;
esac

if ! dpkg -s python3-venv libportaudio2 >/dev/null 2>&1; then
  say "installing python3-venv and libportaudio2 (PortAudio, for 'sertiny listen') with apt"
  sudo apt-get install -y python3-venv libportaudio2
fi
if [[ ! -x "$ENV/bin/python" ]]; then
  say "creating the virtual environment $ENV"
  python3 -m venv "$ENV"
fi
say "installing sertiny[pi] and sounddevice from $SRC"
"$ENV/bin/pip" install --quiet --upgrade "$SRC[pi]" sounddevice
# Fails (and so does this script) unless the built-in model labels a clip.
bash "$SRC/firmware_bench/pi/check.sh" "$ENV"
say "done. Activate with: source $ENV/bin/activate; then: sertiny infer BUNDLE CLIP.wav"
