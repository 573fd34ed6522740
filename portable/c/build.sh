#!/usr/bin/env bash
# Builds the C conformance harness: the engine module translated to C by wasm2c (wabt), compiled
# with gcc together with wabt's runtime (wasm-rt-impl.c) and portable/c/harness.c.
#   portable/c/build.sh OUT_DIR [WASM] [CFLAGS...]     -> OUT_DIR/harness
# WASM defaults to build/sessionlb-nosimd.wasm: wabt 1.0.32's wasm2c has no SIMD, and given a SIMD
# module it writes an empty header, which is checked for here.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:?usage: build.sh OUT_DIR [WASM] [CFLAGS...]}"
wasm="${2:-$root/build/sessionlb-nosimd.wasm}"
shift $(( $# >= 2 ? 2 : 1 ))
cflags=("$@")
[ ${#cflags[@]} -gt 0 ] || cflags=(-O2)
rt=""
for d in /usr/share/wabt/wasm2c /usr/local/share/wabt/wasm2c /usr/lib/wabt/wasm2c; do
  [ -f "$d/wasm-rt-impl.c" ] && rt="$d" && break
done
[ -n "$rt" ] || { echo "build.sh: wasm-rt-impl.c not found (install wabt)" >&2; exit 1; }
inc=/usr/include
[ -f "$rt/wasm-rt.h" ] && inc="$rt"
mkdir -p "$out"
wasm2c -n sessionlb "$wasm" -o "$out/sessionlb.c"
if [ ! -s "$out/sessionlb.h" ] || ! grep -q 'Z_sessionlbZ_process' "$out/sessionlb.h"; then
  echo "build.sh: wasm2c wrote an empty or incomplete header for $wasm (a SIMD module? use build/sessionlb-nosimd.wasm)" >&2
  exit 1
fi
gcc -std=gnu11 "${cflags[@]}" -I"$out" -I"$rt" -I"$inc" -o "$out/harness" \
  "$here/harness.c" "$out/sessionlb.c" "$rt/wasm-rt-impl.c" -lm
