"""How far float rounding moves re-made runs: the spread behind ``dean_nb.experiment.replay``'s tolerances.

Re-makes stored ``digits`` records under this process's torch kernels and prints, per run, the
first pick that differs from the record and the largest accuracy and sigma gaps (step 0 and
overall). Run it once per kind of kernel, e.g. on one machine::

    python benchmarks/replay_spread.py
    ATEN_CPU_CAPABILITY=avx2 python benchmarks/replay_spread.py
    ATEN_CPU_CAPABILITY=default python benchmarks/replay_spread.py

``DEFAULT_TOLERANCES`` in ``dean_nb/replay.py`` quotes the maxima these printed on an AMD EPYC
(40 runs of DeAn and BALD at epsilon 0 and 0.3, seeds 0-4, about 8 s each on one core).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from dean_nb.experiment.config import ExperimentConfig
from dean_nb.experiment.grid import result_path
from dean_nb.experiment.loop import run_active_learning
from dean_nb.experiment.records import load_run
from dean_nb.runtime import torch_threads

RECORDS = Path(__file__).resolve().parents[1] / "book" / "results" / "digits-quick" / "main"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--strategies", default="dean,bald")
    parser.add_argument("--epsilons", default="0,0.3")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1")
    args = parser.parse_args()
    capability = torch.backends.cpu.get_cpu_capability()
    base = ExperimentConfig.preset("digits", "quick", device="cpu", quiet=True)
    worst = {"step0": 0.0, "accuracy": 0.0, "sigma": 0.0}
    diverged = total = 0
    print(f"kernels: {capability}")
    for strategy in args.strategies.split(","):
        for epsilon in (float(e) for e in args.epsilons.split(",")):
            for seed in range(args.seeds):
                config = base.replace(strategy=strategy, epsilon=epsilon, seed=seed)
                stored = load_run(result_path(config, RECORDS))
                start = time.perf_counter()
                with torch_threads(1):
                    fresh = run_active_learning(config)
                pairs = list(zip(fresh.selected, stored.selected, strict=True))
                first = next((i for i, (a, b) in enumerate(pairs) if a != b), None)
                steps = list(zip(fresh.steps, stored.steps, strict=True))
                acc = [abs(a.test_accuracy - b.test_accuracy) for a, b in steps]
                sigma = [abs(a.sigma - b.sigma) for a, b in steps]
                worst["step0"] = max(worst["step0"], acc[0], sigma[0])
                worst["accuracy"] = max(worst["accuracy"], *acc)
                worst["sigma"] = max(worst["sigma"], *sigma)
                diverged += first is not None
                total += 1
                print(
                    f"{strategy:>6} eps {epsilon:g} seed {seed}: first differing pick {first}, "
                    f"max |d acc| {max(acc):.3f}, max |d sigma| {max(sigma):.3f} "
                    f"({time.perf_counter() - start:.1f} s)"
                )
    print(
        f"{capability}: {diverged} of {total} runs diverged; step-0 gap {worst['step0']:.4f}, "
        f"accuracy gap {worst['accuracy']:.3f}, sigma gap {worst['sigma']:.3f}"
    )


if __name__ == "__main__":
    main()
