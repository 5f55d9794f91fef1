#!/bin/bash
# Rebuilds the object-codec test inputs in tests/data/ (needs Debian's clang-19 and llvm-19).
set -euo pipefail
cd "$(dirname "$0")"
# Feature object: BTF-defined maps with values, externs, callbacks, struct_ops. DWARF is stripped
# (.BTF/.BTF.ext stay), which also keeps absolute paths out of the object.
clang-19 -target bpf -O2 -g -mcpu=v3 -D__TARGET_ARCH_x86 -c obj_features.c -o obj_features.o
llvm-objcopy-19 --strip-debug obj_features.o
# Big-endian BPF object: must be refused as "unsupported: big-endian BPF object".
printf 'int f(void *ctx) { return 0; }\nchar _l[] __attribute__((section("license"))) = "GPL";\n' \
  | clang-19 -target bpfeb -O2 -x c -c - -o bpfeb.o
