"""Check a blechrs wheel installed in a fresh venv (scripts/test.sh, and each platform's smoke job in
.github/workflows/wheels.yml): the engine imports, no Rust toolchain is on PATH (--no-cargo), and pip
installed the five base packages as blechrs's only requirements and no optional one. (Which extras
the wheel declares is checked from its METADATA by tests/test_packaging.py.) Prints one line; exits
non-zero with the reason otherwise."""

import re
import shutil
import sys
from importlib import metadata

BASE = {"numpy", "scikit-learn", "tables", "rich", "matplotlib"}
# Distributions of the extras (and the test tools): a base install pulls in none of them.
OPTIONAL = ("pynwb", "hdmf", "nwbinspector", "spikeinterface", "probeinterface", "dask", "distributed", "phylib",
            "neo", "h5py", "mountainsort5", "pytest", "hypothesis")


def name(req: str) -> str:
    return re.split(r"[\s;\[<>=!~(]", req, maxsplit=1)[0].lower().replace("_", "-")


def installed(dist: str) -> bool:
    try:
        metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


def main() -> int:
    import blechrs
    import blechrs._native as native

    problems = []
    if "--no-cargo" in sys.argv[1:]:
        problems += [f"{tool} is on PATH" for tool in ("cargo", "rustc") if shutil.which(tool)]
    base = {name(r) for r in metadata.requires("blechrs") or [] if not re.search(r"\bextra\s*==", r)}
    if base != BASE:
        problems.append(f"the base install requires {sorted(base)}, not {sorted(BASE)}")
    problems += [f"{dist} is installed" for dist in OPTIONAL if installed(dist)]
    if problems:
        print("wheel check failed: " + "; ".join(problems), file=sys.stderr)
        return 1
    print(f"blechrs {blechrs.__version__} from {blechrs.__file__} | engine loops: {native.simd_level()} | "
          f"requires: {', '.join(sorted(base))} | no optional package installed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
