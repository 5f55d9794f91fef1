#!/usr/bin/env bash
# Builds the kernel probe bpf/probe/probe_helpers.c into tests/data/probe/probe_helpers.o.
# It is not a fixture (fixtures/** is the corpus every shape and analysis test iterates), so
# bpf/build.sh does not build it. Same flags as the fixtures.
set -euo pipefail
CLANG=${CLANG:-clang-19}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bpf=$(cd "$here/../../../bpf" && pwd)
export LC_ALL=C TZ=UTC
cd "$bpf/probe"
"$CLANG" -target bpf -g -Wall -Werror -I.. "-ffile-prefix-map=$bpf=." "-fdebug-prefix-map=$bpf=." \
    -O2 -mcpu=v3 -c probe_helpers.c -o "$here/probe_helpers.o"
