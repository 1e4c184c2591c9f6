"""One call from a reader's model and pool to a batch: :func:`select_batch`.

Chapter "Baselines" and the README's "Your model, your data". Every registered strategy runs
on any ``nn.Module`` whose forward gives logits ``(N, K)``, and every built-in one from
predictions alone (:func:`select_from_predictions`, as baal's heuristics take predictions):

- the inputs are torch tensors or numpy arrays of any per-item shape (images ``(P, C, H, W)``
  or feature vectors ``(P, D)``), converted to the model's floating dtype; each forward pass
  moves its batch to the model's device;
- MC dropout switches on every torch dropout module of the model (``nn.Dropout``,
  ``nn.Dropout1d/2d/3d``, ``nn.AlphaDropout``), wherever it sits, as baal's ``patch_module``
  does; a :class:`~dean_nb.learner.models.MCDropoutNet` keeps its fast trunk-once path, any
  other model runs whole, and consistent masks (BatchBALD) hook each dropout module
  (:func:`dean_nb.learner.masks.consistent_masks`);
- coreset and BADGE use ``model.features(x)`` where it exists, else the input of the model's
  last ``nn.Linear``;
- a model without a dropout module is refused before any pass by the strategies that need MC
  dropout, and one whose passes come out identical (functional dropout that eval mode turns
  off) right after them, before any selection.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from dean_nb.runtime import make_generator
from dean_nb.strategies.base import AcquisitionContext, Selection, get
from dean_nb.validation import check_budget, check_int_range

__all__ = ["PREDICTIONS_NEEDED", "as_model_inputs", "select_batch", "select_from_predictions"]

#: What each built-in strategy needs when it runs from predictions alone.
PREDICTIONS_NEEDED: dict[str, tuple[str, ...]] = {
    "random": (),
    "entropy": ("probs_N_K",),
    "bald": ("probs_T_N_K",),
    "coreset": ("features_N_F",),
    "batchbald": ("probs_T_N_K",),
    "badge": ("features_N_F", "probs_N_K"),
    "dean": ("probs_T_N_K",),
    "power-bald": ("probs_T_N_K",),
    "softmax-bald": ("probs_T_N_K",),
    "power-entropy": ("probs_T_N_K",),
    "typiclust": ("features_N_F",),  # embedding="features"; "pca" needs the inputs
    # from predictions nothing labelled is offered again: BALD and ActiveLab on the pool
    "relabel-majority": ("probs_T_N_K",),
    "activelab": ("probs_T_N_K",),
}


def _model_dtype(model: nn.Module) -> torch.dtype:
    for param in model.parameters():
        if param.is_floating_point():
            return param.dtype
    return torch.get_default_dtype()


def as_model_inputs(name: str, x: Any, dtype: torch.dtype) -> torch.Tensor:
    """``x`` (a torch tensor or a numpy array ``(N, ...)``) as a finite ``dtype`` tensor.

    Raises ``TypeError``/``ValueError`` naming ``name`` for anything else: another type, a
    non-numeric array, no batch axis, NaN or inf.
    """
    if isinstance(x, np.ndarray):
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise TypeError(f"{name} must hold numbers, got a numpy array of dtype {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or a numpy array, got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(
            f"{name} must have shape (N, ...) with one row per item (a feature vector "
            f"(N, D) or an image (N, C, H, W)), got shape {tuple(x.shape)}"
        )
    x = x.to(dtype)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf; inputs must be finite")
    return x


def select_batch(
    model: nn.Module,
    x_pool: Any,
    budget: int,
    strategy: str = "dean",
    *,
    x_labelled: Any = None,
    x_validation: Any = None,
    n_mc_samples: int = 20,
    seed: int | None = None,
    sigma: float | None = None,
    batch_size: int | None = None,
    **options: Any,
) -> Selection:
    """Choose ``budget`` pool items to label with ``strategy``, from any classifier.

    Args:
        model: an ``nn.Module`` mapping a batch of inputs to logits ``(N, K)``; its train/eval
            modes are restored afterwards.
        x_pool: the unlabelled pool ``(P, ...)``, torch or numpy.
        budget: b, an integer in ``[1, P]``.
        strategy: a name of :func:`dean_nb.strategies.available`.
        x_labelled: the labelled inputs ``(L, ...)`` (coreset's initial centres).
        x_validation: a fixed validation set ``(V, ...)``: DeAn measures its sigma there
            (needed by ``dean`` unless ``sigma`` or a fixed ``beta`` option is given).
        n_mc_samples: T >= 2 MC-dropout passes (the paper: 100).
        seed: fixes every draw (masks, samples); the same seed gives the same batch.
        sigma: a model uncertainty in [0, 1] to use instead of measuring it (``dean``).
        batch_size: inputs per forward pass (``None``: the package's default).
        **options: the strategy's options (e.g. ``beta_scale=1.0`` or ``beta=10`` for
            ``dean``); see its class in :mod:`dean_nb.strategies`.

    Returns:
        The :class:`~dean_nb.strategies.base.Selection`: ``indices (b,)`` into ``x_pool``, and
        ``scores``, ``sigma``, ``beta`` where the strategy has them.

    Raises:
        ValueError, TypeError: a bad argument, named, before any forward pass.
    """
    chosen = get(strategy, **options)  # unknown names and options are refused here
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module, got {type(model).__name__}")
    dtype = _model_dtype(model)
    x_pool = as_model_inputs("x_pool", x_pool, dtype)
    budget = check_budget(budget, int(x_pool.shape[0]))
    n_mc_samples = check_int_range("n_mc_samples", n_mc_samples, 2)
    inputs = {"x_labelled": x_labelled, "x_validation": x_validation}
    for name, value in inputs.items():
        if value is not None:
            inputs[name] = as_model_inputs(name, value, dtype)
            if inputs[name].shape[1:] != x_pool.shape[1:]:
                raise ValueError(
                    f"{name} items must have x_pool's shape {tuple(x_pool.shape[1:])}, "
                    f"got {tuple(inputs[name].shape[1:])}"
                )
    needs_sigma = chosen.name == "dean" and getattr(chosen, "beta", None) is None
    if needs_sigma and sigma is None and inputs["x_validation"] is None:
        raise ValueError(
            "strategy 'dean' sets its temperature from the model uncertainty sigma: pass "
            "x_validation (a fixed validation set), or sigma in [0, 1], or a fixed beta option"
        )
    ctx = AcquisitionContext(
        model=model,
        x_pool=x_pool,
        budget=budget,
        generator=make_generator(seed),
        x_labelled=inputs["x_labelled"],
        x_validation=inputs["x_validation"],
        n_mc_samples=n_mc_samples,
        batch_size=batch_size,
        sigma=sigma,
    )
    return chosen.select(ctx)


def _prediction(name: str, value: Any, ndim: int, axes: str) -> torch.Tensor | None:
    """A given prediction as a finite float tensor of ``ndim`` axes (its own float dtype kept)."""
    if value is None:
        return None
    dtype = torch.float32  # a float prediction keeps its precision, anything else is float32
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        dtype = value.dtype
    elif isinstance(value, np.ndarray) and value.dtype.kind == "f":
        dtype = torch.from_numpy(np.empty(0, value.dtype)).dtype
    value = as_model_inputs(name, value, dtype)
    if value.ndim != ndim:
        raise ValueError(f"{name} must have shape {axes}, got {tuple(value.shape)}")
    return value


def select_from_predictions(
    budget: int,
    strategy: str = "dean",
    *,
    probs_T_N_K: Any = None,
    probs_N_K: Any = None,
    features_N_F: Any = None,
    features_labelled_M_F: Any = None,
    sigma: float | None = None,
    seed: int | None = None,
    **options: Any,
) -> Selection:
    """Choose ``budget`` pool items from predictions alone: no model, no forward pass.

    Axis order: MC samples first, ``probs_T_N_K[t, n, k] = p_t(y = k | x_n)``. baal's
    predictions come as ``[N, K, T]``: pass ``torch.as_tensor(p).permute(2, 0, 1)``.

    Args:
        budget: b in ``[1, N]``.
        strategy: a built-in strategy (:data:`PREDICTIONS_NEEDED` says what each needs).
        probs_T_N_K: MC-dropout samples of the pool (for ``batchbald``, drawn with consistent
            masks: pass t one sampled network for every item).
        probs_N_K: deterministic predictions of the pool (dropout off).
        features_N_F: penultimate features of the pool; features_labelled_M_F: of the
            labelled set (coreset's initial centres).
        sigma: the model uncertainty in [0, 1] (``dean``, unless a fixed ``beta`` option).
        seed: fixes every draw.
        **options: the strategy's options.

    Raises:
        ValueError, TypeError: a missing or malformed prediction, named, before any work.
    """
    chosen = get(strategy, **options)
    if chosen.name not in PREDICTIONS_NEEDED:
        raise ValueError(f"strategy {chosen.name!r} runs only on a model (select_batch)")
    given = {
        "probs_T_N_K": _prediction("probs_T_N_K", probs_T_N_K, 3, "(T, N, K)"),
        "probs_N_K": _prediction("probs_N_K", probs_N_K, 2, "(N, K)"),
        "features_N_F": _prediction("features_N_F", features_N_F, 2, "(N, F)"),
        "features_labelled_M_F": _prediction(
            "features_labelled_M_F", features_labelled_M_F, 2, "(M, F)"
        ),
    }
    missing = [name for name in PREDICTIONS_NEEDED[chosen.name] if given[name] is None]
    if missing:
        raise ValueError(f"strategy {chosen.name!r} needs {', '.join(missing)}")
    sizes = {
        name: int(t.shape[1] if name == "probs_T_N_K" else t.shape[0])
        for name, t in given.items()
        if t is not None and name != "features_labelled_M_F"
    }
    if len(set(sizes.values())) > 1:
        raise ValueError(f"the predictions disagree on the pool size N: {sizes}")
    if not sizes:
        raise ValueError("give at least one prediction of the pool, to tell its size N")
    if chosen.name == "dean" and getattr(chosen, "beta", None) is None and sigma is None:
        raise ValueError("strategy 'dean' from predictions needs sigma in [0, 1] or a fixed beta")
    check_budget(budget, next(iter(sizes.values())))
    ctx = AcquisitionContext(
        model=None,
        x_pool=None,
        budget=budget,
        generator=make_generator(seed),
        sigma=sigma,
        **given,
    )
    return chosen.select(ctx)
