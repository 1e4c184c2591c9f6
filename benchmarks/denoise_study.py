"""How should the denoising layer (paper section 4.2, Algorithm 2) be trained? A study.

Trains a network on labels that went through a K-ary symmetric channel (eq. 1), with and
without a learned noisy channel ``W`` appended (:mod:`dean_nb.learner.denoise`), and records
per epoch

* the clean test accuracy of the detached base model ``M`` (eval mode),
* how far ``W`` is from the true channel ``T``: mean ``|diag(W) - diag(T)|``, ``||W - T||_F``
  and the mean diagonal of ``W``,
* memorisation: the share of flipped training labels that ``M`` predicts.

Data: ``digits`` (scikit-learn's 8x8 digits through
:func:`dean_nb.problem.datasets.load_dataset`, the book's ``digits`` network, a random labelled
subset of ``--sizes`` images) or ``blobs``
(K = 20 Gaussian blobs in 30 dimensions, an MLP with the same trunk/head split; it checks
that a setting does not depend on K = 10).

Variants (``VARIANTS``): no channel; the authors' projected matrix trained with Adam (or
SGD); the column-softmax parameterisation with several learning rates, a warm-up of the base
network with the channel frozen, a trace penalty (Tanno et al. 2019), and channels frozen at
a fixed symmetric matrix. Each run trains ``max(--epochs)`` epochs and the table reads the
records at each requested epoch count (with a constant learning rate, a run's first 50
epochs are the 50-epoch run).

Every variant trains through :func:`dean_nb.learner.training.train_model` (Adam lr 1e-3, batch
32, weight decay 3.5/N on ``first_dense``), the records taken by its ``on_epoch_end`` callback
(:class:`dean_nb.experiment.denoise_study.EpochRecorder`): SGD for the channel is its
``TrainConfig(channel_optimizer="sgd")``; a frozen channel, and a warm-up's channel until the
callback thaws it, have ``requires_grad`` off.

Run it niced (the CPU is shared)::

    nice python benchmarks/denoise_study.py --workers 2         # final comparison, ~4 min
    nice python benchmarks/denoise_study.py --grid explore2 --workers 16   # wider grids

Grids ``explore`` (batch 64 then; pass ``--batch-size 64``) and ``explore2`` were run on 16
cores; their tables are quoted in the docstring of :mod:`dean_nb.learner.denoise`.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

import torch
from torch import nn

from dean_nb.experiment.denoise_study import EpochRecorder
from dean_nb.learner.denoise import NoisyChannel, channel_distance
from dean_nb.learner.models import MCDropoutNet, build_mlp, build_model
from dean_nb.learner.training import TrainConfig, train_model
from dean_nb.problem.datasets import load_dataset
from dean_nb.problem.oracle import NoisyOracle, symmetric_channel
from dean_nb.runtime import make_generator


@dataclass(frozen=True)
class Variant:
    """How (and whether) the channel is trained.

    ``parameterisation=None`` trains the base model alone (cross-entropy on the noisy labels).
    ``channel_lr=0`` freezes the channel at its start (``init_diagonal`` for softmax).
    """

    name: str
    parameterisation: str | None = None
    optimizer: str = "adam"  # "adam" or "sgd" for the channel's parameters
    channel_lr: float = 1e-3
    warmup_epochs: int = 0  # channel frozen (still in the forward pass) for these epochs
    trace_weight: float = 0.0  # + trace_weight * trace(W) in the loss (Tanno et al. 2019)
    init_diagonal: float = 0.99  # softmax only


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in [
        Variant("none"),
        Variant("proj-adam", "projected", "adam", 1e-3),
        Variant("proj-adam-1e-4", "projected", "adam", 1e-4),
        Variant("proj-adam-3e-4", "projected", "adam", 3e-4),
        Variant("proj-adam-w10", "projected", "adam", 1e-3, warmup_epochs=10),
        Variant("proj-adam-3e-4-w10", "projected", "adam", 3e-4, warmup_epochs=10),
        Variant("proj-sgd-1e-2", "projected", "sgd", 1e-2),
        Variant("proj-sgd-1e-3", "projected", "sgd", 1e-3),
        Variant("proj-sgd-1e-2-w10", "projected", "sgd", 1e-2, warmup_epochs=10),
        Variant("soft-adam", "softmax", "adam", 1e-3),
        Variant("soft-adam-1e-2", "softmax", "adam", 1e-2),
        Variant("soft-adam-3e-2", "softmax", "adam", 3e-2),
        Variant("soft-adam-1e-2-w10", "softmax", "adam", 1e-2, warmup_epochs=10),
        Variant("soft-adam-1e-2-w25", "softmax", "adam", 1e-2, warmup_epochs=25),
        Variant("soft-adam-3e-2-w10", "softmax", "adam", 3e-2, warmup_epochs=10),
        Variant("soft-adam-1e-2-tr", "softmax", "adam", 1e-2, trace_weight=0.02),
        Variant("soft-adam-1e-2-tr05", "softmax", "adam", 1e-2, trace_weight=0.05),
        Variant("soft-adam-1e-2-tr10", "softmax", "adam", 1e-2, trace_weight=0.1),
        Variant("soft-adam-1e-2-d90", "softmax", "adam", 1e-2, init_diagonal=0.9),
        Variant("soft-sgd-1e-1", "softmax", "sgd", 1e-1),
        Variant("fixed-d70", "softmax", "adam", 0.0, init_diagonal=0.7),
        Variant("fixed-d40", "softmax", "adam", 0.0, init_diagonal=0.4),
    ]
}

#: Each grid is a list of sub-grids; a sub-grid is the cross product of its lists.
GRIDS: dict[str, list[dict]] = {
    "explore": [
        {
            "data": ["digits"],
            "variants": [
                "none",
                "proj-adam",
                "proj-adam-1e-4",
                "proj-sgd-1e-2",
                "proj-sgd-1e-3",
                "soft-adam",
                "soft-adam-1e-2",
                "soft-adam-3e-2",
                "soft-adam-1e-2-w10",
                "soft-adam-1e-2-w25",
                "soft-adam-3e-2-w10",
                "soft-adam-1e-2-tr",
                "soft-adam-1e-2-d90",
                "soft-sgd-1e-1",
            ],
            "sizes": [200, 600, 1297],
            "eps": [0.0, 0.3],
            "epochs": [50, 200],
            "seeds": [0, 1],
        }
    ],
    "explore2": [
        {
            "data": ["digits"],
            "variants": [
                "none",
                "proj-adam",
                "proj-adam-w10",
                "proj-adam-3e-4",
                "proj-adam-3e-4-w10",
                "proj-sgd-1e-2-w10",
                "soft-adam-1e-2-tr",
                "soft-adam-1e-2-tr05",
                "soft-adam-1e-2-tr10",
                "fixed-d70",
                "fixed-d40",
            ],
            "sizes": [200, 1297],
            "eps": [0.0, 0.3],
            "epochs": [50, 200],
            "seeds": [0, 1, 2],
        }
    ],
    "final": [
        {
            "data": ["digits"],
            "variants": ["none", "proj-adam", "soft-adam-1e-2", "soft-adam-1e-2-tr10"],
            "sizes": [200, 600],
            "eps": [0.0, 0.3],
            "epochs": [50, 150],
            "seeds": [0, 1],
        },
        {
            "data": ["blobs"],
            "variants": ["none", "proj-adam", "soft-adam-1e-2", "soft-adam-1e-2-tr10"],
            "sizes": [2000],
            "eps": [0.0, 0.3],
            "epochs": [50, 150],
            "seeds": [0],
        },
    ],
}

BLOB_CLASSES, BLOB_DIM, BLOB_SEPARATION, BLOB_TEST = 20, 30, 0.5, 4000


@dataclass(frozen=True)
class Job:
    data: str
    variant: Variant
    size: int
    eps: float
    epochs: int
    seed: int
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 3.5


def make_blobs(n_train: int, seed: int) -> tuple[torch.Tensor, ...]:
    """``BLOB_CLASSES`` Gaussian blobs (unit variance, means ~ N(0, separation^2 I)).

    Returns ``x_train (n, D), y_train (n,), x_test (BLOB_TEST, D), y_test``; classes balanced.
    """
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(BLOB_CLASSES, BLOB_DIM, generator=gen) * BLOB_SEPARATION

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % BLOB_CLASSES
        return means[y] + torch.randn(n, BLOB_DIM, generator=gen), y

    return (*draw(n_train), *draw(BLOB_TEST))


def mlp(in_features: int, num_classes: int, seed: int) -> MCDropoutNet:
    return build_mlp(in_features, num_classes, width=128, seed=seed)


def run_job(job: Job) -> dict:
    """Train one (data, variant, size, eps, seed) for ``job.epochs`` epochs; per-epoch records."""
    torch.set_num_threads(1)
    if job.data == "digits":
        data = load_dataset("digits")
        k, x_all, y_all = data.num_classes, data.x_train, data.y_train
        x_test, y_test = data.x_test, data.y_test
        c, h, _ = data.image_shape
        model = build_model("digits", k, c, h, seed=1000 * job.seed + 29)
    elif job.data == "blobs":
        k = BLOB_CLASSES
        x_all, y_all, x_test, y_test = make_blobs(job.size, seed=1000 * job.seed + 5)
        model = mlp(BLOB_DIM, k, seed=1000 * job.seed + 29)
    else:
        raise ValueError(f"data must be 'digits' or 'blobs', got {job.data!r}")
    gen = make_generator(1000 * job.seed + 17)
    idx = torch.randperm(x_all.shape[0], generator=gen)[: min(job.size, x_all.shape[0])]
    x, y_true = x_all[idx], y_all[idx]
    true_channel = symmetric_channel(k, job.eps)
    y_noisy = NoisyOracle(true_channel, seed=1000 * job.seed + 23).label(y_true)

    v = job.variant
    channel = None
    if v.parameterisation is not None:
        channel = NoisyChannel(
            k, v.parameterisation, init_diagonal=v.init_diagonal, trace_weight=v.trace_weight
        )
    trains_channel = channel is not None and v.channel_lr > 0
    config = TrainConfig(
        epochs=job.epochs,
        lr=job.lr,
        batch_size=job.batch_size,
        weight_decay=job.weight_decay,
        channel_lr=v.channel_lr if trains_channel else None,
        channel_optimizer=v.optimizer,
    )
    if channel is not None and (not trains_channel or v.warmup_epochs > 0):
        channel.requires_grad_(False)  # frozen; a warm-up's channel thaws after its epochs
    recorder = EpochRecorder(x_test, y_test, x, y_true, y_noisy, device="cpu")

    def on_epoch_end(epoch: int, trained: nn.Module, learned: NoisyChannel | None) -> None:
        recorder(epoch, trained, learned)
        if trains_channel and epoch == v.warmup_epochs:  # the end of a warm-up
            learned.requires_grad_(True)

    t0 = time.perf_counter()
    train_model(
        model,
        x,
        y_noisy,
        config,
        channel=channel,
        device="cpu",
        generator=gen,
        on_epoch_end=on_epoch_end,
    )
    records: list[dict] = []
    for r, epoch in enumerate(recorder.epoch):
        rec = {"epoch": epoch, "test_acc": recorder.accuracy[r]}
        rec["memorised"] = recorder.memorised[r] if recorder.memorised else 0.0
        if channel is not None:
            learned = torch.from_numpy(recorder.channels[r])
            rec.update(channel_distance(learned, true_channel.double()))
        records.append(rec)
    return {
        "job": {**asdict(job), "variant": v.name},
        "records": records,
        "seconds": time.perf_counter() - t0,
    }


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else math.nan


def report_lines(results: list[dict], epochs: list[int]) -> list[str]:
    """One line per (data, eps, size, variant): means over seeds at each epoch count."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in results:
        j = r["job"]
        groups[(j["data"], j["eps"], j["size"], j["variant"])].append(r)
    names = list(VARIANTS)
    order = sorted(groups, key=lambda t: (t[0], t[1], t[2], names.index(t[3])))
    head = f"{'data':<6} {'eps':>4} {'n':>5} {'variant':<20}"
    for e in epochs:
        head += f" | ep{e:<4}{'acc':>5} {'d(acc)':>6} {'diagW':>5} {'frob':>5} {'mem':>4}"
    lines = [head, "-" * len(head)]
    base = {
        key[:3]: {e: _mean([r["records"][e - 1]["test_acc"] for r in groups[key]]) for e in epochs}
        for key in order
        if key[3] == "none"
    }
    for key in order:
        runs = groups[key]
        line = f"{key[0]:<6} {key[1]:>4.1f} {key[2]:>5d} {key[3]:<20}"
        for e in epochs:
            recs = [r["records"][e - 1] for r in runs]
            acc = _mean([q["test_acc"] for q in recs])
            ref = base.get(key[:3], {}).get(e, math.nan)
            diag = _mean([q.get("mean_diag", math.nan) for q in recs])
            frob = _mean([q.get("frobenius", math.nan) for q in recs])
            mem = _mean([q["memorised"] for q in recs])
            line += (
                f" | {'':6}{100 * acc:5.1f} {100 * (acc - ref):+6.1f} {diag:5.2f} {frob:5.2f}"
                f" {100 * mem:4.0f}"
            )
        lines.append(line)
    seeds = sorted({r["job"]["seed"] for r in results})
    lines.append(
        "acc: clean test accuracy (%) of the detached model M, mean over seeds "
        f"(of {seeds}); d(acc): minus 'none'; diagW: mean diag(W) (true: 1 - eps); "
        "frob: ||W - T||_F; mem: % of flipped training labels that M predicts"
    )
    return lines


def expand(subgrids: list[dict], batch_size: int) -> list[Job]:
    jobs = []
    for g in subgrids:
        max_epochs = max(g["epochs"])
        for data in g["data"]:
            for eps in g["eps"]:
                for size in g["sizes"]:
                    for seed in g["seeds"]:
                        for name in g["variants"]:
                            v = VARIANTS[name]
                            jobs.append(
                                Job(data, v, size, eps, max_epochs, seed, batch_size=batch_size)
                            )
    return jobs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", choices=sorted(GRIDS), default="final")
    parser.add_argument("--data", nargs="*", choices=["digits", "blobs"])
    parser.add_argument("--variants", nargs="*", choices=list(VARIANTS))
    parser.add_argument("--sizes", nargs="*", type=int)
    parser.add_argument("--eps", nargs="*", type=float)
    parser.add_argument("--epochs", nargs="*", type=int)
    parser.add_argument("--seeds", nargs="*", type=int)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", help="write every run's per-epoch records to this JSON file")
    args = parser.parse_args(argv)
    subgrids = [dict(g) for g in GRIDS[args.grid]]
    for g in subgrids:
        for name in ("data", "variants", "sizes", "eps", "epochs", "seeds"):
            if getattr(args, name):
                g[name] = getattr(args, name)
    jobs = expand(subgrids, args.batch_size)
    jobs.sort(key=lambda j: -j.size * j.epochs)  # big jobs first: a short tail in the pool
    t0 = time.perf_counter()
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            results = list(pool.map(run_job, jobs))
    else:
        results = [run_job(j) for j in jobs]
    epochs = sorted({e for g in subgrids for e in g["epochs"]})
    print("\n".join(report_lines(results, epochs)))
    print(f"{len(jobs)} runs, {time.perf_counter() - t0:.0f} s wall")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh)


if __name__ == "__main__":
    main()
