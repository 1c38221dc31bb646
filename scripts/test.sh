#!/usr/bin/env bash
# Every test: Rust unit tests, a release wheel that installs without cargo, and the Python suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

echo "== cargo test (the plain-Rust engine crate, rust/engine)"
cargo test --release --workspace --quiet

echo "== build the release wheel"
rm -rf dist
# pip drives maturin through pyproject.toml (PEP 517), the same path `pip install .` takes.
$PY -m pip wheel --quiet --no-deps --wheel-dir dist .
WHEEL=$(ls dist/blechrs-*.whl | head -n 1)

echo "== install the wheel with the test extras"
$PY -m pip install --quiet --force-reinstall --no-deps "$WHEEL"
$PY -m pip install --quiet "$WHEEL[test]"

echo "== the wheel installs and imports in a fresh virtual environment with no Rust toolchain"
VENV=$(mktemp -d)/venv
$PY -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet "$WHEEL"
# PATH holds the venv alone: a machine may have cargo in /usr/bin (Debian's toolchain, see .ci/run).
env -i HOME="$HOME" PATH="$VENV/bin" "$VENV/bin/python" - <<'PY'
import shutil, blechrs, blechrs._native
assert shutil.which("cargo") is None and shutil.which("rustc") is None, "cargo must not be on PATH here"
print("fresh venv import ok:", blechrs.__version__)
PY
rm -rf "$(dirname "$VENV")"

echo "== the one stub (python/blechrs/_native.pyi) matches the installed extension"
(cd /tmp && $PY -m mypy.stubtest blechrs._native)

echo "== pytest"
cd tests && $PY -m pytest -q -p no:cacheprovider "$@"
