#!/usr/bin/env bash
# Builds the generic-helper kernel probe bpf/probe/probe_generic.c into
# tests/data/probe/generic_probe.o (tests/kernel_probe_generic.rs). Like probe_helpers.o it is
# not a fixture, so bpf/build.sh does not build it; same flags as the fixtures.
#
#   tests/data/probe/generic_build.sh           rebuild the object
#   tests/data/probe/generic_build.sh --check   rebuild into a temp file and compare bytes
set -euo pipefail
CLANG=${CLANG:-clang-19}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bpf=$(cd "$here/../../../bpf" && pwd)
export LC_ALL=C TZ=UTC
out="$here/generic_probe.o"
if [[ ${1:-} == --check ]]; then
    tmp=$(mktemp)
    trap 'rm -f "$tmp"' EXIT
    out=$tmp
fi
cd "$bpf/probe"
"$CLANG" -target bpf -g -Wall -Werror -I.. "-ffile-prefix-map=$bpf=." "-fdebug-prefix-map=$bpf=." \
    -O2 -mcpu=v3 -c probe_generic.c -o "$out"
if [[ ${1:-} == --check ]]; then
    cmp -s "$out" "$here/generic_probe.o" || {
        echo "generic_build.sh --check: tests/data/probe/generic_probe.o is out of date" >&2
        exit 1
    }
    echo "generic_build.sh --check: generic_probe.o matches"
fi
