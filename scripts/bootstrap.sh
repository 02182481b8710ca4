#!/usr/bin/env bash
# Installs what is missing (Debian 12), configures and builds into build/.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(gcc meson ninja-build pkg-config libglib2.0-dev libjson-glib-dev libopenblas-dev
          zlib1g-dev libcairo2-dev libgtk-4-dev dataset-fashion-mnist xvfb xauth xdotool)
# The fuzz targets (scripts/fuzz.sh, -Dfuzzing=true) need clang and libFuzzer.
if [ -n "${SNN_FUZZING:-}" ]; then
  packages+=(clang libfuzzer-14-dev)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

# --deps-only: the packages, no build (for scripts that build elsewhere).
if [ "${1:-}" = "--deps-only" ]; then
  exit 0
fi
if [ ! -f build/build.ninja ]; then
  meson setup build --buildtype=release
fi
ninja -C build
