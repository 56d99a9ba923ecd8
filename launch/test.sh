#!/usr/bin/env bash
# Installs what is missing, builds (with the CUDA backend when nvcc is present) and runs every
# test: unit tests, multi-rank tests under mpirun, and end-to-end runs. Extra arguments go to ctest
# (e.g. ./launch/test.sh -R Layout, or -L mpi).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$TESSERA_BUILD_DIR"
ctest --output-on-failure --timeout 900 "$@"
