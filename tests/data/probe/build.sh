#!/usr/bin/env bash
# Builds the kernel probes in bpf/probe/ into tests/data/probe/: probe_helpers.c →
# probe_helpers.o (tests/kernel_probe.rs) and probe_generic.c → generic_probe.o
# (tests/kernel_probe_generic.rs). They are not fixtures (fixtures/** is the corpus every shape
# and analysis test iterates), so bpf/build.sh does not build them. Same flags as the fixtures.
#
#   tests/data/probe/build.sh           rebuild the objects
#   tests/data/probe/build.sh --check   rebuild into temp files and compare bytes (CI)
set -euo pipefail
CLANG=${CLANG:-clang-19}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bpf=$(cd "$here/../../../bpf" && pwd)
export LC_ALL=C TZ=UTC
check=false
[[ ${1:-} == --check ]] && check=true
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$bpf/probe"
stale=0
for pair in probe_helpers.c:probe_helpers.o probe_generic.c:generic_probe.o; do
    src=${pair%%:*}
    obj=${pair##*:}
    out="$here/$obj"
    $check && out="$tmp/$obj"
    "$CLANG" -target bpf -g -Wall -Werror -I.. "-ffile-prefix-map=$bpf=." \
        "-fdebug-prefix-map=$bpf=." -O2 -mcpu=v3 -c "$src" -o "$out"
    if $check; then
        if cmp -s "$out" "$here/$obj"; then
            echo "build.sh --check: $obj matches"
        else
            echo "build.sh --check: tests/data/probe/$obj is out of date" >&2
            stale=1
        fi
    fi
done
exit $stale
