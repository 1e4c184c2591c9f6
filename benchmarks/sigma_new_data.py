"""The cold-start model uncertainty sigma_0 on data unlike the paper's, and the beta it gives.

DeAn's temperature is ``beta = f(sigma)`` with the paper's scale 1/4, set on image CNNs whose
first model has sigma near 0.25. This script measures sigma_0 on scikit-learn's embedded
tables (breast cancer, wine, iris) with a reader-style dropout MLP trained on a cold start
(``--labels-per-class`` labels per class, 50 epochs, as the paper's first model), and prints
the ``beta_0`` of scale 1/4 and the scale that gives the paper's ``beta_0`` instead
(:func:`dean_nb.strategies.annealing.beta_scale_for`). For comparison it measures the book's
``digits`` CNN the same way. Not a timing: a measurement the beta_scale rule rests on.

    python benchmarks/sigma_new_data.py --seeds 5
"""

from __future__ import annotations

import argparse
import statistics

import torch
from sklearn import datasets as sk_datasets
from torch import nn

from dean_nb.learner.models import build_model
from dean_nb.learner.training import TrainConfig, train_model
from dean_nb.problem.split import make_split
from dean_nb.runtime import seeded_global_rng
from dean_nb.strategies.annealing import beta_from_uncertainty, beta_scale_for
from dean_nb.strategies.scoring import model_uncertainty

TABLES = {
    "breast-cancer": sk_datasets.load_breast_cancer,
    "wine": sk_datasets.load_wine,
    "iris": sk_datasets.load_iris,
}


def table(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardised features ``(N, D)`` float32 and labels ``(N,)``."""
    bunch = TABLES[name]()
    x = torch.as_tensor(bunch.data, dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-6)
    return x, torch.as_tensor(bunch.target, dtype=torch.long)


def mlp(d: int, k: int, p: float, seed: int) -> nn.Module:
    """A reader's MLP: two hidden layers of 128 with dropout ``p`` after each."""
    with seeded_global_rng(seed):
        return nn.Sequential(
            nn.Linear(d, 128), nn.ReLU(), nn.Dropout(p),
            nn.Linear(128, 128), nn.ReLU(), nn.Dropout(p), nn.Linear(128, k),
        )  # fmt: skip


def sigma_0(model: nn.Module, x, y, k: int, labels: int, seed: int, epochs: int) -> float:
    split = make_split(y, k, labels, min(100, len(y) // 3), seed)
    train_model(
        model, x[split.initial], y[split.initial], TrainConfig(epochs=epochs),
        device="cpu", generator=seed,
    )  # fmt: skip
    return model_uncertainty(model, x[split.validation], 100, generator=seed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--labels-per-class", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for name in TABLES:
        x, y = table(name)
        k = int(y.max()) + 1
        for p in (0.25, 0.5):
            sigmas = [
                sigma_0(mlp(x.shape[1], k, p, s), x, y, k, args.labels_per_class, s, args.epochs)
                for s in range(args.seeds)
            ]
            rows.append((f"{name} MLP p={p}", sigmas))
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.as_tensor(digits.images[:, None] / 16.0, dtype=torch.float32)
    y = torch.as_tensor(digits.target, dtype=torch.long)
    sigmas = [
        sigma_0(
            build_model("digits", 10, 1, 8, seed=s, conv_dropout="channel"),
            x,
            y,
            10,
            args.labels_per_class,
            s,
            args.epochs,
        )
        for s in range(args.seeds)
    ]
    rows.append(("digits CNN (channel dropout)", sigmas))
    print(f"cold start: {args.labels_per_class} labels per class, {args.epochs} epochs, T = 100")
    print(f"{'data, model':34s} {'sigma_0 median (min-max)':>26s} {'beta_0 at 1/4':>14s} "
          f"{'scale for beta_0 = 13.4':>24s}")  # fmt: skip
    for label, sigmas in rows:
        med = statistics.median(sigmas)
        beta = beta_from_uncertainty(med, "exp", 0.25)
        scale = beta_scale_for(med) if med > 0 else float("nan")
        spread = f"{med:.3f} ({min(sigmas):.3f}-{max(sigmas):.3f})"
        print(f"{label:34s} {spread:>26s} {beta:>14.3g} {scale:>24.3g}")


if __name__ == "__main__":
    main()
