#!/usr/bin/env bash
# Install rdtflow and its pinned dependencies into the active Python environment, and the
# Debian packages that render the ALOHA scenes headless (MuJoCo through EGL, Mesa's software
# renderer: no display and no GPU needed).
set -euo pipefail
cd "$(dirname "$0")/.."
EGL_PACKAGES=(libegl1 libegl-mesa0 libopengl0 libgl1 libgl1-mesa-dri libgbm1)
if command -v dpkg >/dev/null && ! dpkg -s "${EGL_PACKAGES[@]}" >/dev/null 2>&1; then
    if [[ $(id -u) == 0 ]]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${EGL_PACKAGES[@]}"
    else
        echo "rendering the ALOHA scenes (sim.env: aloha-*) needs: sudo apt-get install ${EGL_PACKAGES[*]}" >&2
    fi
fi
python -m pip install --quiet --upgrade pip
# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[test]"
