"""The install paths agree with pyproject.toml: the conda files (envs/*.yaml) and the Makefile's torch pin
are read and each package they pin that pyproject names is checked against pyproject's range; and the GPU
extra's install resolves against PyPI (`pip install --dry-run`).

No conda here: the conda files are parsed and checked, not built. The resolution needs PyPI: it skips,
saying so, where PyPI cannot be reached, and fails there under EMBEDPIPE_PYPI=required (CI sets it).
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from support.workflow import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
ENVS = sorted((REPO / "envs").glob("*.yaml"))
CONDA_NAMES = {"pytorch": "torch"}  # conda's name → the PyPI name pyproject uses
PYPI_REQUIRED = os.environ.get("EMBEDPIPE_PYPI") == "required"


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_ranges() -> dict[str, SpecifierSet]:
    """Every package pyproject names (dependencies and every extra), and python, with its range."""
    requirements = [*PYPROJECT["dependencies"], *(r for extra in PYPROJECT["optional-dependencies"].values()
                                                  for r in extra)]
    ranges = {normalise(r.name): r.specifier for r in map(Requirement, requirements)}
    return ranges | {"python": SpecifierSet(PYPROJECT["requires-python"])}


def conda_pins(env: dict) -> list[tuple[str, str, str]]:
    """(name, operator, version) of each conda dependency that pins a version: `python=3.11`, `pytorch>=2.4`."""
    pins = []
    for dep in env["dependencies"]:
        if isinstance(dep, str) and (m := re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(>=|==|=|<=|<|>)\s*([0-9][\w.*]*)", dep)):
            pins.append((m[1], m[2], m[3]))
    return pins


def lowest_admitted(operator: str, version: str) -> Version | None:
    """The lowest version a conda pin admits (`=3.11` is 3.11.*: 3.11); None for an upper bound."""
    return Version(version.rstrip(".*")) if operator in (">=", "==", "=") else None


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_conda_file_parses_and_names_channels_and_dependencies(path: Path):
    env = yaml.safe_load(path.read_text())
    assert env["channels"] and env["dependencies"], f"{path.name}: no channels or dependencies"
    pip = [d for d in env["dependencies"] if isinstance(d, dict)]
    assert len(pip) == 1 and "pip" in env["dependencies"], f"{path.name}: embedpipe goes in by one pip: block"


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_conda_pins_agree_with_pyproject(path: Path):
    ranges = pyproject_ranges()
    checked, wrong = [], []
    for name, operator, version in conda_pins(yaml.safe_load(path.read_text())):
        pypi = normalise(CONDA_NAMES.get(name, name))
        if pypi not in ranges:
            continue  # conda-only packages (pytorch-cuda, cpuonly, ffmpeg): nothing in pyproject to agree with
        checked.append(pypi)
        low = lowest_admitted(operator, version)
        if low is None or low not in ranges[pypi]:
            wrong.append(f"{name}{operator}{version} admits {low}, outside pyproject's {pypi}{ranges[pypi]}")
    assert not wrong, f"{path.name}: " + "; ".join(wrong)
    assert {"python", "torch"} <= set(checked), f"{path.name} pins python and pytorch: {checked}"


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_conda_pip_line_installs_this_checkout_with_extras_that_exist(path: Path):
    (pip,) = [d["pip"] for d in yaml.safe_load(path.read_text())["dependencies"] if isinstance(d, dict)]
    (line,) = [entry for entry in pip if entry.startswith("-e ")]
    m = re.fullmatch(r"-e (\S+?)(?:\[([\w,]+)\])?", line)
    assert m, line
    assert (path.parent / m[1] / "pyproject.toml").is_file(), f"{line}: not this checkout (relative to envs/)"
    extras = set(filter(None, (m[2] or "").split(",")))
    assert extras <= set(PYPROJECT["optional-dependencies"]), f"{line}: no such extra in pyproject"


def test_every_rule_names_a_conda_file_that_exists():
    named = {m for smk in (REPO / "rules").glob("*.smk") for m in re.findall(r'"\.\./(envs/[\w.-]+)"', smk.read_text())}
    assert named, "no rule names a conda file"
    assert all((REPO / n).is_file() for n in named), sorted(n for n in named if not (REPO / n).is_file())
    assert "envs/gpu.yaml" in named


def makefile_value(name: str) -> str:
    m = re.search(rf"^{name} \?= (.+)$", (REPO / "Makefile").read_text(), re.M)
    assert m, f"the Makefile sets no {name}"
    return m[1].strip()


def test_makefile_torch_pin_is_in_pyproject_range_and_the_index_names_a_cuda_build():
    pin = Requirement(makefile_value("TORCH_SPEC"))
    (version,) = [Version(s.version) for s in pin.specifier]
    assert version in pyproject_ranges()["torch"], f"TORCH_SPEC {pin} outside pyproject's torch range"
    assert re.fullmatch(r"https://download\.pytorch\.org/whl/cu\d{3}", makefile_value("TORCH_INDEX"))


def pypi_reachable(index: str) -> str | None:
    """None when the index answers; else why not."""
    try:
        with urllib.request.urlopen(f"{index.rstrip('/')}/pip/", timeout=10):
            return None
    except OSError as exc:
        return str(exc)


def build_isolation() -> list[str]:
    """--no-build-isolation where this environment has what pyproject's build-system requires (saves
    installing setuptools into a throwaway build environment first); else pip's default."""
    from importlib.metadata import PackageNotFoundError, version

    build = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]
    for requirement in map(Requirement, build["requires"]):
        try:
            if not requirement.specifier.contains(version(requirement.name)):
                return []
        except PackageNotFoundError:
            return []
    return ["--no-build-isolation"]


@pytest.fixture(scope="module")
def gpu_install_plan(tmp_path_factory) -> dict:
    """pip's report of `pip install '.[gpu]'` with torch pinned to the Makefile's TORCH_SPEC, resolved
    against the index alone: no pip config file (this machine's points at local wheels, which would stand
    in for the index's), an empty environment (--ignore-installed), no build isolation (the project's
    metadata is built with the setuptools here). Some 20 s, most of it fetching 150 packages' metadata.
    Torch resolves to PyPI's own Linux wheel, a CUDA build: the plan holds the CUDA libraries it needs."""
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple")
    if why := pypi_reachable(index):
        if PYPI_REQUIRED:
            pytest.fail(f"EMBEDPIPE_PYPI=required but {index} is unreachable: {why}")
        pytest.skip(f"{index} is unreachable ({why}): the install is resolved where PyPI is (CI sets EMBEDPIPE_PYPI)")
    work = tmp_path_factory.mktemp("pip")
    (work / "constraints.txt").write_text(makefile_value("TORCH_SPEC") + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_FIND_LINKS", "PIP_CONSTRAINT", "PIP_NO_INDEX")}
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", *build_isolation(),
         "--quiet", "--report", str(work / "report.json"), "-c", str(work / "constraints.txt"), ".[gpu]"],
        cwd=REPO, env=env | {"PIP_CONFIG_FILE": os.devnull}, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"pip could not resolve '.[gpu]':\n{proc.stderr[-3000:]}"
    return json.loads((work / "report.json").read_text())


def test_gpu_extra_resolves_with_every_dependency_and_the_extra(gpu_install_plan):
    planned = {normalise(i["metadata"]["name"]): i["metadata"]["version"] for i in gpu_install_plan["install"]}
    wanted = [Requirement(r) for r in [*PYPROJECT["dependencies"], *PYPROJECT["optional-dependencies"]["gpu"]]]
    missing = [str(r) for r in wanted if normalise(r.name) not in planned]
    assert not missing, f"not in pip's plan for '.[gpu]': {missing}"
    outside = [f"{r} (plan: {planned[normalise(r.name)]})" for r in wanted
               if not r.specifier.contains(planned[normalise(r.name)], prereleases=True)]
    assert not outside, outside
    (me,) = [i for i in gpu_install_plan["install"] if normalise(i["metadata"]["name"]) == "embedpipe"]
    assert me["requested_extras"] == ["gpu"]
    assert Version(planned["torch"]) == Version(makefile_value("TORCH_SPEC").split("==")[1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.machine() != "x86_64",
                    reason="PyPI's torch is a CUDA build on Linux x86_64 only")
def test_the_pinned_torch_is_a_cuda_build_of_the_cuda_the_makefile_index_names(gpu_install_plan):
    """TORCH_INDEX's cuXYZ is the CUDA of PyPI's torch at TORCH_SPEC: the index gives the same build."""
    (torch,) = [i for i in gpu_install_plan["install"] if i["metadata"]["name"] == "torch"]
    cuda = [r for r in map(Requirement, torch["metadata"]["requires_dist"]) if r.name == "cuda-toolkit"]
    assert cuda, f"torch {torch['metadata']['version']} from PyPI requires no cuda-toolkit: not a CUDA build?"
    (spec,) = cuda[0].specifier
    major, minor = Version(spec.version).release[:2]
    assert makefile_value("TORCH_INDEX").endswith(f"/cu{major}{minor}"), (
        f"torch {torch['metadata']['version']} is a CUDA {major}.{minor} build; TORCH_INDEX names another")
    planned = {normalise(i["metadata"]["name"]) for i in gpu_install_plan["install"]}
    assert {"cuda-toolkit", "nvidia-ml-py", "triton"} <= planned
