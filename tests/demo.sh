#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# `make demo`: aoe-xdp serves a sparse 1 GiB file over a veth pair to the real
# Linux aoe initiator (a Debian 12 kernel booted in qemu), which writes to
# the disk and reads it back. Everything happens in network namespaces named
# after this run (tests/lib.sh), removed afterwards however the demo ends.
set -euo pipefail
DEMO=1
# shellcheck source=interop/linux-initiator.sh
source "$(dirname "$0")/interop/linux-initiator.sh"
prepare
run_test run_demo
summary
