#!/usr/bin/env bash
# Shared set-up for launch/test.sh and launch/demo.sh: installs the Debian packages Tessera builds
# against (only those missing, quietly), then configures and builds into $TESSERA_BUILD_DIR.
# Source it; it defines TESSERA_ROOT and TESSERA_BUILD_DIR.
set -euo pipefail

TESSERA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TESSERA_BUILD_DIR="${TESSERA_BUILD_DIR:-$TESSERA_ROOT/build}"
export TESSERA_ROOT TESSERA_BUILD_DIR

tessera_packages=(
  build-essential cmake
  openmpi-bin libopenmpi-dev
  libopenblas-dev
  libboost-program-options-dev
  nlohmann-json3-dev
  libxxhash-dev
  libdnnl-dev
  libsentencepiece-dev
  libgtest-dev
  time  # GNU time: the tests' peak-memory checks
)

tessera_install_packages() {
  local missing=()
  for p in "${tessera_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "tessera: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

tessera_build() {
  local jobs
  jobs="$(nproc)"
  mkdir -p "$TESSERA_BUILD_DIR"
  cmake -S "$TESSERA_ROOT" -B "$TESSERA_BUILD_DIR" -DCMAKE_BUILD_TYPE="${TESSERA_BUILD_TYPE:-Release}" \
        ${TESSERA_CMAKE_ARGS:-} >"$TESSERA_BUILD_DIR/configure.log" 2>&1 ||
    { cat "$TESSERA_BUILD_DIR/configure.log"; return 1; }
  echo "tessera: building in $TESSERA_BUILD_DIR (log: $TESSERA_BUILD_DIR/build.log)"
  if ! cmake --build "$TESSERA_BUILD_DIR" -j "$jobs" >"$TESSERA_BUILD_DIR/build.log" 2>&1; then
    grep -E -B2 -A6 "error|Error" "$TESSERA_BUILD_DIR/build.log" | head -80
    return 1
  fi
}

# mpirun refuses to run as root unless told; containers and CI run as root.
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

tessera_install_packages
tessera_build
