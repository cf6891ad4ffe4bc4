"""The package declares what requirements.txt locks: `pip install .` alone gives a kit that runs."""

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
SAME_MODULE = {"xgboost-cpu": "xgboost"}  # the lock's CPU build of the declared library


def _locked() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            pins[SAME_MODULE.get(requirement.name, requirement.name)] = Version(spec.version)
    return pins


def test_every_locked_package_is_declared_and_the_lock_satisfies_the_declaration():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in project["dependencies"]]
    declared += [Requirement(r) for r in project["optional-dependencies"]["dev"]]
    locked = _locked()
    assert sorted(r.name for r in declared) == sorted(locked)
    for requirement in declared:
        assert requirement.specifier.contains(locked[requirement.name]), requirement
    assert "pytest" not in {r.name for r in (Requirement(d) for d in project["dependencies"])}
