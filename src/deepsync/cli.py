"""The command line: one subcommand per pipeline stage.

The only place that reads the environment or the terminal: it builds the configuration
once and passes it down. A `DeepSyncError` is printed as one line (exit 2), an OS error
(no space, no permission, a folder where a file belongs) as one line naming the path and
what to do (exit 1; 141 when the output pipe closed early); a traceback only with
``--debug``. Ctrl-C exits 130 after the stage's own cleanup.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deepsync import __version__, pipeline
from deepsync.config import SOURCES, Config, load_config, numbers
from deepsync.errors import DeepSyncError, os_error_line


@dataclass(frozen=True)
class _Stage:
    """One subcommand: its name, the function that runs it, its texts and own options."""

    name: str
    run: Callable[[Config, argparse.Namespace], int]
    help: str
    description: str
    options: tuple[tuple[tuple[str, ...], dict], ...] = ()
    defaults: tuple[tuple[str, str], ...] = ()  # e.g. what Ctrl-C's line says


def _option(*flags: str, **settings) -> tuple[tuple[str, ...], dict]:
    return flags, settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepsync",
        description="Seizure prediction from intracranial EEG, from data to Kaggle submission.",
        epilog="Settings: defaults, then --profile FILE or NAME (TOML: [data], [synthetic], "
        "[features], [train], [baseline], [cnn], [submit], [kernels]; named: demo, gpu), "
        "then --set section.key=value.",
    )
    parser.add_argument("--version", action="version", version=f"deepsync {__version__}")
    _add_common_options(parser, top_level=True)
    stages = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for stage in _STAGES:
        sub = stages.add_parser(stage.name, help=stage.help, description=stage.description)
        for flags, settings in stage.options:
            sub.add_argument(*flags, **settings)
        _add_common_options(sub, top_level=False)
        sub.set_defaults(run=stage.run, **dict(stage.defaults))
    return parser


def _add_common_options(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    """Options that work before or after the stage name (``deepsync data --debug``).

    A stage's copies default to SUPPRESS so they never undo what came before the stage;
    its ``--set`` values go to their own list, applied after the top-level ones.
    """
    default = {} if top_level else {"default": argparse.SUPPRESS}
    parser.add_argument("--profile", type=Path, help="TOML file of settings", **default)
    parser.add_argument(
        "--set",
        dest="overrides" if top_level else "stage_overrides",
        action="append",
        default=[] if top_level else argparse.SUPPRESS,
        metavar="KEY=VALUE",
        help="override one setting, e.g. synthetic.seed=7",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks", **default)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars", **default)
    parser.add_argument(
        "--workers",
        type=int,
        help="processes for parallel work (default: all cores)",
        **({"default": 0} if top_level else default),
    )


def _overrides(args: argparse.Namespace) -> list[str]:
    """Stage flags are shorthands for --set; they apply last."""
    pairs = {
        "source": "data.source",
        "data_dir": "data.data_dir",
        "kaggle_dataset": "data.kaggle_dataset",
        "root": "data.root",
    }
    return (
        list(args.overrides)
        + list(getattr(args, "stage_overrides", []))
        + [
            f"{key}={getattr(args, name)}"
            for name, key in pairs.items()
            if getattr(args, name, None) is not None
        ]
    )


def _run_data(config: Config, args: argparse.Namespace) -> int:
    pipeline.run(config, ["data"], _options(args), say=print)
    return 0


def _run_features(config: Config, args: argparse.Namespace) -> int:
    options = dataclasses.replace(_options(args), stop_on_failure=True)
    try:
        pipeline.run(config, ["features"], options, say=print)
    except pipeline.StageFailed as failed:  # the summary above lists them
        print(f"deepsync features: error: {failed}", file=sys.stderr)
        return 1
    return 0


def _options(args: argparse.Namespace) -> pipeline.Options:
    return pipeline.Options(workers=args.workers, progress=not args.no_progress)


def _run_pictures(config: Config, args: argparse.Namespace) -> int:
    from deepsync.features.cache import FeatureCache, cache_folder
    from deepsync.features.pictures import save_pictures, stack_axes

    cache = FeatureCache.open(cache_folder(config.features))
    for path in save_pictures(cache, args.out, stack_axes(cache, config.features), args.patients):
        print(f"pictures: {path}")
    return 0


def _run_train(config: Config, args: argparse.Namespace) -> int:
    if args.leak_check:
        from deepsync.train.stage import leak_check

        aucs = leak_check(config)
        print(
            f"leak check (baseline, {config.train.folds} folds, pooled OOF AUC): "
            f"hour-grouped {aucs['grouped']:.3f}, hour-blind random {aucs['random']:.3f}; "
            f"random folds overstate by {aucs['random'] - aucs['grouped']:+.3f}"
        )
        return 0
    from deepsync.durable import FolderLock
    from deepsync.submit.stage import candidates_summary

    report = pipeline.run(config, ["train"], _options(args), say=print)["train"]
    with FolderLock(report.folder, "deepsync train"):  # with submit.tta it writes there
        print(candidates_summary(report.folder, config))
    return 0


def _run_study(config: Config, args: argparse.Namespace) -> int:
    from deepsync.study import load_grid, pick, run_study, summary

    grid = pick(load_grid(args.grid), args.only, args.seeds, args.scenarios)
    report = run_study(
        grid,
        args.profile,
        _overrides(args),
        args.out,
        workers=args.workers,
        progress=not args.no_progress,
    )
    print(summary(report))
    return 0


def _run_submit(config: Config, args: argparse.Namespace) -> int:
    from deepsync.durable import FolderLock
    from deepsync.submit.leaderboard import render, save, table
    from deepsync.submit.stage import send, summary

    with FolderLock(config.submit.folder, "deepsync submit"):  # the file stays as sent
        report = pipeline.run(config, ["submit"], _options(args))["submit"]
        if args.submit:
            try:
                send(report, config, args.message or f"deepsync {config.train.run}")
            finally:
                print(summary(report))
        else:
            print(summary(report))
            print("  (not sent to Kaggle: `make submit SUBMIT=1 MSG=...` sends it)")
        board = table(config.submit.folder)
        save(board, config.submit.folder)
    print(render(board))
    return 0


def _run_validate(config: Config, args: argparse.Namespace) -> int:
    from deepsync.submit.references import pick_sample
    from deepsync.submit.submission import problems, read_sample

    sample_path = args.sample or pick_sample(config, args.file)
    found = problems(args.file, read_sample(sample_path))
    if found:
        print(f"{args.file}: not valid against {sample_path}:")
        for problem in found:
            print(f"  - {problem}")
        return 1
    print(f"{args.file}: valid ({sample_path})")
    return 0


def _run_score(config: Config, args: argparse.Namespace) -> int:
    from deepsync.submit.references import pick_labels, pick_sample
    from deepsync.submit.scoring import describe, load_labels, score
    from deepsync.submit.submission import read, read_sample

    labels_path = args.labels or pick_labels(config, args.file)
    labels = load_labels(labels_path)
    scores = read(args.file, read_sample(pick_sample(config, args.file)))
    print(f"score: {args.file} against {labels_path} (pooled ROC AUC)")
    print(describe(score(scores, labels)))
    return 0


def _run_blend(config: Config, args: argparse.Namespace) -> int:
    from deepsync.submit.blend import rank_average
    from deepsync.submit.references import pick_sample
    from deepsync.submit.submission import read, read_sample, write

    sample = read_sample(pick_sample(config, args.files[0]))
    weights = None
    if args.weights:
        weights = list(numbers(args.weights, "--weights", float, "2,1"))
    blended = rank_average([read(f, sample) for f in args.files], weights)
    print(f"blend: {write(args.out, blended, sample)} (rank average of {len(args.files)})")
    return 0


def _run_leaderboard(config: Config, args: argparse.Namespace) -> int:
    from deepsync.durable import FolderLock
    from deepsync.submit.leaderboard import refresh_from_kaggle, render, save, table

    with FolderLock(config.submit.folder, "deepsync leaderboard"):
        if args.kaggle:
            added = refresh_from_kaggle(config.submit.folder, config.data.competition)
            print(f"leaderboard: {added} new score(s) from Kaggle")
        board = table(config.submit.folder)
        path = save(board, config.submit.folder)
    print(render(board))
    print(f"  table: {path}")
    return 0


def _run_report(config: Config, args: argparse.Namespace) -> int:
    from deepsync.report.page import build_report

    path = build_report(config, args.out, every_run=args.all)
    print(f"report: {path} (open it in a browser; the PNG files are beside it)")
    return 0


def _kaggle_user(config: Config) -> str:
    """kernels.user, else KAGGLE_USERNAME, else the user name in kaggle.json."""
    if config.kernels.user:
        return config.kernels.user
    if os.environ.get("KAGGLE_USERNAME"):
        return os.environ["KAGGLE_USERNAME"]
    folder = os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle"
    try:
        values = json.loads((Path(folder) / "kaggle.json").read_bytes())
    except (OSError, ValueError):
        return ""
    return str(values.get("username", "")) if isinstance(values, dict) else ""


def _run_kernels(config: Config, args: argparse.Namespace) -> int:
    from deepsync.kernels import bundle, remote

    if args.stage == "kernel":
        if args.patients:
            patients = ",".join(map(str, args.patients))
            config = dataclasses.replace(
                config, kernels=dataclasses.replace(config.kernels, patients=patients)
            )
        user = _kaggle_user(config)
        for made in bundle.render(config, user):
            who = ",".join(map(str, made.patients)) if made.patients else "all"
            print(f"kernel: {made.folder}/ ({made.kernel}, patients {who})")
        print(f"  inputs: {bundle.input_dataset(config, user)} (make kaggle-dataset)")
        return 0
    if args.stage == "kaggle-dataset":
        from deepsync.kernels.dataset import upload

        ref, done = upload(config, _kaggle_user(config), quiet=args.no_progress)
        print(f"kaggle-dataset: {ref} ({done}); kernels attach it as an input")
        return 0
    bundles = bundle.load(config)
    if args.stage == "kernel-local":
        from deepsync.kernels.local import local_input, run_locally

        root = args.input or local_input(config, _kaggle_user(config))
        runs = run_locally(bundles, root, config.kernels.folder)
        for run in runs:
            state = "ok" if run.returncode == 0 else f"FAILED (exit {run.returncode})"
            print(
                f"kernel-local: {run.bundle.slug}: {state} in {run.seconds:.0f} s -> {run.working}"
            )
        return 0 if all(r.returncode == 0 for r in runs) else 1
    if args.stage == "kernel-push":
        for pushed in remote.push(bundles):
            print(f"kernel-push: {pushed.kernel} version {pushed.version} {pushed.url}")
        return 0
    if args.stage == "kernel-status":
        print(remote.render_states(remote.status(bundles)))
        return 0
    from deepsync.submit.leaderboard import render, save, table
    from deepsync.submit.stage import summary

    print(summary(remote.bring_home(config, bundles)))
    board = table(config.submit.folder)
    save(board, config.submit.folder)
    print(render(board))
    return 0


KERNEL_STAGES = {  # name: (help, description)
    "kernel": (
        "render Kaggle kernel bundles under kernels/ (one per patient with --patients)",
        "Writes kernels/<slug>/kernel-metadata.json and one self-contained script that "
        "carries the deepsync package and these settings (use --profile gpu): no pip "
        "install, no internet on Kaggle. Settings: [kernels] section.",
    ),
    "kernel-local": (
        "run the rendered kernel scripts here, inputs laid out as on Kaggle",
        "Each bundle's script in its own process, reading kernels/local-input/ (the "
        "dataset `kaggle-dataset` would upload, where Kaggle mounts it) and writing "
        "kernels/local/<slug>/ (its /kaggle/working).",
    ),
    "kaggle-dataset": (
        "upload the feature cache (or the segments) as a private Kaggle dataset",
        "The kernels' input, with the kaggle client: kernels.upload=features (the cache, "
        "small) or data (the segments). A dataset that exists gets a new version.",
    ),
    "kernel-push": (
        "push every rendered bundle to Kaggle (the patients' kernels run at once)",
        "kaggle kernels push for each bundle in kernels/bundles.json; a refusal is an error.",
    ),
    "kernel-status": (
        "a table of each pushed kernel's state on Kaggle",
        "QUEUED, RUNNING, COMPLETE, ERROR (with Kaggle's message) per kernel.",
    ),
    "kernel-output": (
        "download the kernels' outputs, merge the patients, make the submission",
        "Outputs (not checkpoints) to kernels/output/<slug>/, the per-patient runs merged "
        "into runs/<run>-kaggle/, its submission written, scored and added to the ledger "
        "as `make submit` does.",
    ),
}
KERNEL_OPTIONS = {
    "kernel": (
        _option("--patients", nargs="+", type=int, help="one kernel per patient (e.g. 1 2 3)"),
    ),
    "kernel-local": (_option("--input", type=Path, help="a folder laid out like /kaggle/input"),),
}
FILE = _option("file", type=Path, help="the submission CSV")

_STAGES = (
    _Stage(
        "data",
        _run_data,
        "fetch or generate segments, verify them, write the segment index",
        "Get the segments from SOURCE, verify them and write data/segments.csv. "
        "synthetic: the embedded default (generated); kaggle: the kaggle client; "
        "dir: a folder on disk read in place (Kaggle or epilepsyecosystem layout).",
        (
            _option("--source", choices=SOURCES, help="where the segments come from"),
            _option("--data-dir", help="source=dir: folder holding the segments"),
            _option(
                "--kaggle-dataset",
                metavar="OWNER/SLUG",
                help="source=kaggle: a Kaggle dataset holding a copy of the data",
            ),
            _option("--root", help="the kit's data folder (default: data)"),
        ),
    ),
    _Stage(
        "features",
        _run_features,
        "cache per-electrode log spectrograms and band powers",
        "Run every indexed segment through the spectrogram kernel into "
        "cache/features-<hash>/ (resumable: a rerun skips what is cached). Settings: "
        "[features] section, e.g. --set features.bands=64.",
    ),
    _Stage(
        "pictures",
        _run_pictures,
        "save cached stacks as PNG pictures (preictal beside interictal)",
        "One PNG per patient from the feature cache: an interictal and a "
        "preictal segment's 16 electrode spectrograms side by side, dropout shaded.",
        (
            _option(
                "--out",
                type=Path,
                default=Path("reports/features"),
                help="folder for the PNG files (default: reports/features)",
            ),
            _option("--patients", type=int, default=3, help="pictures to save"),
        ),
    ),
    _Stage(
        "train",
        _run_train,
        "fit the models of train.models per patient on hour-grouped folds",
        "Per patient, on folds grouped by recording hour (runs/<run>/folds.csv): "
        "every model of train.models: baseline (the band-power bar), cnn, and window models "
        "ESTIMATOR:FAMILIES (logistic, gbm, svm, knn on feature families such as "
        "power+corr, or all). Writes OOF and test predictions and metrics to runs/<run>/ "
        "and prints per-patient and pooled OOF AUC, and the blend of the run's models. "
        "Resumable: a rerun skips finished CNN folds; models can be added to a run later. "
        "Settings: [train], [baseline], [cnn] sections, e.g. --set cnn.epochs=5 "
        "--set train.models=baseline,gbm:power+corr.",
        (
            _option(
                "--leak-check",
                action="store_true",
                help="instead: the baseline's CV AUC on hour-grouped vs hour-blind random folds",
            ),
        ),
    ),
    _Stage(
        "study",
        _run_study,
        "train a grid of named variants on the same folds; one table of OOF AUCs",
        "Every variant of the grid (a TOML file of named sets of section.key "
        "overrides; default: the kit's own grid) trained once per seed on the same "
        "hour-grouped folds, as runs/study/<run>/<variant>-seed<seed>/ (resumable). "
        "Prints and writes reports/study/<run>/table.csv, table.md and index.html (with a "
        "plot): per-patient and pooled OOF AUC, calibrated, mean and spread over seeds, "
        "wall time, images/s. It makes the data and features it needs first (resumable). A "
        "scenario grid (grids/scenarios.toml, make study's) trains every variant on one "
        "synthetic set per scenario and seed and prints one table over the scenarios: each "
        "one's OOF AUC, the mean, the worst, the least margin over baseline.",
        (
            _option(
                "--grid", type=Path, help="grid TOML file or name (default: the kit's default grid)"
            ),
            _option("--only", default="", metavar="A,B", help="train only these variants"),
            _option("--seeds", default="", metavar="1,2", help="instead of the grid's seeds"),
            _option(
                "--scenarios",
                default="",
                metavar="A,B",
                help="a scenario grid cut to these scenarios (synthetic.scenario names)",
            ),
            _option(
                "--out",
                type=Path,
                help="where (default: reports/study/<run>, <run>-<grid> for another)",
            ),
        ),
    ),
    _Stage(
        "submit",
        _run_submit,
        "write the run's submission, score it locally, optionally send it to Kaggle",
        "From runs/<run>/: fold-averaged test predictions, the cross-patient "
        "calibration and model (or blend) with the best pooled OOF AUC, written to "
        "submissions/<name>.csv in the sample submission's order, validated, scored on the "
        "local test labels, and added to submissions/ledger.csv. With --submit, sent to "
        "Kaggle with the kaggle client. Settings: [submit] section, e.g. "
        "--set submit.model=cnn --set submit.calibration=rank.",
        (
            _option("--submit", action="store_true", help="also send the file to Kaggle"),
            _option("-m", "--message", default="", help="the Kaggle submission's description"),
        ),
    ),
    _Stage(
        "validate",
        _run_validate,
        "check a submission CSV against the sample submission",
        "Says precisely what is wrong with FILE: header, missing, extra or "
        "duplicated files, values that are not numbers, NaN, outside [0, 1]. Exit 0 if valid.",
        (
            FILE,
            _option(
                "--sample",
                type=Path,
                help="sample submission (default: the data's own, or Kaggle's)",
            ),
        ),
    ),
    _Stage(
        "score",
        _run_score,
        "a submission's pooled ROC AUC on the Public (and Private) test files",
        "Scores FILE as the leaderboard did: one ROC AUC over all patients' "
        "Public files (Ignored ones left out), per patient too; Private as well where its "
        "labels are known (the synthetic set). Labels: the organisers' public label file "
        "(shipped), or the synthetic set's, whichever labels FILE's test files.",
        (FILE, _option("--labels", type=Path, help="test labels file (image,class,usage)")),
    ),
    _Stage(
        "blend",
        _run_blend,
        "rank-average several submissions into one",
        "Each submission's scores become ranks in (0, 1), averaged file by "
        "file (weighted if --weights is given): the 2016 winners' blend.",
        (
            _option("files", type=Path, nargs="+", help="submission CSVs"),
            _option("--weights", help="comma-separated, one per file (default: equal)"),
            _option("--out", type=Path, required=True, help="where to write the blend"),
        ),
    ),
    _Stage(
        "leaderboard",
        _run_leaderboard,
        "local CV against public and private scores, per submission",
        "A table of every submission in submissions/ledger.csv: pooled OOF AUC, "
        "local Public/Private scores, the scores Kaggle returned and the gaps; also written "
        "to submissions/leaderboard.csv. --kaggle reads Kaggle's scores back first.",
        (
            _option(
                "--kaggle", action="store_true", help="first fetch the submissions' Kaggle scores"
            ),
        ),
    ),
    *(
        _Stage(
            name,
            _run_kernels,
            text,
            description,
            KERNEL_OPTIONS.get(name, ()),
            (("after_interrupt", "a rerun starts the kernels afresh, as on Kaggle"),)
            if name == "kernel-local"
            else (),
        )
        for name, (text, description) in KERNEL_STAGES.items()
    ),
    _Stage(
        "report",
        _run_report,
        "one self-contained HTML page of pictures: data, features, runs, submissions",
        "Writes reports/<run>/index.html (images inside it: it opens offline) "
        "and its PNG files: segments and dropout, example stacks, where preictal differs, "
        "ROC curves, fold AUCs, training curves, the submissions ledger.",
        (
            _option("--all", action="store_true", help="every run under runs/, in one page"),
            _option("--out", type=Path, default=Path("reports"), help="where (default: reports/)"),
        ),
    ),
)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.workers <= 0:
        args.workers = os.cpu_count() or 1
    config, stdout = None, sys.stdout
    sys.stdout = _Output(stdout)
    try:
        config = load_config(args.profile, _overrides(args))
        code = args.run(config, args)
        sys.stdout.flush()  # here, where a closed or full output is caught like the rest
        return code
    except DeepSyncError as error:
        if args.debug:
            raise
        return _say(args, str(error), 2)
    except KeyboardInterrupt:
        after = getattr(args, "after_interrupt", "rerun to resume")
        print(f"\ndeepsync {args.stage}: interrupted; {after}", file=sys.stderr)
        return 130
    except _OutputError as failed:
        if args.debug:
            raise
        _discard_output(stdout)
        error = failed.error
        if isinstance(error, BrokenPipeError):
            return _say(args, "its output was closed before it ended (broken pipe)", 141)
        return _say(args, f"cannot write its output ({error.strerror}); send it elsewhere", 1)
    except OSError as error:
        if args.debug:
            raise
        return _say(args, os_error_line(error, _places(config)), 1)
    finally:
        sys.stdout = stdout


class _OutputError(Exception):
    """Standard output failed (a closed pipe, a full disk): ``error`` is what it raised."""

    def __init__(self, error: OSError):
        super().__init__(f"standard output: {error}")
        self.error = error


class _Output:
    """``sys.stdout`` while a stage runs: its write errors say they are the output's.

    An error writing to an open file names no file; this tells the output's apart from
    the rest, which name the file they were writing.
    """

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError as error:
            raise _OutputError(error) from error

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as error:
            raise _OutputError(error) from error

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def _discard_output(stream) -> None:
    """Send the rest of a failed output to /dev/null: the interpreter's own flush at exit
    would fail again, with a traceback (a failed write keeps its bytes buffered)."""
    with contextlib.suppress(OSError, ValueError, AttributeError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def _say(args: argparse.Namespace, text: str, code: int) -> int:
    """The one line a failed stage prints (stderr), and its exit code."""
    with contextlib.suppress(OSError):
        print(f"deepsync {args.stage}: error: {text}", file=sys.stderr)
    return code


def _places(config: Config | None) -> dict[str, Path]:
    """The folders that settings name, for an OS error's advice (which setting to move)."""
    config = config or Config()
    places = {
        "data.root": config.data.root,
        "features.cache_root": config.features.cache_root,
        "train.runs_root": config.train.runs_root,
        "submit.folder": config.submit.folder,
        "kernels.folder": config.kernels.folder,
    }
    if config.data.data_dir is not None:
        places["data.data_dir"] = config.data.data_dir
    return places
