#!/usr/bin/env bash
# Builds the fixture corpus: bpf/<name>.c -> fixtures/<name>[.v1|.v4|.O1].o and
# fixtures/ref/<name>.op<K>.o, and records the compiler in fixtures/TOOLCHAIN.
#
#   bpf/build.sh            rebuild every fixture into fixtures/ (stale objects are removed)
#   bpf/build.sh NAME...    rebuild only these fixtures (bpf/NAME.c) into fixtures/
#   bpf/build.sh --check    rebuild everything into a temp dir and compare bytes with fixtures/
#
# Each source declares its builds in comment lines:
#   // BUILD: variants v1 v4 O1   any subset; the default -O2 -g -mcpu=v3 build is always made
#   // BUILD: ref-ops 1 2 4       per-op reference builds with -DOPSPLIT_ONLY_OP=K
#   // BUILD: nobtf               build without -g (no .BTF / .BTF.ext / DWARF at all)
#
# Objects must be byte-for-byte reproducible: we compile from bpf/ with relative paths and map the
# build directory away, so neither the checkout location nor the output directory lands in them.
set -euo pipefail

CLANG=${CLANG:-clang-19}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
fixtures="$root/fixtures"

die() { echo "bpf/build.sh: $*" >&2; exit 1; }

command -v "$CLANG" >/dev/null || die "$CLANG not found (apt install clang-19)"

# Flags shared by every build. -fdebug-prefix-map/-ffile-prefix-map keep $PWD out of DWARF and
# BTF; the C locale and a fixed TZ rule out environment leaking into diagnostics-dependent output.
export LC_ALL=C TZ=UTC
common_flags=(-target bpf -g -Wall -Werror -I. "-ffile-prefix-map=$here=." "-fdebug-prefix-map=$here=.")

# Parses the BUILD directives of one source into the globals variants, refops, nobtf.
parse_directives() {
    local src=$1 line kw rest
    variants=() refops=() nobtf=0
    while IFS= read -r line; do
        rest=${line#*// BUILD:}
        read -r kw rest <<<"$rest"
        case $kw in
        variants)
            for v in $rest; do
                case $v in
                v1 | v4 | O1) variants+=("$v") ;;
                *) die "$src: unknown variant '$v' (allowed: v1 v4 O1)" ;;
                esac
            done
            ;;
        ref-ops)
            for k in $rest; do
                [[ $k =~ ^[0-9]+$ ]] || die "$src: ref-ops wants op numbers, got '$k'"
                refops+=("$k")
            done
            ;;
        nobtf)
            [[ -z $rest ]] || die "$src: 'nobtf' takes no arguments"
            nobtf=1
            ;;
        *) die "$src: unknown BUILD directive '$kw' (allowed: variants, ref-ops, nobtf)" ;;
        esac
    done < <(grep -E '^[[:space:]]*// BUILD:' "$src" || true)
}

# compile SRC OUT FLAGS...
compile() {
    local src=$1 out=$2
    shift 2
    local flags=("${common_flags[@]}" "$@")
    if ((nobtf)); then
        # Drop -g (and with it .BTF, .BTF.ext and DWARF); the prefix maps are harmless.
        local f kept=()
        for f in "${flags[@]}"; do [[ $f == -g ]] || kept+=("$f"); done
        flags=("${kept[@]}")
    fi
    "$CLANG" "${flags[@]}" -c "$src" -o "$out" || die "compiling $src -> ${out##*/} failed"
}

# build_one NAME OUTDIR: every object of bpf/NAME.c into OUTDIR (and OUTDIR/ref).
build_one() {
    local name=$1 outdir=$2 src="$1.c"
    [[ -f $src ]] || die "no such fixture source: bpf/$src"
    parse_directives "$src"
    compile "$src" "$outdir/$name.o" -O2 -mcpu=v3
    local v
    for v in "${variants[@]}"; do
        case $v in
        v1) compile "$src" "$outdir/$name.v1.o" -O2 -mcpu=v1 ;;
        v4) compile "$src" "$outdir/$name.v4.o" -O2 -mcpu=v4 ;;
        O1) compile "$src" "$outdir/$name.O1.o" -O1 -mcpu=v3 ;;
        esac
    done
    local k
    for k in "${refops[@]}"; do
        mkdir -p "$outdir/ref"
        compile "$src" "$outdir/ref/$name.op$k.o" -O2 -mcpu=v3 "-DOPSPLIT_ONLY_OP=$k"
    done
}

all_names() {
    local f
    for f in *.c; do
        [[ -e $f ]] && echo "${f%.c}"
    done
}

# Relative object paths (name.o, ref/name.opK.o) under a directory, sorted.
list_objects() {
    (cd "$1" && find . -name '*.o' -type f | sed 's|^\./||' | LC_ALL=C sort)
}

cd "$here"
toolchain=$("$CLANG" --version)

if [[ ${1:-} == --check ]]; then
    (($# == 1)) || die "--check takes no other arguments"
    [[ -f $fixtures/TOOLCHAIN ]] || die "fixtures/TOOLCHAIN is missing: run bpf/build.sh and commit"
    recorded=$(cat "$fixtures/TOOLCHAIN")
    if [[ $recorded != "$toolchain" ]]; then
        echo "bpf/build.sh --check: toolchain drift: fixtures were built with '$(head -1 <<<"$recorded")'," \
            "this machine has '$(head -1 <<<"$toolchain")'. Bytes are only comparable with the same" \
            "compiler: rebuild on a machine with the recorded clang, or rebuild and commit every" \
            "fixture (and fixtures/TOOLCHAIN) deliberately." >&2
        exit 2
    fi
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    for n in $(all_names); do build_one "$n" "$tmp"; done
    bad=0
    while IFS= read -r o; do
        if [[ ! -f $fixtures/$o ]]; then
            echo "missing: fixtures/$o is built from bpf/ but not committed" >&2
            bad=1
        elif ! cmp -s "$tmp/$o" "$fixtures/$o"; then
            echo "differs: fixtures/$o does not match a fresh build" >&2
            bad=1
        fi
    done < <(list_objects "$tmp")
    while IFS= read -r o; do
        if [[ ! -f $tmp/$o ]]; then
            echo "extra: fixtures/$o is not produced by any bpf/*.c" >&2
            bad=1
        fi
    done < <(list_objects "$fixtures")
    if ((bad)); then
        echo "bpf/build.sh --check: committed fixtures are out of date; run bash bpf/build.sh and commit" >&2
        exit 1
    fi
    echo "bpf/build.sh --check: $(list_objects "$tmp" | wc -l) objects match ($(head -1 <<<"$toolchain"))"
    exit 0
fi

[[ ${1:-} != -* ]] || die "unknown option '$1' (usage: build.sh [--check | NAME...])"

mkdir -p "$fixtures"
if (($# > 0)); then
    for n in "$@"; do
        n=${n%.c}
        n=${n##*/}
        build_one "$n" "$fixtures"
        echo "built $n"
    done
else
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    for n in $(all_names); do build_one "$n" "$tmp"; done
    # Objects whose source or BUILD line is gone must not linger as if they were still current.
    while IFS= read -r o; do
        if [[ ! -f $tmp/$o ]]; then
            echo "removing stale fixtures/$o"
            rm -f "$fixtures/$o"
        fi
    done < <(list_objects "$fixtures")
    while IFS= read -r o; do
        mkdir -p "$(dirname "$fixtures/$o")"
        cp "$tmp/$o" "$fixtures/$o"
    done < <(list_objects "$tmp")
    echo "built $(list_objects "$tmp" | wc -l) objects into fixtures/"
fi
printf '%s\n' "$toolchain" >"$fixtures/TOOLCHAIN"
