"""`make bench-train`: how fast the CNN trains, from the synthetic feature cache.

In one run, with the profile's stacks, model, input size and batch size (`gpu-inception` unless
told): training images/s, step time and peak GPU memory for fp32 eager, bf16 autocast,
bf16 + channels_last and bf16 + channels_last + torch.compile, each on batches already
on the device (the model alone), as ratios to fp32; the loader's samples/s alone, with
no workers and with the profile's; then the fastest stable variant fed by the real
loader, with GPU utilisation and the share of step time spent waiting for data; and
the eager half-precision variants again at the batch of timm's published training
figures for the model, set against those. Without a GPU the same runs on the CPU with
fewer steps, no compile and no second batch size (a smoke run: CPU figures only).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import math
import os
import statistics
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from deepsync.bench import harness
from deepsync.config import CnnConfig, Config, load_config, numbers, words
from deepsync.errors import DeepSyncError
from deepsync.train.augment import AugmentLimits
from deepsync.train.cnn import (
    LoaderClock,
    ModelInput,
    Optimisation,
    Runtime,
    half_precision,
    input_size,
    make_loader,
    train_sampler,
)
from deepsync.train.dataset import Normaliser, StackDataset
from deepsync.train.folds import training_segments
from deepsync.train.model import build_model

# timm's own training benchmark (results/benchmark-train-amp-*-pt112-cu113-rtx3090.csv in
# huggingface/pytorch-image-models): RTX 3090, AMP, batch 192, 299 x 299, 3 channels.
TIMM_TRAIN = {
    "inception_resnet_v2": {"nchw": 261.44, "nhwc": 358.54, "batch": 192, "size": 299},
}


@dataclass(frozen=True)
class Variant:
    """One way of running the same training step."""

    key: str
    precision: str  # fp32 | bf16
    channels_last: bool
    compile: bool

    @property
    def name(self) -> str:
        parts = [
            "fp32 eager" if self.precision == "fp32" else f"{self.precision} autocast",
            "channels_last" if self.channels_last else "",
            "torch.compile" if self.compile else "",
        ]
        return " + ".join(p for p in parts if p)

    def runtime(self, device: torch.device) -> Runtime:
        dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]
        return Runtime(device, dtype, self.channels_last)


VARIANTS = {
    v.key: v
    for v in (
        Variant("fp32", "fp32", False, False),
        Variant("bf16", "bf16", False, False),
        Variant("bf16-cl", "bf16", True, False),
        Variant("bf16-cl-compile", "bf16", True, True),
        Variant("fp16", "fp16", False, False),
        Variant("fp16-cl", "fp16", True, False),
        Variant("fp16-cl-compile", "fp16", True, True),
    )
}


@dataclass
class Figures:
    """What one variant measured."""

    variant: Variant
    images_per_s: float = math.nan
    step_ms: float = math.nan
    first_s: float = math.nan  # warm-up steps' wall time (compilation included)
    peak_mib: float = math.nan  # peak GPU memory allocated
    loss: float = math.nan  # the last step's loss: finite, or the variant is unstable
    error: str = ""

    @property
    def stable(self) -> bool:
        return not self.error and math.isfinite(self.loss)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def body() -> int:
        workers = list(numbers(args.workers, "--workers", int, "0,4")) if args.workers else None
        run_bench(
            load_config(Path(args.profile), args.set),
            device=args.device,
            steps=args.steps,
            warmup=args.warmup,
            reps=args.reps,
            batch_size=args.batch_size,
            variants=list(words(args.variants)) if args.variants else None,
            workers=workers,
            timm_batch=args.timm_batch,
        )
        return 0

    return harness.exit_code("bench-train", body)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deepsync.bench.train",
        description=__doc__.splitlines()[0],
        epilog="Settings as for deepsync: --profile (default gpu-inception) then --set "
        "section.key=value.",
    )
    parser.add_argument(
        "--profile", default="gpu-inception", help="TOML profile (default gpu-inception)"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="a setting"
    )
    parser.add_argument("--steps", type=int, help="timed steps per variant (GPU 50, CPU 2)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (GPU 10, CPU 1)")
    parser.add_argument("--batch-size", type=int, help="default: cnn.batch_size (CPU: at most 8)")
    parser.add_argument(
        "--variants",
        help=f"comma-separated, of {', '.join(VARIANTS)} (default: fp32 and the three of the "
        "GPU's half type, bf16 from compute capability 8, else fp16; CPU: bf16, no compile)",
    )
    parser.add_argument(
        "--workers",
        help="loader workers to measure, comma-separated (default: 0 and the profile's)",
    )
    parser.add_argument(
        "--reps", type=int, default=1, help="sweeps over the variants, alternating (default 1)"
    )
    parser.add_argument(
        "--device", choices=["auto", "cuda", "cpu"], default="auto", help="default: a GPU if any"
    )
    parser.add_argument(
        "--timm-batch",
        type=int,
        help="batch for the comparison with timm's figures (default: timm's own, 192, on a "
        "GPU; on the CPU, and with 0, the bench's batch)",
    )
    return parser


@dataclass
class _Plan:
    """What one bench run measures, its defaults filled in for the device."""

    device: torch.device
    keys: list[str]  # the variants, in order
    steps: int
    warmup: int
    reps: int
    cfg: CnnConfig  # the profile's, at the bench's batch size and loader workers
    workers: list[int]  # loader workers to measure
    timm_batch: int | None

    @property
    def gpu(self) -> bool:
        return self.device.type == "cuda"


def _plan(config: Config, choice: str, steps, warmup, reps, batch_size, variants, workers, timm):
    device = _device(choice)
    gpu = device.type == "cuda"
    unknown = [k for k in variants or [] if k not in VARIANTS]
    if unknown:
        raise DeepSyncError(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
    half = half_precision(device) if gpu else "bf16"
    keys = variants or [
        k for k, v in VARIANTS.items() if v.precision in ("fp32", half) and (gpu or not v.compile)
    ]
    steps = steps if steps is not None else (50 if gpu else 2)
    warmup = warmup if warmup is not None else (10 if gpu else 1)
    cfg = config.cnn
    if batch_size is None:
        batch_size = cfg.batch_size if gpu else min(8, cfg.batch_size)
    if min(steps, batch_size, reps) < 1 or min(warmup, timm or 0, *workers or [0]) < 0:
        raise DeepSyncError(
            "--steps, --reps and --batch-size must be >= 1, "
            "--warmup, --workers and --timm-batch >= 0"
        )
    cores = len(os.sched_getaffinity(0))  # make_loader uses at most one worker per core
    cfg = dataclasses.replace(
        cfg, batch_size=batch_size, loader_workers=min(cfg.loader_workers, cores)
    )
    workers = sorted({min(w, cores) for w in (workers or [0, cfg.loader_workers])})
    if not gpu and choice == "auto":
        print("bench-train: no CUDA GPU here: a CPU smoke run (CPU figures, no compile)")
    return _Plan(device, keys, steps, warmup, reps, cfg, workers, timm)


def run_bench(
    config: Config,
    *,
    device: str = "auto",
    steps: int | None = None,
    warmup: int | None = None,
    reps: int = 1,
    batch_size: int | None = None,
    variants: list[str] | None = None,
    workers: list[int] | None = None,
    timm_batch: int | None = None,
) -> list[Figures]:
    """Measure and print; the model-alone figures of every variant, in order."""
    plan = _plan(config, device, steps, warmup, reps, batch_size, variants, workers, timm_batch)
    cfg, device, steps, warmup = plan.cfg, plan.device, plan.steps, plan.warmup
    train_set, normaliser = bench_dataset(config)
    size = input_size(cfg, *train_set.stacks.shape[2:]) or train_set.stacks.shape[2:]
    print(
        f"bench-train: {cfg.model}, {len(train_set)} training stacks of "
        f"{'x'.join(map(str, train_set.stacks.shape[1:]))} resized to {size[0]}x{size[1]}, "
        f"batch {cfg.batch_size}, {warmup} warm-up + {steps} timed steps"
        + (f" x {reps} sweeps (medians)" if reps > 1 else "")
        + ", on "
        f"{_device_name(device)}, torch {torch.__version__}, {os.cpu_count()} cores"
    )
    batches = _device_batches(train_set, cfg, device, count=min(8, warmup + steps))
    sweeps = []
    for _ in range(plan.reps):  # the variants alternate: drift hits them all alike
        sweeps.append([])
        for key in plan.keys:
            sweeps[-1].append(
                measure_model(VARIANTS[key], cfg, size, normaliser, batches, warmup, steps, device)
            )
            _release(device)  # the variant's model, optimiser and compiled graphs
    figures = [_median(list(runs)) for runs in zip(*sweeps, strict=True)]
    print("model alone (float16 batches already on the device; normalise, augment, step):")
    for f in figures:
        _say(f, figures[0])
    _say_loader(plan, train_set)
    best = max((f for f in figures if f.stable), key=lambda f: f.images_per_s, default=None)
    if best is None:
        raise DeepSyncError("no variant trained stably; see the lines above")
    _say_fed(best, plan, size, normaliser, train_set)
    del batches  # the bench batch's stacks: room for timm's
    _release(device)
    _say_timm(figures, plan, size, normaliser, train_set)
    print(
        f"fastest stable: {best.variant.name} (cnn.precision={best.variant.precision}, "
        f"cnn.channels_last={str(best.variant.channels_last).lower()}, "
        f"cnn.compile={str(best.variant.compile).lower()})"
    )
    return figures


def _say_timm(figures: list[Figures], plan: _Plan, size, normaliser, train_set) -> None:
    """The half-precision variants against timm's published figures for the model."""
    cfg = plan.cfg
    published = TIMM_TRAIN.get(cfg.model.split(".")[0])
    if published is None:
        print(f"timm publishes no training figure for {cfg.model} in this table")
        return
    batch = plan.timm_batch
    if batch is None:
        batch = published["batch"] if plan.gpu else 0
    compared, at = _at_timm_batch(
        figures, batch, cfg, size, normaliser, train_set, plan.warmup, plan.steps, plan.device
    )
    _compare_with_timm(cfg.model, published, compared, at, (train_set.stacks.shape[1], *size))


def _say_loader(plan: _Plan, train_set) -> None:
    print("loader alone (augmented stacks, the real DataLoader, no model):")
    for count in plan.workers:
        rate, first = measure_loader(
            train_set,
            dataclasses.replace(plan.cfg, loader_workers=count),
            plan.device,
            batches=max(20, plan.steps),
        )
        print(f"  {count} workers: {rate:8.1f} samples/s (first batch after {first:.2f} s)")


def _say_fed(best: Figures, plan: _Plan, size, normaliser, train_set) -> None:
    cfg = plan.cfg
    fed = measure_pipeline(
        best.variant, cfg, size, normaliser, train_set, plan.warmup, plan.steps, plan.device
    )
    print(
        f"with the loader ({cfg.loader_workers} workers, prefetch {cfg.loader_prefetch}): "
        f"{best.variant.name}: {fed['images_per_s']:.1f} images/s "
        f"({fed['images_per_s'] / best.images_per_s:.2f}x of the model alone), waiting for "
        f"data {100 * fed['data_wait']:.0f}% of the time, GPU utilisation "
        + (f"{fed['utilisation']:.0f}%" if fed["utilisation"] is not None else "not readable")
    )
    if fed["syncs"] is not None:
        count, first = fed["syncs"]
        print(
            f"host-GPU synchronisations in one fed training step: {count}"
            + (f" (first: {first})" if first else "")
        )


def _device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise DeepSyncError("--device cuda but no CUDA GPU is visible; use --device auto")
    return torch.device("cuda" if choice != "cpu" and torch.cuda.is_available() else "cpu")


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "the CPU"


def bench_dataset(config: Config) -> tuple[StackDataset, Normaliser]:
    """Every training stack of the configured feature cache, augmented as in training.

    Builds the data set and the cache first when they are missing (`make data features`
    with the same settings).
    """
    from deepsync.features.cache import FeatureCache, cache_folder

    folder = cache_folder(config.features)
    if not (folder / "segments.csv").exists():
        print(f"bench-train: no feature cache at {folder}: building it (make data features)")
        harness.prepared(config)
    cache = FeatureCache.open(folder)
    train = training_segments(cache.segments)
    if train.empty:
        raise DeepSyncError(f"no training stacks in {folder}; run `make data features`")
    rows, labels = train["row"].to_numpy(), train["label"].to_numpy()
    cfg = config.cnn
    normaliser = Normaliser.fit(cache.stacks, rows, cfg.normalise, 0)
    width = cfg.window_frames if cfg.level == "window" else None
    bands, frames = cache.stacks.shape[2:]
    limits = AugmentLimits.for_stack(bands, width or frames) if cfg.augment else None
    dataset = StackDataset(cache.stacks, rows, labels, width=width, train=True, augment=limits)
    return dataset, normaliser


def _device_batches(train_set, cfg, device, count):
    """``count`` real training batches, staged on the device once."""
    order = train_sampler(train_set, cfg)
    loader = make_loader(
        train_set,
        dataclasses.replace(cfg, loader_workers=0),
        Runtime(device, None, False),
        order,
        drop_last=True,
    )
    if len(loader) == 0:
        raise DeepSyncError(
            f"fewer training stacks ({len(train_set)}) than one batch "
            f"({cfg.batch_size}); lower cnn.batch_size"
        )
    return [tuple(t.to(device) for t in batch) for batch in _take(_epochs(loader, order), count)]


def _trainer(variant, cfg, size, normaliser, device, steps):
    """A fresh model of ``variant`` and its training step on one loader batch (x, y, params)."""
    rt = variant.runtime(device)
    inputs = ModelInput(rt, normaliser)
    model = _fresh_model(variant, cfg, size, device)
    opt = Optimisation.build(model, cfg, rt, steps)
    runner = torch.compile(model) if variant.compile else model
    runner.train()

    def step(x, y, params):
        x = inputs(x, params if cfg.augment else None)
        return opt.step(runner, x, y.to(device, non_blocking=True), rt)

    return step


def _fresh_model(variant, cfg, size, device):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random init is what a speed test wants
        model = build_model(
            dataclasses.replace(cfg, pretrained_file=None, pretrained_hub=False), size
        ).to(device)
    if variant.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_model(variant, cfg, size, normaliser, batches, warmup, steps, device) -> Figures:
    """``variant``'s training steps on float16 batches already on the device: normalising,
    augmenting and the model's step, without the loader."""
    figures = Figures(variant)
    try:
        train_step = _trainer(variant, cfg, size, normaliser, device, warmup + steps)

        def step(i):
            return train_step(*batches[i % len(batches)])

        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        for i in range(warmup):
            loss = step(i)
        _sync(device)
        figures.first_s = time.perf_counter() - started
        started = time.perf_counter()
        for i in range(steps):
            loss = step(i)
        _sync(device)
        elapsed = time.perf_counter() - started
        figures.loss = float(loss)
        figures.images_per_s = steps * len(batches[0][0]) / elapsed
        figures.step_ms = 1000 * elapsed / steps
        if device.type == "cuda":
            figures.peak_mib = torch.cuda.max_memory_allocated(device) / 2**20
    except Exception as error:  # a variant that fails is a figure too (e.g. no compiler)
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        figures.error = f"{type(error).__name__}: {first}"[:200]
    return figures


def _median(runs: list[Figures]) -> Figures:
    """One variant's sweeps as one: median speed, first warm-up, highest memory, last loss."""
    failed = [r for r in runs if not r.stable]
    if failed:
        return failed[0]
    return dataclasses.replace(
        runs[-1],
        images_per_s=statistics.median(r.images_per_s for r in runs),
        step_ms=statistics.median(r.step_ms for r in runs),
        first_s=runs[0].first_s,
        peak_mib=max(r.peak_mib for r in runs),
    )


def _say(f: Figures, reference: Figures) -> None:
    if f.error:
        print(f"  {f.variant.name:<46} failed: {f.error}")
        return
    ratio = f.images_per_s / reference.images_per_s if reference.stable else math.nan
    memory = f"{f.peak_mib:7.0f} MiB" if math.isfinite(f.peak_mib) else "    n/a"
    print(
        f"  {f.variant.name:<46} {f.images_per_s:8.1f} images/s {ratio:5.2f}x  "
        f"{f.step_ms:8.1f} ms/step  peak {memory}  warm-up {f.first_s:6.1f} s  "
        f"loss {f.loss:.3f}" + ("" if f.stable else "  UNSTABLE")
    )


def measure_loader(train_set, cfg, device, batches) -> tuple[float, float]:
    """Samples/s of the real loader alone (after its first batch), and that first wait."""
    rt = Runtime(device, None, False)
    order = train_sampler(train_set, cfg)
    loader = make_loader(train_set, cfg, rt, order, drop_last=True)
    started = time.perf_counter()
    seen, first, epoch = 0, None, 0
    while seen < batches * cfg.batch_size:
        order.set_epoch(epoch)
        for x, _, _ in loader:
            x.to(device, non_blocking=True)
            if first is None:
                first = time.perf_counter() - started
                started, seen = time.perf_counter(), 0
                continue
            seen += len(x)
            if seen >= batches * cfg.batch_size:
                break
        epoch += 1
    _sync(device)
    rate = seen / (time.perf_counter() - started)
    del loader  # persistent workers end with it
    return rate, first


class Utilisation(threading.Thread):
    """GPU utilisation (NVML's %) sampled every 0.1 s while it runs; None where unreadable."""

    def __init__(self, device: torch.device):
        super().__init__(daemon=True)
        self.device, self.samples, self.done = device, [], threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            try:
                self.samples.append(torch.cuda.utilization(self.device))
            except Exception:  # no pynvml, or no GPU: nothing to read
                return

    def mean(self) -> float | None:
        self.done.set()
        self.join()
        return statistics.mean(self.samples) if self.samples else None


def measure_pipeline(variant, cfg, size, normaliser, train_set, warmup, steps, device) -> dict:
    """``variant`` fed by the real loader, as `make train` runs it."""
    train_step = _trainer(variant, cfg, size, normaliser, device, warmup + steps)
    order = train_sampler(train_set, cfg)
    loader = make_loader(train_set, cfg, variant.runtime(device), order, drop_last=True)
    feed = _epochs(loader, order)

    def step(batch):
        train_step(*batch)

    for _ in range(warmup):
        step(next(feed))
    syncs = _host_syncs(lambda: step(next(feed))) if device.type == "cuda" else None
    _sync(device)
    clock = LoaderClock()
    timed = clock(_take(feed, steps))
    sampler = Utilisation(device) if device.type == "cuda" else None
    if sampler:
        sampler.start()
    started = time.perf_counter()
    images = 0
    for batch in timed:
        step(batch)
        images += len(batch[0])
    _sync(device)
    elapsed = time.perf_counter() - started
    utilisation = sampler.mean() if sampler else None
    feed.close()  # persistent workers end with the loader
    return {
        "images_per_s": images / elapsed,
        "data_wait": clock.seconds / elapsed,
        "utilisation": utilisation,
        "syncs": syncs,
    }


def _host_syncs(step) -> tuple[int, str]:
    """Host-GPU synchronisations in one call of ``step`` (CUDA's sync debug mode): each one
    stalls the CPU until the GPU catches up, so a step should have none."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                step()
            finally:
                torch.cuda.set_sync_debug_mode("default")
    except Exception as error:  # a diagnostic only: never the bench's end
        return -1, f"{type(error).__name__}: {error}"[:160]
    found = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message)]
    return len(found), found[0] if found else ""


def _epochs(loader, order):
    """The loader's batches, epoch after epoch, each epoch seeded anew."""
    epoch = 0
    while True:
        order.set_epoch(epoch)
        yield from loader
        epoch += 1


def _take(iterator, count):
    for _ in range(count):
        yield next(iterator)


def _at_timm_batch(figures, batch, cfg, size, normaliser, train_set, warmup, steps, device):
    """The eager half-precision variants' figures at ``batch`` (timm's): measured again
    there, or the bench's own where ``batch`` is 0, the bench's, or more than the stacks."""
    comparable = [f for f in figures if f.variant.precision != "fp32" and not f.variant.compile]
    if not batch or batch == cfg.batch_size or not comparable:
        return comparable, cfg.batch_size
    if batch > len(train_set):
        print(
            f"timm's batch {batch} is more than the {len(train_set)} training stacks: "
            f"compared at batch {cfg.batch_size}"
        )
        return comparable, cfg.batch_size
    cfg = dataclasses.replace(cfg, batch_size=batch)
    batches = _device_batches(train_set, cfg, device, count=min(8, warmup + steps))
    again = []
    for f in comparable:
        again.append(
            measure_model(f.variant, cfg, size, normaliser, batches, warmup, steps, device)
        )
        _release(device)
    return again, batch


def _compare_with_timm(model: str, published: dict, figures, batch: int, shape) -> None:
    """Our ``figures`` at ``batch`` on inputs of ``shape`` (channels, height, width) set
    against timm's ``published`` ones."""
    channels, height, width = shape
    print(
        f"timm's published training speed for {model} (RTX 3090, AMP, batch "
        f"{published['batch']}, {published['size']}x{published['size']}, 3 channels): "
        f"{published['nchw']} images/s NCHW, {published['nhwc']} NHWC"
    )
    for f in figures:
        layout = "nhwc" if f.variant.channels_last else "nchw"
        head = f"  ours, {f.variant.name}, batch {batch}, {height}x{width}, {channels} channels:"
        if not f.stable:
            print(f"{head} " + (f"failed: {f.error}" if f.error else "UNSTABLE"))
            continue
        print(
            f"{head} {f.images_per_s:.1f} images/s, "
            + (f"peak {f.peak_mib:.0f} MiB, " if math.isfinite(f.peak_mib) else "")
            + f"{f.images_per_s / published[layout]:.2f}x timm's {layout.upper()}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
