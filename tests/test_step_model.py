"""The model of a step under forward correction (``denoise="forward"``, issue 22).

Properties: the forward step is the plain step model, an anchor-point estimate of the channel
from its predictions on the labelled and validation images, and a fresh model from the same
initial weights and minibatch order trained through that fixed estimate; the loop records the
estimate as the step's channel; the method is named ``+forward`` in grids and on the CLI.
"""

from __future__ import annotations

import pytest
import torch

from dean_nb.cli import grid_of_command
from dean_nb.experiment.config import ExperimentConfig, split_method
from dean_nb.experiment.loop import run_active_learning
from dean_nb.experiment.step_model import step_network, train_step_model
from dean_nb.learner import training
from dean_nb.learner.forward import anchor_channel, fixed_channel
from dean_nb.learner.mc_dropout import predict_probs
from dean_nb.problem.datasets import load_dataset
from dean_nb.problem.oracle import NoisyOracle, check_channel, pairflip_channel
from dean_nb.problem.split import make_split
from dean_nb.runtime import make_generator, purpose_seed

SMALL = dict(
    strategy="random",
    noise="pairflip",
    epsilon=0.4,
    n_steps=1,
    acquisition_size=100,
    epochs=15,
    n_mc_samples=4,
    quiet=True,
)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Every tensor of the two models' state dicts equal, bit for bit."""
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return all(torch.equal(x, y) for x, y in pairs)


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits")
    split = make_split(data.y_train, 10, 10, 100, seed=0)
    oracle = NoisyOracle(pairflip_channel(10, 0.4), seed=1)
    labels = oracle.label(data.y_train[split.initial])
    return data, split, labels


def test_a_forward_step_trains_through_the_anchor_estimate_of_the_plain_step(digits):
    data, split, labels = digits
    config = ExperimentConfig.preset("digits", "quick", denoise="forward", **SMALL)
    x, x_val = data.x_train[split.initial], data.x_train[split.validation]
    model, channel = train_step_model(config, x, labels, 10, 3, "cpu", x_unlabelled=x_val)

    plain, none = train_step_model(config.replace(denoise=False), x, labels, 10, 3, "cpu")
    assert none is None
    expected = anchor_channel(predict_probs(plain, torch.cat([x, x_val])))
    torch.testing.assert_close(channel.matrix.double(), expected, atol=1e-6, rtol=0)
    assert not any(p.requires_grad for p in channel.parameters())

    again = step_network(config, 10, (1, 8, 8), purpose_seed(config.seed, "model:3"))
    training.train_model(
        again,
        x,
        labels,
        training.TrainConfig(epochs=config.epochs, lr=config.lr, weight_decay=config.weight_decay),
        channel=fixed_channel(expected),  # a fresh one: projection moves W by float32 rounding
        device="cpu",
        generator=make_generator(purpose_seed(config.seed, "train:3")),
        progress=False,
    )
    assert same_weights(model, again)
    assert not same_weights(model, plain)  # the correction changed the model


def test_the_first_forward_step_is_the_plain_one_through_the_identity(digits):
    # step 0 holds the clean initial labels only: nothing of the oracle to estimate
    data, split, _ = digits
    config = ExperimentConfig.preset("digits", "quick", denoise="forward", **SMALL)
    x, y = data.x_train[split.initial], data.y_train[split.initial]
    model, channel = train_step_model(config, x, y, 10, 0, "cpu", x_unlabelled=x)
    plain, _ = train_step_model(config.replace(denoise=False), x, y, 10, 0, "cpu")
    torch.testing.assert_close(channel.matrix.double(), torch.eye(10, dtype=torch.float64))
    assert same_weights(model, plain)


def test_the_loop_records_each_steps_estimate():
    config = ExperimentConfig.preset("digits", "quick", denoise="forward", **SMALL)
    result = run_active_learning(config)
    assert config.method == "random+forward"
    for record in result.steps:
        matrix = torch.tensor(record.channel, dtype=torch.float64)
        check_channel(matrix)  # column-stochastic, finite
        assert matrix.shape == (10, 10)
    # the same labelled sets as the plain run (random picks do not see the model)
    plain = run_active_learning(config.replace(denoise=False))
    assert result.selected == plain.selected


def test_forward_is_a_method_suffix_of_grids_and_the_cli():
    assert split_method("dean+forward") == ("dean", "forward")
    assert split_method("dean+denoise") == ("dean", True)
    assert split_method("dean") == ("dean", None)
    configs = grid_of_command(
        "run --dataset digits --strategies dean+forward,bald --oracle-memory 0.5 --epsilons 0.3"
    )
    assert [(c.method, c.denoise, c.oracle_memory) for c in configs] == [
        ("dean+forward", "forward", 0.5),
        ("bald", False, 0.5),
    ]
    with pytest.raises(ValueError, match="refuses"):
        grid_of_command("run --dataset digits --oracle-memory 1.5")
