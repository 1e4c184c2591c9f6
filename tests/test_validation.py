"""Bad settings are refused when they are built, before any compute (dean_nb.validation and
the checks of ExperimentConfig, the strategies and the scores).

Properties: a boolean is never a number; infinite learning rates, weight decays and beta
scales are refused; every strategy refuses unknown options and invalid values with a message
naming the option and what it accepts, and a configuration builds its strategy, so bad options
never reach a run; ``-0.0`` is ``0.0`` (same run key); the run key of every committed record
is unchanged (its file name).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dean_nb import strategies
from dean_nb.cli import parse_epsilons
from dean_nb.experiment.config import ExperimentConfig, run_key
from dean_nb.experiment.grid import make_grid, result_path
from dean_nb.strategies import scoring
from dean_nb.validation import check_float_range, check_int_range

BOOK_RESULTS = Path(__file__).resolve().parents[1] / "book" / "results"


# --------------------------------------------------------------------------- range checks


@pytest.mark.parametrize("flag", [True, False, np.True_, np.False_])
def test_a_boolean_is_never_a_number(flag):
    with pytest.raises(TypeError, match=r"^budget must be an integer, got the boolean"):
        check_int_range("budget", flag, 0)
    with pytest.raises(TypeError, match=r"^lr must be a real number, got the boolean"):
        check_float_range("lr", flag, 0.0, 1.0)


def test_integers_and_reals_of_other_types_are_accepted_as_python_numbers():
    assert check_int_range("n", np.int64(3), 1) == 3
    assert type(check_int_range("n", np.int64(3), 1)) is int
    assert check_int_range("n", 3.0, 1) == 3
    assert check_float_range("x", np.float32(0.5), 0.0, 1.0) == 0.5
    with pytest.raises(TypeError, match=r"^x must be a real number, got 'abc'"):
        check_float_range("x", "abc", 0.0, 1.0)
    with pytest.raises(ValueError, match=r"^x must lie in \(0.0, inf\), got inf"):
        check_float_range("x", math.inf, 0.0, math.inf, low_inclusive=False, high_inclusive=False)


# --------------------------------------------------------------------------- ExperimentConfig


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        ({"beta_scale": math.inf}, ValueError, r"^beta_scale must lie in \(0.0, inf\), got inf"),
        ({"lr": math.inf}, ValueError, r"^lr must lie in \(0.0, inf\), got inf"),
        ({"weight_decay": math.inf}, ValueError, r"^weight_decay must lie in \[0.0, inf\), got"),
        ({"lr": math.nan}, ValueError, r"^lr must lie in"),
        ({"seed": True}, TypeError, r"^seed must be an integer, got the boolean True"),
        ({"acquisition_size": True}, TypeError, r"^acquisition_size must be an integer"),
        ({"epochs": np.True_}, TypeError, r"^epochs must be an integer"),
        ({"n_clusters": False}, TypeError, r"^n_clusters must be an integer"),
        ({"pool_subset": True}, TypeError, r"^pool_subset must be an integer"),
        ({"epsilon": True}, TypeError, r"^epsilon must be a real number, got the boolean"),
        ({"denoise": 1}, TypeError, r"^denoise must be True, False or 'forward', got 1"),
        ({"denoise": "no"}, ValueError, r"^denoise must be True, False or 'forward', got 'no'"),
        ({"quiet": None}, TypeError, r"^quiet must be True or False"),
        ({"root": 5}, TypeError, r"^root must be a folder path"),
        (
            {"strategy_options": {"linkage": "ward"}},
            ValueError,
            r"^strategy_options of 'dean': linkage must be one of single, average, complete; "
            r"got 'ward'",
        ),
        (
            {"strategy_options": {"foo": 1}},
            TypeError,
            r"^strategy_options of 'dean': strategy 'dean' got unknown option\(s\) foo; its "
            r"options are: beta_kind, beta_scale, n_clusters, linkage",
        ),
        (
            {"strategy": "random", "strategy_options": {"linkage": "single"}},
            TypeError,
            r"unknown option\(s\) linkage; its options are: \(none\)",
        ),
        (
            {"strategy": "batchbald", "strategy_options": {"n_joint_samples": 0}},
            ValueError,
            r"^strategy_options of 'batchbald': n_joint_samples must lie in \[1, inf\], got 0",
        ),
        (
            {"strategy": "coreset", "strategy_options": {"chunk_size": True}},
            TypeError,
            r"chunk_size must be an integer, got the boolean True",
        ),
        (
            {"strategy_options": {"n_clusters": 0}},
            ValueError,
            r"^strategy_options of 'dean': n_clusters must lie in \[1, inf\], got 0",
        ),
        ({"strategy_options": {1: 2}}, TypeError, r"keys must be option names"),
    ],
)
def test_bad_settings_are_refused_when_the_config_is_built(overrides, error, message, quick):
    with pytest.raises(error, match=message):
        quick(**overrides)
    # and by every other way of making a config: from JSON and by replace()
    if "strategy_options" in overrides or "strategy" in overrides:
        data = {**quick().to_dict(), **overrides}
        with pytest.raises(error, match=message):
            ExperimentConfig.from_dict(data)
    with pytest.raises(error, match=message):
        quick().replace(**overrides)


@pytest.mark.parametrize("name", strategies.available())
def test_every_strategy_refuses_unknown_options_and_lists_its_own(name):
    cls = type(strategies.get(name))
    allowed = [f.name for f in dataclasses.fields(cls) if f.init]
    with pytest.raises(TypeError, match=rf"^strategy '{name}' got unknown option\(s\) foo") as err:
        strategies.get(name, foo=1)
    assert str(err.value).endswith(", ".join(allowed) or "(none)")
    for option in allowed:  # a boolean where a number or a name belongs is refused
        with pytest.raises((TypeError, ValueError), match=option):
            strategies.get(name, **{option: True})


def test_valid_options_are_kept_and_strategy_gets_what_a_run_gets(quick):
    config = quick(strategy_options={"linkage": "average"})
    assert config.strategy_options == {"linkage": "average"}
    assert quick(strategy="batchbald", strategy_options={"n_joint_samples": 50}).strategy_options
    assert quick(strategy="coreset", strategy_options={"chunk_size": 16}).strategy == "coreset"


def test_canonical_values_give_equal_configs_and_run_keys(quick):
    base = quick()
    assert quick(epsilon=-0.0) == quick(epsilon=0.0) == quick(epsilon=0)
    assert math.copysign(1.0, quick(epsilon=-0.0).epsilon) == 1.0
    assert run_key(quick(epsilon=-0.0)) == run_key(base)
    assert run_key(quick(epsilon=-0.0)).startswith("digits_dean_eps0_seed0_")
    assert quick(seed=np.int64(3)) == quick(seed=3) and type(quick(seed=np.int64(3)).seed) is int
    assert quick(denoise=np.True_).denoise is True
    assert quick(root=Path("/data")).root == "/data"
    assert run_key(quick(seed=np.int64(3))) == run_key(quick(seed=3))
    json.dumps(quick(seed=np.int64(3), device=torch.device("cpu")).to_dict())  # JSON-safe
    # a grid over "-0" is the grid over "0": the same files, so finished runs are found
    (minus,) = make_grid(base, ["random"], parse_epsilons("-0"), (False,), [0])
    (plus,) = make_grid(base, ["random"], [0.0], (False,), [0])
    assert result_path(minus, "r") == result_path(plus, "r")
    assert parse_epsilons("-0,0") == [0.0]


def test_run_keys_of_the_committed_records_are_unchanged():
    paths = sorted(BOOK_RESULTS.glob("**/*.json")) if BOOK_RESULTS.is_dir() else []
    paths = [p for p in paths if not p.name.startswith(".")]
    if not paths:
        pytest.skip(f"no committed records under {BOOK_RESULTS}")
    for path in paths:
        record = json.loads(path.read_text(encoding="utf-8"))
        config = ExperimentConfig.from_dict(record["config"])
        assert result_path(config, path.parent).name == path.name, path
        assert config.to_dict() == record["config"], path  # canonical already: nothing moved


# --------------------------------------------------------------------------- scores


@pytest.mark.parametrize(
    "score, name",
    [
        (scoring.bald, "probs_T_N_K"),
        (scoring.variation_ratio, "probs_T_N_K"),
        (scoring.predictive_entropy, "probs"),
    ],
)
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_scores_of_a_non_float_tensor_name_the_argument(score, name, dtype):
    probs = torch.zeros(3, 4, 5, dtype=dtype)
    probs[..., 0] = 1
    with pytest.raises(TypeError, match=rf"^{name} must be a floating-point tensor, got dtype"):
        score(probs)
    if score is scoring.predictive_entropy:  # the (N, K) form too
        with pytest.raises(TypeError, match=r"^probs must be a floating-point tensor"):
            score(probs[0])
    assert torch.isfinite(score(probs.float())).all()  # the same values as floats are fine
