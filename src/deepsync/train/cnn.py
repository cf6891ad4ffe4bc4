"""One fold of the CNN: train, keep the best epoch by fold AUC, predict held-out and test.

The loop, top to bottom: AdamW on the parameters that learn, linear warm-up then cosine
decay per step, gradient clipping, bf16/fp16 autocast and channels_last on a GPU, early
stopping on the validation fold's AUC. After every epoch its figures go to ``log.csv``
and the whole training state to ``last.pt`` (written to a temporary name, then renamed);
a rerun resumes from ``last.pt``. Each epoch reseeds shuffling, crops and
augmentation from (seed, epoch), so a resumed run ends where an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from deepsync.config import CnnConfig
from deepsync.durable import naming, replacing, write_text
from deepsync.errors import DeepSyncError
from deepsync.train import augment
from deepsync.train.dataset import (
    EpochSampler,
    GroupNormaliser,
    Normaliser,
    StackDataset,
    as_batch,
)
from deepsync.train.metrics import auc
from deepsync.train.model import build_model
from deepsync.train.tabular import combine

PRECISE_BN_STACKS = 512  # training stacks that batch-norm statistics are recomputed on
POSTFIX_STEPS = 20  # the progress bar's loss is read from the device every this many steps
LOG_COLUMNS = [
    "epoch",
    "train_loss",
    "valid_auc",
    "best_auc",
    "lr",
    "seconds",
    "images_per_s",  # training stacks per second of the epoch's training steps
    "data_wait",  # share of those steps' time spent waiting for the loader
]


@dataclass(frozen=True)
class FoldData:
    """Cache rows and labels of one (patient, fold)."""

    train_rows: np.ndarray
    train_labels: np.ndarray
    valid_rows: np.ndarray
    valid_labels: np.ndarray
    test_rows: np.ndarray
    groups: np.ndarray | None = None  # patient of every cache row: normalised per patient


@dataclass(frozen=True)
class Runtime:
    """Where and how tensors run, resolved from the configuration."""

    device: torch.device
    dtype: torch.dtype | None  # autocast dtype; None: fp32
    channels_last: bool

    @classmethod
    def resolve(cls, cfg: CnnConfig) -> Runtime:
        cuda = torch.cuda.is_available()
        if cfg.device == "cuda" and not cuda:
            raise DeepSyncError("cnn.device=cuda but no CUDA GPU is visible; use cnn.device=auto")
        device = torch.device("cuda" if cfg.device != "cpu" and cuda else "cpu")
        precision = cfg.precision
        if precision == "auto":
            precision = half_precision(device) if device.type == "cuda" else "fp32"
        if precision == "bf16" and device.type == "cuda" and half_precision(device) != "bf16":
            warnings.warn(
                "cnn.precision=bf16 on a GPU without native bf16 (compute capability < 8) is "
                "emulated and slow; cnn.precision=auto picks fp16 there",
                stacklevel=2,
            )
        dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        return cls(device, dtype, cfg.channels_last and device.type == "cuda")

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)


class ModelInput:
    """A loader's float16 batch as the model takes it: on the device, normalised with the
    training fold's statistics, augmented (training batches), in the model's memory layout.

    Nothing here waits for the GPU: the statistics go to the device once, and batches
    come from pinned memory without blocking.
    """

    def __init__(self, rt: Runtime, normaliser: Normaliser):
        self.rt = rt
        self.mean = torch.from_numpy(normaliser.mean).to(rt.device)
        self.std = torch.from_numpy(normaliser.std).to(rt.device)

    def __call__(self, x: torch.Tensor, params: torch.Tensor | None = None) -> torch.Tensor:
        x = x.to(self.rt.device, non_blocking=True).float().sub_(self.mean).div_(self.std)
        if params is not None:
            x = augment.apply(x, params)
        return x.contiguous(memory_format=torch.channels_last) if self.rt.channels_last else x


def half_precision(device: torch.device) -> str:
    """The GPU's fast autocast type: bf16 from compute capability 8 (A100, L4, H100), where
    it runs natively; fp16 with loss scaling before (Kaggle's T4, V100), where bf16 is
    emulated, slowly."""
    return "bf16" if torch.cuda.get_device_capability(device)[0] >= 8 else "fp16"


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Each stack mixed with another of the batch, weight ~ Beta(alpha, alpha), labels alike.

    Drawn from torch's generator, which each epoch reseeds: a resumed run mixes the same.
    """
    weight = torch.distributions.Beta(alpha, alpha).sample((len(x),)).to(x.device)
    weight = torch.maximum(weight, 1 - weight)  # the stack itself keeps the larger share
    partner = torch.randperm(len(x)).to(x.device)
    w = weight.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
    return w * x + (1 - w) * x[partner], weight * y + (1 - weight) * y[partner]


@contextlib.contextmanager
def deterministic_algorithms(on: bool):
    """With ``on``: PyTorch's deterministic algorithms only (cuDNN's included, no autotuning
    of convolutions), then the previous state back.

    A CPU run is bit-for-bit repeatable without it (the same seed, the same figures); a GPU
    run is not, since several CUDA kernels (cuDNN's backward convolutions among them) add
    in a varying order. This makes a GPU run repeatable on the same GPU, model and batch,
    somewhat slower; another GPU or library version may still round differently.
    """
    if not on:
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's own condition
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark = before[1]


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1009 + epoch


def _save(state: dict, path: Path) -> None:
    with replacing(path) as partial:
        torch.save(state, partial)


def _start_log(log: Path, epochs_done: int) -> None:
    """A new ``log.csv``, or the old one cut to the epochs that ``last.pt`` holds.

    An epoch's line is written just before its ``last.pt``: an interrupt between the two
    leaves a line for an epoch the resumed run trains again.
    """
    kept = [LOG_COLUMNS]
    if epochs_done and log.exists():
        with open(log, newline="") as handle:
            rows = list(csv.reader(handle))[1:]
        kept += [row for row in rows if row and row[0].isdigit() and int(row[0]) <= epochs_done]
    with replacing(log) as partial, open(partial, "w", newline="") as handle:
        csv.writer(handle).writerows(kept)


def _schedule(cfg: CnnConfig, steps_per_epoch: int):
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def input_size(cfg: CnnConfig, bands: int, width: int) -> tuple[int, int] | None:
    """The (height, width) stacks are resized to, or None to keep (bands, width)."""
    if not (cfg.input_height or cfg.input_width):
        return None
    return (cfg.input_height or bands, cfg.input_width or width)


def make_loader(
    dataset: StackDataset,
    cfg: CnnConfig,
    rt: Runtime,
    sampler: EpochSampler | None = None,
    *,
    drop_last: bool = False,
) -> DataLoader:
    """Batches of ``dataset`` in ``sampler``'s order (else in order).

    With ``cnn.loader_workers`` processes (at most one per core), kept across epochs
    (the sampler's ``set_epoch`` reaches them through the indices), each preparing
    ``cnn.loader_prefetch`` batches ahead, into pinned memory on a GPU so that the copy
    to the device overlaps the step before.
    """
    workers = min(cfg.loader_workers, len(os.sched_getaffinity(0)))  # results never change
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=workers,
        collate_fn=as_batch,
        pin_memory=rt.device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=cfg.loader_prefetch if workers else None,
        worker_init_fn=quiet_broken_handovers,  # called in workers only
    )


def quiet_broken_handovers(worker: int) -> None:
    """In a loader worker: a batch handover the training process broke off is no error.

    A batch's tensors reach the training process as file descriptors, each sent by a thread
    of the worker (multiprocessing's resource sharer) that prints whatever goes wrong. A
    Ctrl-C that lands in the training process while it takes one over closes the connection
    halfway, and the worker, shut down a moment later, printed a traceback of the reset.
    """
    shown = sys.excepthook

    def excepthook(kind, value, traceback):
        if not issubclass(kind, (ConnectionError, EOFError)):  # the receiver went away
            shown(kind, value, traceback)

    sys.excepthook = excepthook


def train_sampler(dataset: StackDataset, cfg: CnnConfig) -> EpochSampler:
    """Shuffled epochs, or balanced draws with ``cnn.balance=sampler``."""
    labels = dataset.labels if cfg.balance == "sampler" else None
    return EpochSampler(len(dataset), labels=labels)


class LoaderClock:
    """Wraps a loader; ``seconds``: time spent waiting for its batches (the step starved)."""

    def __init__(self):
        self.seconds = 0.0

    def __call__(self, loader):
        batches = iter(loader)
        while True:
            started = time.perf_counter()
            batch = next(batches, None)
            self.seconds += time.perf_counter() - started
            if batch is None:
                return
            yield batch


@dataclass
class Optimisation:
    """What one training step needs: loss, AdamW (fused on a GPU), schedule, scaler."""

    params: list[nn.Parameter]
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    clip_grad: float

    @classmethod
    def build(
        cls, model: nn.Module, cfg: CnnConfig, rt: Runtime, steps_per_epoch: int, pos_weight=1.0
    ) -> Optimisation:
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=rt.device.type == "cuda"
        )
        return cls(
            params,
            nn.BCEWithLogitsLoss(pos_weight=torch.tensor(float(pos_weight), device=rt.device)),
            optimizer,
            torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(cfg, steps_per_epoch)),
            torch.amp.GradScaler(enabled=rt.dtype == torch.float16),
            cfg.clip_grad,
        )

    def step(self, runner: nn.Module, x: torch.Tensor, y: torch.Tensor, rt: Runtime):
        """One step on batch (x, y), already on the device; the loss, left on the device."""
        with rt.autocast():
            loss = self.loss_fn(runner(x).float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.clip_grad:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.params, self.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss.detach()

    def state_dict(self) -> dict:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, saved: dict) -> None:
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.scaler.load_state_dict(saved["scaler"])


def _check_input(model: nn.Module, shape: tuple[int, int, int], name: str) -> None:
    """One zero stack through the model, so a too-small input fails now, in one line."""
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *shape, device=next(model.parameters()).device))
    except RuntimeError as error:
        if "input size" not in str(error) and "Output size is too small" not in str(error):
            raise
        raise DeepSyncError(
            f"{name} cannot take {shape[1]}x{shape[2]} stacks (too small); set "
            "cnn.input_height and cnn.input_width (e.g. 80 and 80) to resize them"
        ) from None


def recalibrate_batchnorm(model: nn.Module, batches, inputs: ModelInput) -> None:
    """Batch-norm statistics recomputed on ``batches`` of training stacks, weights as they are.

    The running averages lag the weights by many steps; in short runs that lag can flatten
    (or even invert) the eval-mode output although the training-mode one separates the
    classes. One pass without gradients over up to PRECISE_BN_STACKS training stacks,
    every batch weighted equally, removes the lag (about a third of an epoch's work on
    the demo, less on big folds).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for x, _, params in batches:
            with inputs.rt.autocast():
                model(inputs(x, params))
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum


def predict(
    model: nn.Module,
    loader: DataLoader,
    inputs: ModelInput,
    how: str,
    shifts: tuple[int, ...] = (0,),
):
    """Segment scores (probabilities) for every row of the ``loader``'s dataset.

    ``shifts``: time shifts (frames, wrapping around, as the training augmentation does)
    whose probabilities are averaged: test-time augmentation; (0,) is none.
    """
    dataset = loader.dataset
    model.eval()
    scores = []
    with torch.no_grad():
        for x, _, _ in loader:
            x = inputs(x)
            total = 0.0
            for shift in shifts:
                shifted = torch.roll(x, shift, dims=-1) if shift else x
                with inputs.rt.autocast():
                    total = total + torch.sigmoid(model(shifted).float())
            scores.append((total / len(shifts)).cpu().numpy())
    flat = np.concatenate(scores) if scores else np.empty(0)
    if len(flat) == len(dataset.rows):
        return flat.astype(np.float64)
    return combine(flat, dataset.owner, len(dataset.rows), how, math.nan)


def tta_shifts(width: int, copies: int) -> tuple[int, ...]:
    """No shift, then ``copies`` shifts spread evenly over the stack's ``width`` frames."""
    return (0, *(round(width * k / (copies + 1)) for k in range(1, copies + 1)))


def predict_saved_fold(
    stacks: np.ndarray, folder: Path, rows: list[np.ndarray], cfg: CnnConfig, copies: int
) -> list[np.ndarray]:
    """A trained fold's best model (``folder/best.pt``) on each array of cache rows, with TTA.

    ``cfg`` is the run's own CNN configuration; ``copies`` extra time-shifted copies of
    each stack are scored and averaged with the original.
    """
    rt = Runtime.resolve(cfg)
    width = cfg.window_frames if cfg.level == "window" else None
    _, bands, frames = stacks.shape[1:]
    with warnings.catch_warnings():  # the weights come from best.pt, not from ImageNet
        warnings.simplefilter("ignore")
        bare = dataclasses.replace(cfg, pretrained_file=None, pretrained_hub=False)
        model = build_model(bare, input_size(cfg, bands, width or frames)).to(rt.device)
    saved = _restore(model, folder / "best.pt", rt)
    normaliser = Normaliser.from_dict(saved["normaliser"])
    groups = GroupNormaliser.from_dict(saved["groups"]) if saved.get("groups") else None
    if rt.channels_last:
        model = model.to(memory_format=torch.channels_last)
    shifts = tta_shifts(width or frames, copies)
    inputs = ModelInput(rt, normaliser)
    datasets = [StackDataset(stacks, r, np.zeros(len(r)), width=width, groups=groups) for r in rows]
    return [predict(model, make_loader(d, cfg, rt), inputs, cfg.combine, shifts) for d in datasets]


def fit_fold(
    stacks: np.ndarray,
    data: FoldData,
    cfg: CnnConfig,
    seed: int,
    folder: Path,
    *,
    progress: bool = True,
    desc: str = "cnn",
    meta: dict | None = None,
) -> dict:
    """Train one fold in ``folder`` (resuming if it holds a ``last.pt``); its predictions.

    Returns best_auc, best_epoch, epochs_run, valid_scores and test_scores (the best
    epoch's weights), and writes the same, with ``meta`` and the seed, to ``result.json``.
    """
    with deterministic_algorithms(cfg.deterministic):
        return _fit_fold(stacks, data, cfg, seed, folder, progress=progress, desc=desc, meta=meta)


@dataclass
class _Fold:
    """What one fold's training holds: the model, its inputs, loaders and optimiser."""

    rt: Runtime
    model: torch.nn.Module
    runner: torch.nn.Module  # the model as it trains (compiled where cnn.compile)
    inputs: ModelInput
    normaliser: Normaliser
    groups: GroupNormaliser | None
    width: int | None  # level=window: crop width; else whole stacks
    order: EpochSampler
    bn_order: EpochSampler
    train_loader: DataLoader
    bn_loader: DataLoader | None
    valid_loader: DataLoader
    steps: int
    opt: Optimisation

    def best_weights(self) -> dict:
        """What best.pt holds: the model's weights and its normalisation."""
        groups = self.groups.to_dict() if self.groups is not None else None
        return {
            "model": self.model.state_dict(),
            "normaliser": self.normaliser.to_dict(),
            "groups": groups,
        }


def _fit_fold(
    stacks: np.ndarray,
    data: FoldData,
    cfg: CnnConfig,
    seed: int,
    folder: Path,
    *,
    progress: bool,
    desc: str,
    meta: dict | None,
) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    fold = _set_up(stacks, data, cfg, seed)
    last = folder / "last.pt"
    state = {"epoch": 0, "best_auc": -math.inf, "best_epoch": 0, "stale": 0}
    if last.exists():
        saved = _restore(fold.model, last, fold.rt)
        fold.opt.load_state_dict(saved)
        state = saved["state"]
    log = folder / "log.csv"
    _start_log(log, state["epoch"])
    bar = tqdm(
        total=cfg.epochs * fold.steps,
        initial=state["epoch"] * fold.steps,
        desc=desc,
        unit="step",
        disable=not progress,
        leave=False,
    )
    with bar:
        while state["epoch"] < cfg.epochs and state["stale"] < cfg.patience:
            epoch = state["epoch"] + 1
            started = time.perf_counter()
            train_loss, images, train_seconds, waited = _one_epoch(fold, cfg, seed, epoch, bar)
            score = _evaluate(fold, cfg, data, state, epoch, folder)
            row = [epoch, train_loss if images else math.nan, score, state["best_auc"]]
            row += [fold.opt.scheduler.get_last_lr()[0], time.perf_counter() - started]
            row += [images / train_seconds, waited / train_seconds]
            with naming(log), open(log, "a", newline="") as handle:  # first: a resume trims
                csv.writer(handle).writerow(
                    [f"{v:.6g}" if isinstance(v, float) else v for v in row]
                )
            _save({"model": fold.model.state_dict(), **fold.opt.state_dict(), "state": state}, last)
            bar.set_postfix(
                loss=f"{row[1]:.3f}", auc=f"{score:.3f}", best=f"{state['best_auc']:.3f}"
            )
            bar.total = bar.n + (cfg.epochs - epoch) * fold.steps  # early stopping shortens it
    result = _result(stacks, data, cfg, fold, folder, state, {**(meta or {}), "seed": seed})
    last.unlink(missing_ok=True)  # the fold is done: result.json and best.pt stay
    return result


def _set_up(stacks: np.ndarray, data: FoldData, cfg: CnnConfig, seed: int) -> _Fold:
    """The fold's normalisation (from its training stacks), model, loaders and optimiser."""
    rt = Runtime.resolve(cfg)
    torch.manual_seed(seed)
    groups = None
    if data.groups is not None:  # one model of several patients: each normalised by its own
        groups = GroupNormaliser.fit(stacks, data.train_rows, data.groups, cfg.normalise, seed)
        normaliser = groups.identity()
    else:
        normaliser = Normaliser.fit(stacks, data.train_rows, cfg.normalise, seed)
    width = cfg.window_frames if cfg.level == "window" else None
    _, bands, frames = stacks.shape[1:]
    size = input_size(cfg, bands, width or frames)
    model = build_model(cfg, size).to(rt.device)
    _check_input(model, (stacks.shape[1], *(size or (bands, width or frames))), cfg.model)
    if rt.channels_last:
        model = model.to(memory_format=torch.channels_last)
    limits = augment.AugmentLimits.for_stack(bands, width or frames) if cfg.augment else None
    train_set = StackDataset(
        stacks,
        data.train_rows,
        data.train_labels,
        width=width,
        train=True,
        augment=limits,
        groups=groups,
    )
    valid_set = StackDataset(stacks, data.valid_rows, data.valid_labels, width=width, groups=groups)
    order = train_sampler(train_set, cfg)
    train_loader = make_loader(train_set, cfg, rt, order, drop_last=len(train_set) > cfg.batch_size)
    bn_order = EpochSampler(len(train_set), limit=PRECISE_BN_STACKS)
    bn_loader = make_loader(train_set, cfg, rt, bn_order) if cfg.precise_bn else None
    valid_loader = make_loader(valid_set, cfg, rt)
    steps = max(1, len(train_loader))
    positives = max(1, int(data.train_labels.sum()))
    negatives = max(1, len(data.train_labels) - positives)
    opt = Optimisation.build(
        model, cfg, rt, steps, negatives / positives if cfg.balance == "loss" else 1.0
    )
    runner = torch.compile(model) if cfg.compile else model  # trains; eval runs eager
    inputs = ModelInput(rt, normaliser)
    return _Fold(
        rt, model, runner, inputs, normaliser, groups, width, order, bn_order,
        train_loader, bn_loader, valid_loader, steps, opt,
    )  # fmt: skip


def _one_epoch(fold: _Fold, cfg: CnnConfig, seed: int, epoch: int, bar) -> tuple:
    """One pass over the training stacks, reseeded by the epoch (a resumed run ends as an
    uninterrupted one): mean loss, images, seconds, seconds spent waiting for batches."""
    started = time.perf_counter()
    seeded = epoch_seed(seed, epoch)
    torch.manual_seed(seeded)
    fold.order.set_epoch(seeded)
    fold.bn_order.set_epoch(seeded)
    fold.runner.train()
    clock, loss_sum, images = LoaderClock(), torch.zeros((), device=fold.rt.device), 0
    for step, (x, y, params) in enumerate(clock(fold.train_loader), 1):
        x = fold.inputs(x, params if cfg.augment else None)
        y = y.to(fold.rt.device, non_blocking=True)
        if cfg.mixup:
            x, y = mixup(x, y, cfg.mixup)
        loss_sum += fold.opt.step(fold.runner, x, y, fold.rt)
        images += len(x)
        bar.update()
        if step % POSTFIX_STEPS == 0:
            bar.set_postfix(loss=f"{loss_sum.item() / step:.3f}")
    train_loss = loss_sum.item() / fold.steps  # waits for the GPU
    return train_loss, images, time.perf_counter() - started, clock.seconds


def _evaluate(
    fold: _Fold, cfg: CnnConfig, data: FoldData, state: dict, epoch: int, folder: Path
) -> float:
    """Batch-norm statistics recomputed (cnn.precise_bn), the validation AUC, and the
    weights kept in best.pt when the epoch is selected (the best, or the last)."""
    if fold.bn_loader is not None:
        recalibrate_batchnorm(fold.model, fold.bn_loader, fold.inputs)
    score = auc(data.valid_labels, predict(fold.model, fold.valid_loader, fold.inputs, cfg.combine))
    state["epoch"] = epoch
    if cfg.select == "last" or score > state["best_auc"] or state["best_epoch"] == 0:
        state.update(best_auc=score, best_epoch=epoch, stale=0)
        _save(fold.best_weights(), folder / "best.pt")
    else:
        state["stale"] += 1
    return score


def _result(stacks, data: FoldData, cfg: CnnConfig, fold: _Fold, folder, state, meta) -> dict:
    """The best epoch's weights on the validation and test stacks, to result.json."""
    _restore(fold.model, folder / "best.pt", fold.rt)
    test_set = StackDataset(
        stacks, data.test_rows, np.zeros(len(data.test_rows)), width=fold.width, groups=fold.groups
    )
    test_loader = make_loader(test_set, cfg, fold.rt)
    result = {
        **meta,
        "best_auc": state["best_auc"],
        "best_epoch": state["best_epoch"],
        "epochs_run": state["epoch"],
        "valid_scores": predict(fold.model, fold.valid_loader, fold.inputs, cfg.combine).tolist(),
        "test_scores": predict(fold.model, test_loader, fold.inputs, cfg.combine).tolist(),
    }
    write_text(folder / "result.json", json.dumps(result))
    return result


def _restore(model: torch.nn.Module, path: Path, rt: Runtime) -> dict:
    """A checkpoint's weights into ``model``; the checkpoint (best.pt or last.pt)."""
    saved = torch.load(path, map_location=rt.device, weights_only=False)
    model.load_state_dict(saved["model"])
    return saved
