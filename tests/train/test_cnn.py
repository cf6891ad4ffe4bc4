"""The CNN loop: it can learn (one-batch overfit), it resumes exactly, it stops early."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from deepsync.config import CnnConfig
from deepsync.train import cnn
from deepsync.train.cnn import FoldData, fit_fold
from deepsync.train.model import build_model

pytestmark = pytest.mark.filterwarnings("ignore::deepsync.train.model.PretrainedWeightsWarning")

FAST = CnnConfig(model="test_resnet", epochs=2, batch_size=8, augment=True, lr=1e-3)


def test_inception_resnet_v2_overfits_one_batch_on_cpu():
    torch.manual_seed(0)
    model = build_model(CnnConfig())
    x = torch.randn(4, 16, 80, 80)
    y = torch.tensor([0.0, 1.0, 0.0, 1.0])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    first = None
    for _ in range(20):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = first if first is not None else loss.item()
    model.eval()
    with torch.no_grad():
        scores = torch.sigmoid(model(x))
    assert loss.item() < 0.1 < first
    assert (scores[y == 1].min() > scores[y == 0].max()).item()


@pytest.fixture(scope="module")
def fold(tiny_cache):
    """Patient 1 of the tiny cache, fold 0 of 2 (hours kept together)."""
    from deepsync.train.folds import grouped_folds, training_segments

    _, cache = tiny_cache
    folds = grouped_folds(training_segments(cache.segments, [1]), 2, seed=0)
    train, held = folds[folds["fold"] == 1], folds[folds["fold"] == 0]
    test = cache.segments[(cache.segments["split"] == "test") & (cache.segments["patient"] == 1)]
    data = FoldData(
        train["row"].to_numpy(),
        train["label"].to_numpy(),
        held["row"].to_numpy(),
        held["label"].to_numpy(),
        test["row"].to_numpy(),
    )
    return cache.stacks, data


def test_fit_fold_writes_its_files_and_predicts_every_segment(fold, tmp_path):
    stacks, data = fold
    result = fit_fold(stacks, data, FAST, 3, tmp_path, progress=False)
    assert {p.name for p in tmp_path.iterdir()} == {"best.pt", "log.csv", "result.json"}
    assert len(result["valid_scores"]) == len(data.valid_rows)
    assert len(result["test_scores"]) == len(data.test_rows)
    assert all(0 <= s <= 1 for s in result["valid_scores"] + result["test_scores"])
    log = (tmp_path / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,train_loss,valid_auc") and len(log) == 1 + FAST.epochs
    assert json.loads((tmp_path / "result.json").read_text())["epochs_run"] == FAST.epochs


def test_a_saved_fold_predicts_as_it_did_and_tta_averages_shifts(fold, tmp_path):
    from deepsync.train.cnn import predict_saved_fold, tta_shifts

    stacks, data = fold
    result = fit_fold(stacks, data, FAST, 3, tmp_path, progress=False)
    rows = [data.valid_rows, data.test_rows]
    plain = predict_saved_fold(stacks, tmp_path, rows, FAST, copies=0)
    assert np.allclose(plain[0], result["valid_scores"], atol=1e-6)
    assert np.allclose(plain[1], result["test_scores"], atol=1e-6)
    shifted = predict_saved_fold(stacks, tmp_path, rows, FAST, copies=2)
    assert not np.allclose(shifted[0], plain[0]) and np.all((shifted[0] >= 0) & (shifted[0] <= 1))
    assert tta_shifts(144, 2) == (0, 48, 96) and tta_shifts(10, 0) == (0,)


@pytest.fixture(scope="module")
def whole_fold(fold, tmp_path_factory):
    """Three epochs without an interrupt."""
    stacks, data = fold
    cfg = dataclasses.replace(FAST, epochs=3)
    return cfg, fit_fold(stacks, data, cfg, 5, tmp_path_factory.mktemp("whole"), progress=False)


@pytest.mark.parametrize("where", ["evaluating", "saving", "saved"])
def test_an_interrupted_fold_resumes_where_an_uninterrupted_one_ends(
    fold, whole_fold, tmp_path, monkeypatch, where
):
    """Ctrl-C in epoch two: while it is evaluated, or just before or after its last.pt."""
    stacks, data = fold
    cfg, whole = whole_fold
    calls = []
    real_auc, real_save = cnn.auc, cnn._save

    def interrupt_evaluating(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_auc(*args)

    def interrupt_around_saving(state, path):
        if path.name == "last.pt" and state["state"]["epoch"] == 2:
            if where == "saved":
                real_save(state, path)
            raise KeyboardInterrupt
        real_save(state, path)

    if where == "evaluating":
        monkeypatch.setattr(cnn, "auc", interrupt_evaluating)
    else:
        monkeypatch.setattr(cnn, "_save", interrupt_around_saving)
    with pytest.raises(KeyboardInterrupt):
        fit_fold(stacks, data, cfg, 5, tmp_path / "cut", progress=False)
    assert (tmp_path / "cut" / "last.pt").exists()
    assert not (tmp_path / "cut" / "result.json").exists()
    monkeypatch.setattr(cnn, "auc", real_auc)
    monkeypatch.setattr(cnn, "_save", real_save)
    resumed = fit_fold(stacks, data, cfg, 5, tmp_path / "cut", progress=False)
    assert resumed["epochs_run"] == whole["epochs_run"] == 3
    assert np.allclose(resumed["valid_scores"], whole["valid_scores"], atol=1e-5)
    assert np.allclose(resumed["test_scores"], whole["test_scores"], atol=1e-5)
    log = pd.read_csv(tmp_path / "cut" / "log.csv")
    assert list(log["epoch"]) == [1, 2, 3]  # every epoch once: none missing, none twice


def test_loader_workers_change_nothing_but_speed(fold, tmp_path):
    """Every stack's crop and augmentation come from (seed, epoch, item), not from a worker."""
    stacks, data = fold
    cfg = dataclasses.replace(FAST, level="window", window_frames=48, balance="sampler")
    alone = fit_fold(stacks, data, cfg, 4, tmp_path / "alone", progress=False)
    workers = dataclasses.replace(cfg, loader_workers=2, loader_prefetch=1)
    helped = fit_fold(stacks, data, workers, 4, tmp_path / "workers", progress=False)
    assert np.allclose(helped["valid_scores"], alone["valid_scores"], atol=1e-6)
    logs = [(tmp_path / f / "log.csv").read_text().splitlines() for f in ("alone", "workers")]
    losses = [[line.split(",")[1] for line in log[1:]] for log in logs]
    assert losses[0] == losses[1]
    other = fit_fold(stacks, data, cfg, 5, tmp_path / "other", progress=False)
    assert not np.allclose(other["valid_scores"], alone["valid_scores"])  # the seed matters


# Interrupted ten times at different moments of taking batches over from a loader worker.
INTERRUPTED_LOADER = """
import os, signal, threading, torch
from deepsync.config import CnnConfig
from deepsync.train.cnn import Runtime, make_loader

class Zeros(torch.utils.data.Dataset):
    def __len__(self):
        return 1 << 30

    def __getitem__(self, item):
        return torch.zeros(16, 8, 8)

cfg = CnnConfig(loader_workers=1, loader_prefetch=2, batch_size=2)
for hundredths in range(1, 11):
    batches = iter(make_loader(Zeros(), cfg, Runtime(torch.device("cpu"), None, False)))
    next(batches)  # the worker is up
    threading.Timer(hundredths / 100, os.kill, (os.getpid(), signal.SIGINT)).start()
    try:
        for _ in batches:
            pass
    except KeyboardInterrupt:
        del batches  # shuts the worker down
    else:
        raise SystemExit("never interrupted")
"""


def test_a_ctrl_c_while_taking_a_batch_over_prints_no_traceback():
    """A Ctrl-C lands in the training process, often halfway through taking a batch over.

    The worker that sent the batch must not print a traceback of the broken connection.
    """
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_LOADER], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


def test_model_input_normalises_augments_and_lays_out_a_batch(fold):
    from deepsync.train.augment import GAINS, PARAMS
    from deepsync.train.cnn import ModelInput, Runtime
    from deepsync.train.dataset import Normaliser

    stacks, data = fold
    normaliser = Normaliser.fit(stacks, data.train_rows, "channel_band", 0)
    x16 = torch.from_numpy(np.asarray(stacks[data.train_rows]))
    plain = ModelInput(Runtime(torch.device("cpu"), None, False), normaliser)(x16)
    assert plain.dtype == torch.float32 and plain.shape == x16.shape
    assert torch.allclose(plain.mean(dim=(0, 3)), torch.zeros(()), atol=0.05)
    assert torch.allclose(plain.std(dim=(0, 3)), torch.ones(()), atol=0.05)
    params = torch.zeros(len(x16), PARAMS)
    params[:, GAINS:] = 0.5
    laid = ModelInput(Runtime(torch.device("cpu"), None, True), normaliser)(x16, params)
    assert laid.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(laid, plain + 0.5, atol=1e-5)


def test_early_stopping_ends_a_fold_that_stops_improving(fold, tmp_path, monkeypatch):
    stacks, data = fold
    monkeypatch.setattr(cnn, "auc", lambda *args: 0.5)  # never better than the first epoch
    cfg = dataclasses.replace(FAST, epochs=10, patience=2)
    result = fit_fold(stacks, data, cfg, 1, tmp_path, progress=False)
    assert result["epochs_run"] == 3 and result["best_epoch"] == 1


def test_batchnorm_statistics_are_recomputed_from_the_training_stacks(fold):
    from deepsync.train.cnn import ModelInput, Runtime, make_loader, recalibrate_batchnorm
    from deepsync.train.dataset import Normaliser, StackDataset

    stacks, data = fold
    dataset = StackDataset(stacks, data.train_rows, data.train_labels, train=True)
    cfg = dataclasses.replace(FAST, batch_size=len(dataset))  # one batch: exact statistics
    rt = Runtime.resolve(cfg)
    inputs = ModelInput(rt, Normaliser.fit(stacks, data.train_rows, "channel", 0))
    model = build_model(cfg)
    conv, norm = model.backbone.conv1[0], model.backbone.conv1[1]  # the stem's first pair
    norm.running_mean.add_(100.0)  # stale statistics
    recalibrate_batchnorm(model, make_loader(dataset, cfg, rt), inputs)
    with torch.no_grad():
        x = inputs(torch.from_numpy(np.asarray(stacks[data.train_rows])))
        features = conv(x).transpose(0, 1).flatten(1)  # (channels, everything else)
    assert torch.allclose(norm.running_mean, features.mean(1), atol=1e-4)
    assert torch.allclose(norm.running_var, features.var(1), rtol=1e-3)
    assert norm.momentum == 0.1  # restored: training goes on as before


@pytest.mark.parametrize(
    "changes",
    [
        {"level": "window", "window_frames": 48, "combine": "max"},
        {"balance": "sampler", "normalise": "channel_band", "freeze": "first_and_head"},
    ],
)
def test_window_level_and_other_options_train(fold, tmp_path, changes):
    stacks, data = fold
    cfg = dataclasses.replace(FAST, epochs=1, **changes)
    result = fit_fold(stacks, data, cfg, 2, tmp_path, progress=False)
    assert len(result["valid_scores"]) == len(data.valid_rows)
    assert np.isfinite(result["valid_scores"]).all()


def test_runtime_on_a_machine_without_a_gpu():
    from deepsync.errors import DeepSyncError
    from deepsync.train.cnn import Runtime

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    rt = Runtime.resolve(CnnConfig())
    assert rt.device.type == "cpu" and rt.dtype is None and not rt.channels_last
    assert Runtime.resolve(CnnConfig(precision="bf16")).dtype == torch.bfloat16
    with pytest.raises(DeepSyncError, match="no CUDA GPU"):
        Runtime.resolve(CnnConfig(device="cuda"))


@pytest.mark.parametrize("capability, precision", [((7, 5), "fp16"), ((8, 0), "bf16")])
def test_auto_precision_is_the_gpus_native_half_type(monkeypatch, capability, precision):
    from deepsync.train.cnn import Runtime

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    rt = Runtime.resolve(CnnConfig(precision="auto"))
    assert rt.device.type == "cuda" and rt.channels_last
    assert rt.dtype == {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    if precision == "fp16":  # Kaggle's T4: bf16 asked for explicitly is slow there
        with pytest.warns(UserWarning, match="emulated and slow"):
            Runtime.resolve(CnnConfig(precision="bf16"))


def test_a_stack_too_small_for_the_model_is_a_one_line_error(fold, tmp_path):
    from deepsync.errors import DeepSyncError

    stacks, data = fold
    cfg = CnnConfig(level="window", window_frames=24, epochs=1)  # 80 x 24: below 75 x 75
    with pytest.raises(DeepSyncError, match="input_height and cnn.input_width"):
        fit_fold(stacks, data, cfg, 0, tmp_path, progress=False)
    resized = dataclasses.replace(cfg, model="test_resnet", input_width=80)
    assert len(fit_fold(stacks, data, resized, 0, tmp_path / "ok", progress=False)["valid_scores"])


def test_select_last_keeps_the_final_epoch_and_trains_every_epoch(fold, tmp_path, monkeypatch):
    stacks, data = fold
    aucs = iter([0.9, 0.5, 0.4, 0.3])  # the held-out fold would pick epoch 1
    monkeypatch.setattr(cnn, "auc", lambda *args: next(aucs))
    cfg = dataclasses.replace(FAST, epochs=4, patience=1, select="last")
    result = fit_fold(stacks, data, cfg, 1, tmp_path, progress=False)
    assert result["epochs_run"] == 4 and result["best_epoch"] == 4


DETERMINISM = """
import json, sys, warnings
warnings.simplefilter("ignore")
import numpy as np
from pathlib import Path
from deepsync.config import CnnConfig
from deepsync.features.cache import FeatureCache
from deepsync.train.cnn import FoldData, fit_fold
cache = FeatureCache.open(sys.argv[1])
rows = json.loads(sys.argv[2])
data = FoldData(*(np.asarray(r) for r in rows))
cfg = CnnConfig(model=sys.argv[3], epochs=2, batch_size=4, lr=1e-3, normalise="channel_band")
result = fit_fold(cache.stacks, data, cfg, 7, Path(sys.argv[4]), progress=False)
print(json.dumps(result["valid_scores"] + result["test_scores"]))
"""


@pytest.mark.parametrize("model", ["spectrumnet", "test_resnet"])
def test_the_same_seed_gives_the_same_scores_in_a_new_process(fold, tiny_cache, tmp_path, model):
    """Bit for bit on the CPU, process after process (hash seeds differ between them)."""
    stacks, data = fold
    _, cache = tiny_cache
    rows = json.dumps([np.asarray(a).tolist() for a in dataclasses.astuple(data)[:5]])
    runs = []
    for k in range(2):
        done = subprocess.run(
            [sys.executable, "-c", DETERMINISM, str(cache.folder), rows, model, tmp_path / str(k)],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(done.stdout.splitlines()[-1]))
    assert runs[0] == runs[1]
    other = fit_fold(
        stacks,
        data,
        CnnConfig(model=model, epochs=2, batch_size=4, lr=1e-3, normalise="channel_band"),
        8,
        tmp_path / "seed8",
        progress=False,
    )
    assert other["valid_scores"] + other["test_scores"] != runs[0]  # the seed matters


def test_mixup_blends_pairs_of_stacks_and_their_labels():
    torch.manual_seed(0)
    x = torch.stack([torch.full((16, 4, 6), float(k)) for k in range(8)])
    y = torch.tensor([0.0, 1.0] * 4)
    mixed, labels = cnn.mixup(x, y, 0.4)
    for k in range(8):  # w * stack k + (1 - w) * some stack j, w >= 0.5; the labels alike
        values = mixed[k].unique()
        assert len(values) == 1  # the whole stack moved together
        fits = []
        for j in range(8):
            w = 1.0 if j == k else (values.item() - j) / (k - j)
            close = abs(values.item() - (w * k + (1 - w) * j)) < 1e-4
            if close and 0.5 - 1e-6 <= w <= 1 + 1e-6:
                fits.append(abs(labels[k].item() - (w * y[k] + (1 - w) * y[j]).item()) < 1e-5)
        assert any(fits)
    assert not torch.equal(labels, y)
    torch.manual_seed(0)
    again = cnn.mixup(x, y, 0.4)
    assert torch.equal(again[0], mixed) and torch.equal(again[1], labels)  # seeded


def test_deterministic_algorithms_change_no_cpu_result_and_are_switched_back(fold, tmp_path):
    stacks, data = fold
    cfg = dataclasses.replace(FAST, epochs=1, model="spectrumnet")
    plain = fit_fold(stacks, data, cfg, 4, tmp_path / "plain", progress=False)
    seen = []
    original = cnn._fit_fold

    def spy(*args, **kwargs):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return original(*args, **kwargs)

    cnn._fit_fold = spy
    try:
        strict = cnn.fit_fold(
            stacks,
            data,
            dataclasses.replace(cfg, deterministic=True),
            4,
            tmp_path / "strict",
            progress=False,
        )
    finally:
        cnn._fit_fold = original
    assert seen == [True] and not torch.are_deterministic_algorithms_enabled()
    assert strict["valid_scores"] == plain["valid_scores"]
