#!/usr/bin/env bash
# Every test: Rust unit tests, a manylinux release wheel that installs and sorts without cargo,
# and the Python suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SECONDS=0
step() { echo "== [${SECONDS}s] $*"; }
trap 'echo "== [${SECONDS}s] end"' EXIT
# The wheel is built for the host triple, named (zig links for it): in target/<triple>/, apart from
# cargo test's target/release/ (sharing one folder, each rebuilt the crates the other had built
# with maturin's zig settings; apart, a second run compiles nothing).
HOST=$(rustc -vV | sed -n 's/^host: //p')

step "cargo test (the plain-Rust engine crate, rust/engine)"
cargo test --release --workspace --quiet

step "build the release wheel: manylinux2014 (glibc >= 2.17), abi3 (CPython >= 3.10)"
rm -rf dist
# maturin builds, zig (ziglang from PyPI) links against glibc 2.17's symbols instead of this
# machine's, and maturin's own auditwheel check refuses any symbol manylinux2014 does not allow.
$PY -m pip install --quiet "maturin>=1.5,<2" "ziglang<0.18" auditwheel  # (zig 0.17.1 tested)
mkdir -p dist
# (maturin runs `python3 -m ziglang`: this interpreter's scripts folder first on PATH)
if ! PATH="$($PY -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH" \
        $PY -m maturin build --release --zig --compatibility manylinux2014 --target "$HOST" --out dist \
        >dist/build.log 2>&1; then
    cat dist/build.log
    exit 1
fi
WHEEL=$(ls "$PWD"/dist/blechrs-*.whl | head -n 1)
echo "$WHEEL"
case "$(basename "$WHEEL")" in *-cp310-abi3-*) ;; *) echo "the wheel is not abi3 (cp310-abi3)" >&2; exit 1 ;; esac
# An independent check of the tag: auditwheel (PyPA's) reads the symbols itself.
$PY -m auditwheel show "$WHEEL" | tr -s ' \n' ' ' | grep -q "consistent with the following platform tag: \"manylinux_2_17_$(uname -m)\"" \
    || { $PY -m auditwheel show "$WHEEL"; echo "the wheel is not manylinux_2_17" >&2; exit 1; }
echo "auditwheel: manylinux_2_17_$(uname -m)"

step "install the wheel with the test extras"
$PY -m pip install --quiet --force-reinstall --no-deps "$WHEEL"
$PY -m pip install --quiet "$WHEEL[test]"

step "the wheel installs and sorts in a fresh virtual environment: no Rust toolchain, base dependencies only"
TMP=$(mktemp -d)
VENV=$TMP/venv
$PY -m venv "$VENV"
# (--no-compile: no byte-compiling all of numpy, scipy, matplotlib...; the demo compiles what it imports)
"$VENV/bin/python" -m pip install --quiet --no-compile --only-binary=:all: "$WHEEL"
# PATH holds the venv alone: a machine may have cargo in /usr/bin (Debian's toolchain, see .ci/run).
# (check_wheel.py: the engine imports, no cargo/rustc, base requirements only, no optional package)
env -i HOME="$HOME" PATH="$VENV/bin" "$VENV/bin/python" "$PWD/scripts/check_wheel.py" --no-cargo
# A short demo (8 channels x 20 s, 2 worker processes, pictures): simulate, sort, score.
(cd "$TMP" && env -i HOME="$HOME" PATH="$VENV/bin" LANG=C.UTF-8 COLUMNS=200 \
    blechrs demo --channels 8 --seconds 20 --jobs 2 --quiet --out demo >demo.log 2>&1) \
    || { cat "$TMP/demo.log"; exit 1; }
{ grep -q "sorted units" "$TMP/demo.log" && ls "$TMP"/demo/*.h5 >/dev/null; } \
    || { cat "$TMP/demo.log"; echo "the demo in the fresh venv stored no units" >&2; exit 1; }
echo "fresh venv demo ok: $(grep -m1 'ground-truth units' "$TMP/demo.log" | tr -s ' ')"
rm -rf "$TMP"

step "the one stub (python/blechrs/_native.pyi) matches the installed extension"
(cd /tmp && $PY -m mypy.stubtest blechrs._native)

step "pytest"
# (tests/test_packaging.py reads this wheel's METADATA)
cd tests && BLECHRS_WHEEL="$WHEEL" $PY -m pytest -q -p no:cacheprovider "$@"
