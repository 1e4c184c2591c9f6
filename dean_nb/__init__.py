"""dean_nb: noisy batch active learning with deterministic annealing (DeAn).

The companion package of the dean-nb book. Gupta, Sahu and Lin, "Noisy Batch Active Learning
with Deterministic Annealing", arXiv:1909.12473.

Tensor names carry their axes, in one order: ``K`` is the number of classes, ``N`` the pool or
data points and ``T`` the MC-dropout samples, so ``probs_T_N_K[t, n, k] = p_t(y = k | x_n)``
(batchbald_redux, whose naming style this follows, uses ``K`` for the MC samples instead).

The folder listing is the architecture; each layer imports only the ones above it here:

- ``runtime``, ``validation``: devices, generators, purpose seeds, threads; the shared checks.
- ``problem``: the setting: ``datasets``, ``split``, ``oracle`` (channels), ``noise``.
- ``learner``: ``models`` (the authors' CNNs), ``mc_dropout``, ``training``, ``denoise``.
- ``strategies``: the interface and registry, ``scoring``, one module per acquisition rule.
- ``experiment``: the book's lab: config, presets, loop, checkpoint, records, grid, locks.
- ``analysis``: reading records: results, the paper's claims, tables, verdicts.
- ``plots``: every figure. ``cli``: ``python -m dean_nb run/report``.

For your own model and pool: ``dean_nb.select_batch(model, x_pool, budget, "dean",
x_validation=...)`` (:func:`dean_nb.strategies.select.select_batch`).
"""

import importlib
from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "select_batch"]


def __getattr__(name: str) -> Any:
    """``dean_nb.select_batch``, the reader's entry point, imported on first use so that
    ``import dean_nb`` (which every record read does) stays light."""
    if name == "select_batch":
        return importlib.import_module("dean_nb.strategies.select").select_batch
    raise AttributeError(f"module 'dean_nb' has no attribute {name!r}")
