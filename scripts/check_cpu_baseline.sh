#!/usr/bin/env bash
# The engine on a CPU without AVX, AVX2 or FMA (an emulated Intel Nehalem, 2008): it takes its
# baseline x86-64 loops (`simd_level()` says "baseline") and gives bit for bit what the same loops
# give on this machine (BLECHRS_SIMD=off). Shows that nothing is compiled for a newer CPU
# unconditionally: an AVX instruction outside the run-time-chosen loops would stop it with SIGILL
# (checked first on a small AVX2 program, so the emulator is known to trap).
# Needs qemu-x86_64 (Debian: apt-get install qemu-user) and gcc; not part of scripts/test.sh
# (tests/engine/test_cpu_paths.py compares the loops there, without an emulator).
# Usage: bash scripts/check_cpu_baseline.sh   (PYTHON=... for another interpreter; the package
# from python/ with its built extension, or the installed one)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(command -v "${PYTHON:-python3}")
PY=$("$PY" -c 'import os, sys; print(os.path.realpath(sys.executable))')  # qemu runs the binary itself
CPU=Nehalem
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

echo "== the emulator traps AVX2 on $CPU (control)"
cat > "$TMP/avx2.c" <<'C'
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    int in[8], out[8];
    for (int i = 0; i < 8; i++) in[i] = atoi(argc > 1 ? argv[1] : "1") + i;
    __m256i a = _mm256_loadu_si256((const __m256i *)in);
    _mm256_storeu_si256((__m256i *)out, _mm256_mullo_epi32(a, _mm256_shuffle_epi32(a, 0x1b)));
    long s = 0;
    for (int i = 0; i < 8; i++) s += out[i] * (i + 1);
    printf("%ld\n", s);
    return 0;
}
C
gcc -O1 -mavx2 -o "$TMP/avx2" "$TMP/avx2.c"
qemu-x86_64 -cpu max "$TMP/avx2" 3 >/dev/null
if (qemu-x86_64 -cpu "$CPU" "$TMP/avx2" 3) >/dev/null 2>&1; then
    echo "qemu-x86_64 -cpu $CPU ran AVX2 code: it cannot show anything here" >&2
    exit 1
fi
echo "AVX2 program: runs with -cpu max, SIGILL with -cpu $CPU"

export PYTHONPATH="$PWD/tests:$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c 'import sys, numpy as np; from support import cpu_paths; np.save(sys.argv[1], cpu_paths.recording())' "$TMP/x.npy"
echo "== the kernels on $CPU (emulated)"
env -u BLECHRS_SIMD qemu-x86_64 -cpu "$CPU" "$PY" -m support.cpu_paths "$TMP/emulated.npz" "$TMP/x.npy"
echo "== the baseline loops on this CPU (BLECHRS_SIMD=off)"
BLECHRS_SIMD=off "$PY" -m support.cpu_paths "$TMP/baseline.npz" "$TMP/x.npy"
"$PY" - "$TMP/emulated.npz" "$TMP/baseline.npz" <<'PY'
import sys
import numpy as np
from blechrs import _native
emulated, here = np.load(sys.argv[1]), np.load(sys.argv[2])
assert str(emulated["level"]) == "baseline", emulated["level"]
assert emulated.files == here.files
differ = [k for k in here.files if not np.array_equal(emulated[k], here[k])]
assert not differ, f"differ on the emulated CPU: {differ}"
print(f"{len(here.files) - 1} outputs bit-identical on the emulated CPU (level 'baseline') and here "
      f"with BLECHRS_SIMD=off; this CPU's own level: {_native.simd_level()}")
PY
