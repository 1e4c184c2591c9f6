"""Training from scratch: accuracy, determinism, weight decay placement, the channel hook."""

import pytest
import torch
from torch import nn

from dean_nb.learner.models import build_model
from dean_nb.learner.training import (
    TrainConfig,
    batch_loss,
    channel_optimizers,
    evaluate_accuracy,
    make_optimizer,
    train_model,
)
from dean_nb.problem.datasets import load_dataset

FAST = TrainConfig(epochs=15)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def labelled(digits):
    """30 labelled images per class (300 in all), the first of each class."""
    idx = torch.cat([torch.nonzero(digits.y_train == k).flatten()[:30] for k in range(10)])
    return digits.x_train[idx], digits.y_train[idx]


def fresh(seed=0):
    return build_model("digits", 10, 1, 8, seed=seed)


def test_training_on_digits_beats_chance_clearly(digits, labelled):
    x, y = labelled
    model = fresh()
    untrained = evaluate_accuracy(model, digits.x_test, digits.y_test, device="cpu")
    out = train_model(model, x, y, FAST, device="cpu", generator=0)
    assert out is model
    assert not model.training
    accuracy = evaluate_accuracy(model, digits.x_test, digits.y_test, device="cpu")
    assert accuracy > 0.8
    assert accuracy > untrained + 0.4


def test_training_is_deterministic_by_seed_and_leaves_global_rng(labelled):
    x, y = labelled
    config = TrainConfig(epochs=2)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    a = train_model(fresh(), x, y, config, device="cpu", generator=1).state_dict()
    assert torch.equal(torch.rand(3), expected)
    b = train_model(fresh(), x, y, config, device="cpu", generator=1).state_dict()
    c = train_model(fresh(), x, y, config, device="cpu", generator=2).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_weight_decay_reaches_only_first_dense_weight():
    model = fresh()
    config = TrainConfig(weight_decay=3.5)
    optimizer = make_optimizer(model, 70, config)
    decayed = [g for g in optimizer.param_groups if g["weight_decay"] > 0]
    assert len(decayed) == 1
    assert decayed[0]["weight_decay"] == pytest.approx(3.5 / 70)
    assert len(decayed[0]["params"]) == 1 and decayed[0]["params"][0] is model.first_dense.weight
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))
    # Behaviour: with zero gradients only the decayed tensor moves.
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    moved = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert moved == {"head.1.weight"}
    assert model.head[1] is model.first_dense


class CountingChannel(nn.Module):
    """A learnable K x K channel (softmax columns) that counts its projections."""

    def __init__(self, k):
        super().__init__()
        self.logits = nn.Parameter(torch.eye(k) * 4.0)
        self.projections = 0

    def forward(self, probs):
        return probs @ torch.softmax(self.logits, dim=0).T

    def project_(self):
        self.projections += 1


def test_channel_hook_projects_after_every_step_and_trains(labelled):
    x, y = labelled
    x, y = x[:70], y[:70]
    channel = CountingChannel(10)
    start = channel.logits.detach().clone()
    config = TrainConfig(epochs=3, batch_size=32, channel_lr=5e-2)
    optimizer = make_optimizer(fresh(), 70, config, channel)
    assert optimizer.param_groups[-1]["lr"] == 5e-2
    assert optimizer.param_groups[-1]["weight_decay"] == 0.0
    train_model(fresh(), x, y, config, channel=channel, device="cpu", generator=0)
    assert channel.projections == 3 * 3  # ceil(70 / 32) steps per epoch
    assert not torch.allclose(channel.logits, start)
    assert not channel.training


def test_channel_trains_by_its_own_sgd_or_stays_frozen(labelled):
    """``channel_optimizer="sgd"``: the channel leaves Adam for an SGD of its own (and still
    projects after every step); a channel with ``requires_grad`` off does not move."""
    x, y = labelled
    x, y = x[:70], y[:70]
    config = TrainConfig(epochs=2, batch_size=32, channel_lr=0.5, channel_optimizer="sgd")
    channel = CountingChannel(10)
    assert len(make_optimizer(fresh(), 70, config, channel).param_groups) == 2
    (sgd,) = channel_optimizers(fresh(), config, channel)
    assert type(sgd) is torch.optim.SGD and sgd.param_groups[0]["lr"] == 0.5
    assert channel_optimizers(fresh(), TrainConfig(), channel) == []
    start = channel.logits.detach().clone()
    train_model(fresh(), x, y, config, channel=channel, device="cpu", generator=0)
    assert channel.projections == 2 * 3
    assert not torch.allclose(channel.logits, start)
    frozen = CountingChannel(10).requires_grad_(False)
    start = frozen.logits.detach().clone()
    train_model(fresh(), x, y, config, channel=frozen, device="cpu", generator=0)
    assert torch.equal(frozen.logits, start)


class Permutation(nn.Module):
    """A fixed noisy channel that maps class j to class (j + 1) mod K."""

    def forward(self, probs):
        return torch.roll(probs, shifts=1, dims=-1)


def test_channel_enters_the_loss(digits, labelled):
    """Labels passed through a known channel: the model behind it learns the clean classes."""
    x, y = labelled
    noisy_y = (y + 1) % 10
    model = train_model(fresh(), x, noisy_y, FAST, channel=Permutation(), device="cpu", generator=0)
    assert evaluate_accuracy(model, digits.x_test, digits.y_test, device="cpu") > 0.8
    logits = torch.randn(5, 10)
    labels = torch.arange(5)
    plain = batch_loss(logits, labels)
    assert torch.allclose(batch_loss(logits, labels, nn.Identity()), plain, atol=1e-5)
    zero = batch_loss(torch.tensor([[50.0, -50.0]]), torch.tensor([1]), nn.Identity())
    assert torch.isfinite(zero)


def test_evaluate_accuracy_matches_argmax_and_restores_modes(digits):
    model = fresh()
    model.train()
    accuracy = evaluate_accuracy(
        model, digits.x_test[:50], digits.y_test[:50], batch_size=16, device="cpu"
    )
    assert model.training
    model.eval()
    with torch.no_grad():
        expected = (model(digits.x_test[:50]).argmax(-1) == digits.y_test[:50]).float().mean()
    assert accuracy == pytest.approx(expected.item())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", -1),
        ("lr", 0.0),
        ("batch_size", 0),
        ("weight_decay", -1.0),
        ("channel_lr", 0.0),
        ("channel_optimizer", "rmsprop"),
    ],
)
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_bad_training_data_raise(labelled):
    x, y = labelled
    with pytest.raises(ValueError, match="y"):
        train_model(fresh(), x, y.float(), FAST, device="cpu")
    with pytest.raises(ValueError, match="same length"):
        train_model(fresh(), x, y[:-1], FAST, device="cpu")
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        train_model(fresh(), x, y + 1, FAST, device="cpu")
    with pytest.raises(ValueError, match="x"):
        train_model(fresh(), x[:0], y[:0], FAST, device="cpu")
    with pytest.raises(TypeError, match="config"):
        train_model(fresh(), x, y, {"epochs": 1}, device="cpu")


def test_a_model_without_first_dense_gets_plain_weight_decay_on_its_weights():
    """A reader's model: the paper's decay (on first_dense alone) has no layer to go to, so
    every weight matrix and kernel is decayed, no bias; without decay, nothing is."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Dropout(0.5), nn.Linear(144, 10))
    groups = make_optimizer(model, 50, TrainConfig(weight_decay=3.5)).param_groups
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(model[0].weight), id(model[3].weight)}
    assert all(g["weight_decay"] in (0.0, 3.5 / 50) for g in groups)
    plain = make_optimizer(model, 50, TrainConfig(weight_decay=0.0)).param_groups
    assert all(g["weight_decay"] == 0.0 for g in plain)
    x = torch.randn(40, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.arange(40) % 10
    train_model(model, x, y, TrainConfig(epochs=2), device="cpu", generator=0)
    assert evaluate_accuracy(model, x, y) >= 0.0
