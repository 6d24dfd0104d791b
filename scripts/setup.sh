#!/usr/bin/env bash
# Set up napari-mmrecon on a fresh Debian/Ubuntu machine: the system packages that headless napari
# needs for the tests (Xvfb, OpenGL, Qt's xcb libraries), the CPU build of torch and this package
# with its test extras. README.md's first command runs this; CI (.ci/run) runs exactly this too.
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES="xvfb xauth libgl1 libegl1 libgl1-mesa-dri libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4
    libxcb-keysyms1 libxcb-shape0 libxcb-image0 libxcb-render-util0 libxcb-randr0 libxcb-xinerama0
    libxcb-xfixes0 libdbus-1-3 libfontconfig1"

if command -v apt-get >/dev/null; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    # shellcheck disable=SC2086
    if ! dpkg -s $SYSTEM_PACKAGES >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        $SUDO apt-get update -qq
        # shellcheck disable=SC2086
        $SUDO apt-get install -y -qq --no-install-recommends $SYSTEM_PACKAGES >/dev/null
    fi
elif ! command -v xvfb-run >/dev/null; then
    echo "setup: no apt-get here; install Xvfb (xvfb-run) and OpenGL/Qt xcb libraries for the widget tests" >&2
fi

python -m pip install --quiet --upgrade pip
# The CPU build of torch (pinned here; the package itself asks for a range).
python -m pip install --quiet torch==2.13.0
python -m pip install --quiet -e ".[test]"
