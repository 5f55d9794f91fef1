#!/usr/bin/env bash
# Builds the kernel probe bpf/probe/probe_helpers.c into tests/data/probe/probe_helpers.o.
# It is not a fixture (fixtures/** is the corpus every shape and analysis test iterates), so
# bpf/build.sh does not build it. Same flags as the fixtures.
#
#   tests/data/probe/build.sh           rebuild the object
#   tests/data/probe/build.sh --check   rebuild into a temp file and compare bytes (CI)
set -euo pipefail
CLANG=${CLANG:-clang-19}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bpf=$(cd "$here/../../../bpf" && pwd)
export LC_ALL=C TZ=UTC
out="$here/probe_helpers.o"
if [[ ${1:-} == --check ]]; then
    tmp=$(mktemp)
    trap 'rm -f "$tmp"' EXIT
    out=$tmp
fi
cd "$bpf/probe"
"$CLANG" -target bpf -g -Wall -Werror -I.. "-ffile-prefix-map=$bpf=." "-fdebug-prefix-map=$bpf=." \
    -O2 -mcpu=v3 -c probe_helpers.c -o "$out"
if [[ ${1:-} == --check ]]; then
    cmp -s "$out" "$here/probe_helpers.o" || {
        echo "build.sh --check: tests/data/probe/probe_helpers.o is out of date" >&2
        exit 1
    }
    echo "build.sh --check: probe_helpers.o matches"
fi
