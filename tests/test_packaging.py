"""Packaging: the wheel's declared requirements (base install and extras, read from its METADATA), the
wheel workflow's platforms and smoke tests (.github/workflows/wheels.yml), and that a pip install's
base dependencies are enough to import blechrs and sort: no optional package (interop extras, test
tools) is imported. (scripts/test.sh also sorts with the built manylinux wheel in a fresh venv that
holds the base dependencies alone, with no Rust toolchain on PATH.)"""

import os
import re
import subprocess
import sys
import textwrap
import zipfile
from email.parser import Parser
from pathlib import Path

import yaml
from packaging.requirements import Requirement

from blechrs.simulate import Simulation

ROOT = Path(__file__).resolve().parents[1]

# The rule (README, issue 15): these five and nothing else in a plain install; each interop extra
# brings its package; `all` brings every extra except the tools (test, bench).
BASE = {"numpy", "scikit-learn", "tables", "rich", "matplotlib"}
EXTRAS = {"nwb": ("pynwb", set()), "spikeinterface": ("spikeinterface", set()),
          "dask": ("dask", {"distributed"}), "phy": ("phylib", set())}
TOOL_EXTRAS = {"test", "bench"}


def wheel_metadata(tmp_path: Path) -> str:
    """The METADATA of the wheel scripts/test.sh built (BLECHRS_WHEEL); run alone, the METADATA
    maturin writes into a wheel of this tree (its PEP 517 metadata hook: no compiling)."""
    wheel = os.environ.get("BLECHRS_WHEEL")
    if wheel:
        with zipfile.ZipFile(wheel) as zf:
            (name,) = [n for n in zf.namelist() if re.fullmatch(r"blechrs-[^/]+\.dist-info/METADATA", n)]
            return zf.read(name).decode()
    code = f"import maturin; print(maturin.prepare_metadata_for_build_wheel({str(tmp_path)!r}))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return (tmp_path / done.stdout.split()[-1] / "METADATA").read_text()


def test_wheel_requires_the_base_packages_and_offers_the_extras(tmp_path):
    meta = Parser().parsestr(wheel_metadata(tmp_path))
    assert meta["Name"] == "blechrs"
    provided = set(meta.get_all("Provides-Extra") or [])
    base: dict[str, Requirement] = {}
    extras: dict[str, dict[str, Requirement]] = {extra: {} for extra in provided}
    for line in meta.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is None:
            base[req.name.lower()] = req
            continue
        # each requirement belongs to exactly one extra; evaluate the marker to find which
        (extra,) = [e for e in provided if req.marker.evaluate({"extra": e})]
        extras[extra][req.name.lower()] = req
    assert set(base) == BASE, f"base install requires {sorted(base)}"
    assert all(not req.extras for req in base.values())
    assert provided >= set(EXTRAS) | {"all"}, f"extras: {sorted(provided)}"
    for extra, (package, its_extras) in EXTRAS.items():
        assert package in extras[extra], f"extra {extra!r} lacks {package}: {sorted(extras[extra])}"
        assert extras[extra][package].extras >= its_extras, extras[extra][package]
    interop = provided - TOOL_EXTRAS - {"all"}
    def plain(req: Requirement) -> str:  # without its marker
        return f"{req.name.lower()}{sorted(req.extras)}{req.specifier}"

    union = {plain(req) for extra in interop for req in extras[extra].values()}
    assert {plain(req) for req in extras["all"].values()} == union, f"extra 'all' is not {sorted(union)}"


def test_wheel_workflow_builds_and_smoke_tests_every_platform():
    flow = yaml.safe_load((ROOT / ".github/workflows/wheels.yml").read_text())
    jobs = flow["jobs"]
    built = {}  # artifact name -> (os, target)
    for job, os_name in (("linux", "linux"), ("macos", "macos"), ("windows", "windows")):
        steps = jobs[job]["steps"]
        build = [s for s in steps if s.get("uses", "").startswith("PyO3/maturin-action@")]
        assert build and all("--release" in s["with"]["args"] for s in build), job
        (upload,) = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
        for platform in jobs[job]["strategy"]["matrix"]["platform"]:
            name = upload["with"]["name"].replace("${{ matrix.platform.target }}", platform["target"])
            built[name] = (os_name, platform["target"], platform["runner"])
        if job == "linux":
            assert all(s["with"].get("manylinux") in ("auto", "2014", "manylinux2014") for s in build)
    assert {(os_name, target) for os_name, target, _ in built.values()} == {
        ("linux", "x86_64"), ("linux", "aarch64"), ("macos", "x86_64"), ("macos", "aarch64"), ("windows", "x64")}
    (sdist,) = [s for s in jobs["sdist"]["steps"] if s.get("uses", "").startswith("PyO3/maturin-action@")]
    assert sdist["with"]["command"] == "sdist"

    smoke = jobs["smoke"]
    assert set(smoke["needs"]) == {"linux", "macos", "windows"}
    tested = {p["wheels"]: p["runner"] for p in smoke["strategy"]["matrix"]["platform"]}
    assert set(tested) == set(built), f"smoke-tested {sorted(tested)}, built {sorted(built)}"
    for artifact, runner in tested.items():
        os_name, target, _ = built[artifact]
        assert runner.startswith({"linux": "ubuntu", "macos": "macos", "windows": "windows"}[os_name]), artifact
        if os_name == "linux":  # run where it was not cross-built: its own CPU
            assert runner.endswith("-arm") == (target == "aarch64"), (artifact, runner)
        if os_name == "macos":
            assert runner == built[artifact][2], (artifact, runner)
    script = "\n".join(s.get("run", "") for s in smoke["steps"])
    assert "python -m venv" in script and "--only-binary=:all:" in script
    assert re.search(r"blechrs demo --channels \d+ --seconds \d+", script), script
    assert "smoke" in jobs["release"]["needs"]

# Top-level modules of the optional packages (and the test tools): sorting imports none of them.
OPTIONAL_MODULES = ("pynwb", "hdmf", "nwbinspector", "spikeinterface", "probeinterface", "dask", "distributed",
                    "phylib", "phy", "neo", "h5py", "mountainsort5", "hypothesis", "pytest")


# Every interpreter started with this folder on PYTHONPATH (the CLI's and its spawned workers)
# records and refuses the import of an optional module.
BLOCKER = textwrap.dedent("""
    import os, sys

    class RefuseOptional:
        names = set(os.environ["BLECHRS_TEST_REFUSE"].split(","))

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.names:
                with open(os.environ["BLECHRS_TEST_REFUSED_LOG"], "a") as f:
                    f.write(f"{os.getpid()} {name}\\n")
                raise ModuleNotFoundError(f"No module named {name!r} (refused by the test)", name=name)
            return None

    sys.meta_path.insert(0, RefuseOptional())
""")


def test_import_and_run_need_no_optional_package(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    log = tmp_path / "refused.log"
    rec = tmp_path / "rec"
    Simulation(seed=5, n_channels=4, duration_s=8.0).write(rec, "one file per channel")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site)] + [p for p in sys.path if p]),
               BLECHRS_TEST_REFUSE=",".join(OPTIONAL_MODULES), BLECHRS_TEST_REFUSED_LOG=str(log))
    check = ("import sys, blechrs, blechrs.cli, blechrs.pipeline; "
             "assert any(type(f).__name__ == 'RefuseOptional' for f in sys.meta_path); "
             f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {OPTIONAL_MODULES!r}); "
             "assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", check], env=env, check=True, timeout=120)
    done = subprocess.run([sys.executable, "-m", "blechrs", "run", str(rec), "--jobs", "2", "--quiet"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (rec / "blechrs_work").is_dir() and list(rec.glob("*.h5"))
    refused = log.read_text() if log.exists() else ""
    assert refused == "", f"optional modules imported while sorting:\n{refused}"
