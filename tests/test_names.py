"""The house's layers: settings name what the stages register, and no import runs up."""

import ast
from pathlib import Path

from deepsync import names
from deepsync.features.families import FAMILIES
from deepsync.train.tabular import ESTIMATORS
from deepsync.train.winners import RECIPES

SRC = Path(__file__).resolve().parents[1] / "src"
# From the bottom up: a module may import its own layer and those below it, never above
LAYERS = [
    ("deepsync", "errors", "durable", "parallel", "kaggle_client", "names"),
    ("config",),
    ("runs",),  # the run folder: train, submit, study, report and kernels read it
    ("data",),
    ("features",),
    ("train",),
    ("submit",),
    ("pipeline",),  # data -> features -> train -> submit, wired once
    ("report", "kernels"),
    ("study",),
    ("cli", "__main__"),
    ("bench",),  # the benchmarks: bench-scale runs each stage through the CLI
]


def test_the_stages_register_exactly_the_names_settings_may_use():
    assert tuple(FAMILIES) == names.FAMILIES
    assert {n: f.seconds for n, f in FAMILIES.items()} == names.FAMILY_WINDOWS
    assert tuple(ESTIMATORS) == names.ESTIMATORS
    assert set(RECIPES) == set(names.RECIPE_FAMILIES)
    assert names.BASELINE in RECIPES


def _layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else module
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def _imports() -> dict[str, set[str]]:
    """Every module of the package and the package modules it imports, at its top or
    inside a function."""
    paths = {
        ".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__"): p
        for p in SRC.rglob("*.py")
    }
    found = {}
    for module, path in paths.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("deepsync"):
                for alias in node.names:  # `from deepsync.train import winners`: the module
                    inner = f"{node.module}.{alias.name}"
                    targets.add(inner if inner in paths else node.module)
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("deepsync")}
        found[module] = targets
    return found


def test_no_import_runs_up_and_config_imports_no_stage():
    imports = _imports()
    upward = sorted(f"{m} -> {t}" for m, ts in imports.items() for t in ts if _layer(t) > _layer(m))
    assert upward == []
    assert imports["deepsync.config"] <= {"deepsync.errors", "deepsync.names"}


def test_no_import_cycle_between_modules():
    imports = _imports()

    def reaches(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for t in imports.get(todo.pop(), ()):
                if t in imports and t not in seen:
                    seen.add(t)
                    todo.append(t)
        return seen

    assert sorted(m for m in imports if m in reaches(m)) == []


def test_no_comma_list_is_split_outside_config():
    """Settings and options are parsed in config.py (`deepsync.config.words`); the one
    other split reads a line of a data file."""
    found = sorted(
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if 'split(",")' in path.read_text() or "split(',')" in path.read_text()
    )
    assert found == ["deepsync/config.py", "deepsync/data/segment.py"]


STAGE_ENTRIES = {
    "deepsync.data.stage": "prepare",
    "deepsync.features.stage": "build_features",
    "deepsync.train.stage": "train",
    "deepsync.submit.stage": "make_submission",
}


def test_the_stages_are_wired_in_one_place_the_pipeline_runner():
    """Only deepsync.pipeline imports a stage's entry point; the CLI, the study, the
    kernels and the benchmarks call `pipeline.run`."""
    callers = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            named = isinstance(node, ast.ImportFrom) and node.module in STAGE_ENTRIES
            if named and STAGE_ENTRIES[node.module] in {a.name for a in node.names}:
                callers.add(path.relative_to(SRC).as_posix())
    assert callers == {"deepsync/pipeline.py"}
    imports = _imports()
    users = {m for m, targets in imports.items() if "deepsync.pipeline" in targets}
    assert {"deepsync.cli", "deepsync.study", "deepsync.kernels.entry"} <= users
    assert {"deepsync.bench.harness", "deepsync.bench.features"} <= users


def test_each_folder_of_the_package_says_what_it_does():
    folders = [p for p in (SRC / "deepsync").iterdir() if p.is_dir() and p.name != "__pycache__"]
    folders = [p for p in folders if any(p.glob("*.py"))]
    assert {p.name for p in folders} >= {"data", "features", "train", "submit", "kernels"}
    for folder in folders:
        init = folder / "__init__.py"
        assert init.exists(), f"{folder.name}/ is not a package"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc.split()) >= 8, f"{folder.name}/__init__.py says too little"
