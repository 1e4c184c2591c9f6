"""How much does the number of MC-dropout passes T move sigma, and so DeAn's beta?

sigma (the mean variation ratio on the validation set, chapter 2) is estimated from T
stochastic passes; 1 - (mode count)/T is biased low for small T, because the mode of a few draws
over-represents the most likely class. The ``medium`` preset uses T = 20 where the paper uses
100, so chapter 6 asks whether that, rather than the data, makes its first beta high.

For each seed this trains the step-0 model with the loop's own function
(:func:`dean_nb.experiment.step_model.train_step_model`: same split, initial labels, model and training
seeds), measures sigma with each T several times with different dropout seeds, and prints
beta = f(sigma) beside it.

    python benchmarks/sigma_samples.py --dataset fashion-mnist --preset medium --seeds 0 1

Measured on 2 CPU cores (2026-12-01), Fashion-MNIST, medium preset:

    seed 0: T=20 sigma 0.1917 (beta 45.8), T=100 sigma 0.1966 (beta 40.3)
    seed 1: T=20 sigma 0.1765 (beta 71.9), T=100 sigma 0.1815 (beta 61.5)

so T = 100 raises sigma by only 0.005 and lowers beta by 12-15%, far from the factor of 2.5
between chapter 6's first beta and the paper's: the small T is not why the first beta is high.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from dean_nb.experiment.config import ExperimentConfig
from dean_nb.experiment.step_model import train_step_model
from dean_nb.problem.datasets import load_dataset
from dean_nb.problem.split import make_split
from dean_nb.runtime import make_generator
from dean_nb.strategies import annealing, scoring


def step0_model(config: ExperimentConfig, data, seed: int):
    """The loop's step-0 model of ``seed`` and its validation images (N_val, C, H, W)."""
    config = config.replace(seed=seed)
    split = make_split(
        data.y_train, data.num_classes, config.initial_per_class, config.validation_size, seed=seed
    )
    x, y = data.x_train[split.initial], data.y_train[split.initial]
    model, _ = train_step_model(config, x, y, data.num_classes, 0, torch.device("cpu"))
    return model, data.x_train[split.validation]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--samples", type=int, nargs="+", default=[20, 100], help="values of T")
    parser.add_argument("--repeats", type=int, default=3, help="dropout seeds per T")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = ExperimentConfig.preset(args.dataset, args.preset)
    data = load_dataset(args.dataset)
    for seed in args.seeds:
        model, x_val = step0_model(config, data, seed)
        cells = []
        for t in args.samples:
            sigmas = [
                scoring.model_uncertainty(model, x_val, t, generator=make_generator(r))
                for r in range(args.repeats)
            ]
            sigma = statistics.fmean(float(s) for s in sigmas)
            beta = annealing.beta_from_uncertainty(sigma, config.beta_kind, config.beta_scale)
            cells.append(f"T={t} sigma {sigma:.4f} (beta {beta:.1f})")
        print(f"seed {seed}: " + ", ".join(cells), flush=True)


if __name__ == "__main__":
    main()
