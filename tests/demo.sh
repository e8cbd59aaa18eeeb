#!/usr/bin/env bash
# `make demo`: aoe-xdp serves a sparse 1 GiB file over a veth pair to the real
# Linux aoe initiator (a Debian 12 kernel booted in qemu), which writes to
# the disk and reads it back. Everything happens in network namespaces that
# are removed afterwards.
set -euo pipefail
DEMO=1 exec bash "$(dirname "$0")/interop/linux-initiator.sh"
