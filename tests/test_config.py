"""The configuration (dean_nb.experiment.config): presets, validation when built, overrides.

Properties: a configuration round-trips through JSON; the presets hold the paper's protocol;
a bad value is refused when the configuration is built, with a message naming the field;
``key=value`` overrides are read into the field's type.
"""

from __future__ import annotations

import json

import pytest

from dean_nb.experiment.config import ExperimentConfig, parse_override
from dean_nb.experiment.presets import PRESETS, preset_of


def test_config_json_round_trip_and_presets(quick):
    config = quick(strategy="bald", epsilon=0.2, denoise=True, seed=3, pool_subset=500)
    text = json.dumps(config.to_dict())
    assert ExperimentConfig.from_dict(json.loads(text)) == config
    paper = ExperimentConfig.preset("mnist", "paper")
    assert (paper.initial_per_class * 10, paper.validation_size) == (40, 5000)
    assert (paper.acquisition_size, paper.n_steps, paper.epochs) == (200, 5, 50)
    assert (paper.n_mc_samples, paper.n_clusters, paper.beta_kind) == (100, 2500, "exp")
    assert ExperimentConfig.preset("emnist", "paper").beta_kind == "pow4"
    assert ExperimentConfig.preset("cifar100", "paper").beta_kind == "pow4"
    assert ExperimentConfig.preset("svhn", "paper").beta_scale == 0.25
    assert ExperimentConfig.preset("fashion-mnist", "medium").acquisition_size == 200
    assert quick(n_clusters=None).effective_n_clusters == 5 * quick().acquisition_size


def test_each_dataset_has_one_preset_and_preset_of_names_it():
    datasets = [d for table in PRESETS.values() for d in table]
    assert len(datasets) == len(set(datasets))  # so "the dataset's preset" is one preset
    for dataset in datasets:
        ExperimentConfig.preset(dataset, preset_of(dataset))  # exists for it
    assert [preset_of(d) for d in ("digits", "fashion-mnist", "mnist")] == [
        "quick",
        "medium",
        "paper",
    ]
    assert preset_of("imagenet") is None


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda quick: ExperimentConfig.preset("mnist", "quick"), "presets by dataset"),
        (lambda quick: ExperimentConfig.preset("digits", "huge"), "preset must be one of"),
        (lambda quick: quick(strategy="magic"), "strategy must be one of .*dean"),
        (lambda quick: quick(epsilon=1.0), r"epsilon must lie in \[0.0, 1.0\)"),
        (lambda quick: quick(beta_kind="linear"), "beta_kind must be one of"),
        (lambda quick: quick(pool_subset=5), r"pool_subset must lie in \[20"),
        (lambda quick: quick(bogus=1), "unknown override"),
        (lambda quick: ExperimentConfig.from_dict({"bogus": 1}), "unknown ExperimentConfig field"),
    ],
)
def test_bad_config_is_rejected_with_a_clear_message(call, match, quick):
    with pytest.raises(ValueError, match=match):
        call(quick)


def test_parse_override_types():
    assert parse_override("epochs=7") == ("epochs", 7)
    assert parse_override("epsilon=0.25") == ("epsilon", 0.25)
    assert parse_override("denoise=yes") == ("denoise", True)
    assert parse_override("pool_subset=none") == ("pool_subset", None)
    assert parse_override("device=cuda:1") == ("device", "cuda:1")
    assert parse_override("noise=pairflip") == ("noise", "pairflip")
    assert parse_override("noise=channels/T.json") == ("noise", "channels/T.json")
    assert parse_override('strategy_options={"linkage": "average"}') == (
        "strategy_options",
        {"linkage": "average"},
    )
    with pytest.raises(ValueError, match="epochs needs a int"):
        parse_override("epochs=many")
    with pytest.raises(ValueError, match="unknown override key 'epoch'"):
        parse_override("epoch=3")
