#!/usr/bin/env bash
# Set up speakimg on a fresh Debian/Ubuntu machine: system packages, a virtualenv in .venv with the
# CPU build of torch (constraints.txt) and the package with its dev extra. Idempotent: a rerun is fast.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium: the headless browser of the app's end-to-end test (tests/test_app.py, driven by Playwright)
APT_PACKAGES=(espeak-ng festival festvox-us-slt-hts ffmpeg chromium)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "[setup] installing system packages: ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.speakimg-installed"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing torch (CPU build) and speakimg[dev] into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt torch
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]"
  echo "$want" > "$stamp"
fi
echo "[setup] ready: $(.venv/bin/python -c 'import torch, speakimg; print("speakimg", speakimg.__version__, "torch", torch.__version__)')"
