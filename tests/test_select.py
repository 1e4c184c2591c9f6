"""``dean_nb.select_batch`` on models and arrays the package did not make.

A plain ``nn.Sequential`` MLP on numpy features, a reader's CNN with ``nn.Dropout2d`` nested
in submodules, one with functional dropout and one with none: every registered strategy gives
``budget`` distinct in-range indices, the same seed the same batch, and every misuse an error
that names the argument before any forward pass.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dean_nb
from dean_nb import strategies
from dean_nb.learner import mc_dropout
from dean_nb.runtime import make_generator
from dean_nb.strategies import scoring
from dean_nb.strategies.coreset import penultimate_features
from dean_nb.strategies.select import select_batch, select_from_predictions

RNG = np.random.default_rng(0)
X_TABULAR = RNG.normal(size=(300, 12))  # float64 numpy, as a reader's table comes


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 3))


class _ReaderCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.block = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Dropout2d(0.25))
        self.classifier = nn.ModuleDict({"drop": nn.Dropout(0.5), "fc": nn.Linear(8 * 36, 10)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block(x).flatten(1)
        return self.classifier["fc"](self.classifier["drop"](h))


class _FunctionalDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.hidden, self.out = nn.Linear(12, 16), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.dropout(F.relu(self.hidden(x)), 0.5, training=self.training))


class _Counting(nn.Module):
    """Wraps a model and counts its forward calls."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


@pytest.mark.parametrize("name", strategies.available())
def test_every_strategy_runs_on_a_plain_mlp_and_numpy_features(name):
    a = select_batch(
        _mlp(), X_TABULAR, 12, name, x_validation=X_TABULAR[:40], x_labelled=X_TABULAR[:6],
        n_mc_samples=8, seed=3,
    )  # fmt: skip
    b = select_batch(
        _mlp(), torch.from_numpy(X_TABULAR).float(), 12, name,
        x_validation=X_TABULAR[:40], x_labelled=X_TABULAR[:6], n_mc_samples=8, seed=3,
    )  # fmt: skip
    assert a.indices.dtype == torch.long and a.indices.shape == (12,)
    assert len(set(a.indices.tolist())) == 12
    assert 0 <= int(a.indices.min()) and int(a.indices.max()) < len(X_TABULAR)
    assert torch.equal(a.indices, b.indices)  # numpy float64 and torch float32: one batch
    if name == "dean":
        assert 0.0 <= a.sigma <= 1.0 and a.beta > 0


@pytest.mark.parametrize("name", ["bald", "batchbald", "dean", "coreset", "badge"])
def test_a_readers_cnn_with_nested_channel_dropout(name):
    x = torch.randn(120, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    model = _ReaderCNN()
    sel = select_batch(model, x, 6, name, x_validation=x[:20], n_mc_samples=6, seed=5)
    again = select_batch(model, x, 6, name, x_validation=x[:20], n_mc_samples=6, seed=5)
    assert torch.equal(sel.indices, again.indices)
    assert len(set(sel.indices.tolist())) == 6
    assert model.training  # the caller's mode is restored


def test_a_model_without_dropout_is_refused_before_any_pass():
    model = _Counting(nn.Sequential(nn.Linear(12, 3)))
    with pytest.raises(ValueError, match="no torch dropout module"):
        select_batch(model, X_TABULAR, 5, "bald")
    assert model.calls == 0
    assert select_batch(model, X_TABULAR, 5, "entropy").indices.shape == (5,)


def test_functional_dropout_is_refused_before_any_selection():
    model = _FunctionalDropout()
    model.extra = nn.Dropout(0.1)  # a dropout module that never runs: passes still identical
    with pytest.raises(ValueError, match="identical MC-dropout passes"):
        select_batch(model, X_TABULAR, 5, "bald", n_mc_samples=4)


def test_dean_without_a_validation_set_is_refused_before_any_pass():
    model = _Counting(_mlp())
    with pytest.raises(ValueError, match="x_validation"):
        select_batch(model, X_TABULAR, 5, "dean")
    assert model.calls == 0
    fixed = select_batch(model, X_TABULAR, 5, "dean", beta=10.0, n_mc_samples=4, seed=0)
    assert fixed.beta == 10.0 and fixed.sigma is None
    given = select_batch(model, X_TABULAR, 5, "dean", sigma=0.2, n_mc_samples=4, seed=0)
    assert given.sigma == 0.2


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"x_pool": X_TABULAR.tolist()}, TypeError, "x_pool must be a torch.Tensor or a numpy"),
        ({"x_pool": X_TABULAR[:, 0]}, ValueError, r"x_pool must have shape \(N, \.\.\.\)"),
        ({"x_pool": np.array([["a", "b"]])}, TypeError, "x_pool must hold numbers"),
        ({"x_pool": np.full((4, 12), np.nan)}, ValueError, "x_pool contains NaN"),
        ({"budget": 0}, ValueError, "budget"),
        ({"budget": 301}, ValueError, "budget"),
        ({"n_mc_samples": 1}, ValueError, "n_mc_samples"),
        ({"strategy": "nope"}, ValueError, "unknown strategy 'nope'"),
        ({"strategy": "bald", "beta": 3}, TypeError, "unknown option"),
        ({"x_validation": X_TABULAR[:5, :4]}, ValueError, "x_validation items must have"),
        ({"model": "mlp"}, TypeError, "model must be a torch nn.Module"),
    ],
)
def test_misuse_is_named_before_any_pass(kwargs, error, message):
    model = _Counting(_mlp())
    args = {"model": model, "x_pool": X_TABULAR, "budget": 5, "strategy": "bald"} | kwargs
    with pytest.raises(error, match=message):
        select_batch(**args)
    assert model.calls == 0


def test_features_are_the_input_of_the_last_linear_without_a_features_method():
    model = _mlp().eval()
    x = torch.from_numpy(X_TABULAR[:7]).float()
    with torch.no_grad():
        expected = model[2](model[1](model[0](x)))  # dropout is the identity in eval mode
    assert torch.allclose(penultimate_features(model, x), expected)
    with pytest.raises(TypeError, match="no features"):
        penultimate_features(nn.Sequential(nn.Flatten()), x)


def test_the_package_exposes_select_batch_lazily():
    assert dean_nb.select_batch is select_batch
    assert strategies.select_batch is select_batch


# ------------------------------------------------------------------ from predictions alone

G = torch.Generator().manual_seed(7)
PROBS_T_N_K = torch.softmax(2 * torch.randn(12, 150, 4, generator=G), dim=-1)
FEATURES_N_F = torch.randn(150, 6, generator=G)


@pytest.mark.parametrize("name", strategies.available())
def test_every_strategy_runs_from_predictions_alone(name):
    kwargs = {
        "probs_T_N_K": PROBS_T_N_K, "probs_N_K": PROBS_T_N_K.mean(0),
        "features_N_F": FEATURES_N_F, "sigma": 0.3, "seed": 2,
    }  # fmt: skip
    a = select_from_predictions(9, name, **kwargs)
    b = select_from_predictions(9, name, **kwargs)
    assert torch.equal(a.indices, b.indices)
    assert len(set(a.indices.tolist())) == 9 and int(a.indices.max()) < 150


def test_predictions_and_the_model_give_the_same_batch_where_the_draws_agree():
    """entropy, coreset and BALD from a model's own predictions pick what select_batch picks
    from the model (BALD: the same MC samples, drawn from the same seed)."""
    model, x = _mlp(), torch.from_numpy(X_TABULAR).float()
    probs_N_K = mc_dropout.predict_probs(model, x)
    assert torch.equal(
        select_batch(model, x, 7, "entropy").indices,
        select_from_predictions(7, "entropy", probs_N_K=probs_N_K).indices,
    )
    assert torch.equal(
        select_batch(model, x, 7, "coreset").indices,
        select_from_predictions(7, "coreset", features_N_F=penultimate_features(model, x)).indices,
    )
    samples = mc_dropout.mc_dropout_probs(model, x, 10, generator=make_generator(5))
    assert torch.equal(
        select_batch(model, x, 7, "bald", n_mc_samples=10, seed=5).indices,
        select_from_predictions(7, "bald", probs_T_N_K=samples).indices,
    )


def test_baals_layout_is_one_permute_away():
    baal_N_K_T = PROBS_T_N_K.permute(1, 2, 0).numpy()  # baal's [N, K, T]
    ours = select_from_predictions(5, "bald", probs_T_N_K=PROBS_T_N_K)
    theirs = select_from_predictions(
        5, "bald", probs_T_N_K=torch.as_tensor(baal_N_K_T).permute(2, 0, 1)
    )
    assert torch.equal(ours.indices, theirs.indices)
    top = torch.sort(scoring.bald(PROBS_T_N_K), descending=True, stable=True).indices[:5]
    assert torch.equal(ours.indices, top)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("bald", {"probs_N_K": PROBS_T_N_K.mean(0)}, "needs probs_T_N_K"),
        ("badge", {"features_N_F": FEATURES_N_F}, "needs probs_N_K"),
        ("dean", {"probs_T_N_K": PROBS_T_N_K}, "sigma"),
        ("bald", {"probs_T_N_K": PROBS_T_N_K[0]}, r"probs_T_N_K must have shape \(T, N, K\)"),
        ("coreset", {"features_N_F": FEATURES_N_F, "probs_N_K": PROBS_T_N_K[0, :9]}, "pool size"),
        ("random", {}, "at least one prediction"),
    ],
)
def test_missing_or_malformed_predictions_are_named(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        select_from_predictions(3, name, **kwargs)
