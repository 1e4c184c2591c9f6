"""dean_nb.experiment.denoise_study: the variants' channels, and that the per-epoch records of a training
run on noisy labels are what they claim (epochs, channels, memorisation, prefix property)."""

import numpy as np
import pytest
import torch

from dean_nb.experiment.denoise_study import (
    CHANNEL_VARIANTS,
    EpochRecorder,
    channel_for,
    run_variant,
    summarise,
    train_on_noisy_labels,
)
from dean_nb.learner.denoise import near_identity
from dean_nb.learner.models import build_mlp
from dean_nb.learner.training import TrainConfig, train_model
from dean_nb.problem.datasets import load_dataset
from dean_nb.problem.oracle import NoisyOracle, check_channel, pairflip_channel, symmetric_channel

K, DIM, N = 3, 6, 48


def noisy_data(eps: float = 0.4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(N) % K
    x = torch.randn(N, DIM, generator=g) + 2 * torch.eye(K, DIM)[y]
    y_noisy = NoisyOracle(symmetric_channel(K, eps), seed=seed).label(y)
    return x, y, y_noisy, x[:20], y[:20]


def run(epochs: int, variant: str = "projected W", eps: float = 0.4, every: int = 2):
    x, y, y_noisy, x_test, y_test = noisy_data(eps)
    return train_on_noisy_labels(
        build_mlp(DIM, K, width=16, seed=1),
        x,
        y,
        y_noisy,
        TrainConfig(epochs=epochs, batch_size=16, weight_decay=0.0),
        x_test=x_test,
        y_test=y_test,
        channel=channel_for(variant, K, eps),
        record_every=every,
        generator=7,
        device="cpu",
        x_validation=x_test,
        n_mc_samples=4,
    )


def test_channel_for_every_variant():
    assert channel_for("no channel", K, 0.3) is None
    for variant in ("projected W", "softmax W"):
        ch = channel_for(variant, K, 0.3)
        assert any(p.requires_grad for p in ch.parameters())
        assert ch.matrix.diagonal().min() > 0.95  # starts at or near the identity
    frozen = {v: channel_for(v, K, 0.3) for v in CHANNEL_VARIANTS[3:]}
    for ch in frozen.values():
        assert not any(p.requires_grad for p in ch.parameters())
    torch.testing.assert_close(frozen["W fixed at T"].matrix, symmetric_channel(K, 0.3).float())
    torch.testing.assert_close(
        frozen["W fixed, diagonal 0.4"].matrix, near_identity(K, 0.4).float()
    )
    with pytest.raises(ValueError, match="variant"):
        channel_for("learned W", K, 0.3)


def test_the_fixed_true_channel_follows_the_oracles_noise():
    for noise, expected in [
        ("pairflip", pairflip_channel(K, 0.3)),
        ("symmetric", symmetric_channel(K, 0.3)),
        ([[0.5, 0.0, 0.2], [0.5, 1.0, 0.0], [0.0, 0.0, 0.8]], None),
    ]:
        fixed = channel_for("W fixed at T", K, 0.3, noise).matrix
        want = torch.tensor(noise) if expected is None else expected
        torch.testing.assert_close(fixed, want.float())
    with pytest.raises(ValueError, match="noise must be one of"):
        channel_for("W fixed at T", K, 0.3, "pairwise")
    with pytest.raises(ValueError, match="column"):
        channel_for("no channel", K, 0.3, [[0.5, 0.5, 0.5]] * 3)  # checked for every variant


def _digits_run(**kw):
    digits = load_dataset("digits")
    args = dict(labels_per_class=10, validation_size=100, n_mc_samples=2, device="cpu")
    return run_variant(digits, epochs=2, record_every=2, seed=3, **{**args, **kw})


def test_run_variant_under_pairflip_noise():
    # the default channel is the symmetric one: chapter 4's runs are unchanged
    default = _digits_run(variant="no channel", epsilon=0.3)
    symmetric = _digits_run(variant="no channel", epsilon=0.3, noise="symmetric")
    np.testing.assert_array_equal(default.accuracy, symmetric.accuracy)
    assert default.flip_rate == symmetric.flip_rate
    pair = _digits_run(variant="W fixed at T", epsilon=0.3, noise="pairflip")
    torch.testing.assert_close(pair.channel, pairflip_channel(10, 0.3).float().double())
    assert 0.2 < pair.flip_rate < 0.4 and 0.2 < default.flip_rate < 0.4  # 100 labels


def test_records_every_few_epochs_and_every_w_is_a_channel():
    rec = run(6)
    assert rec.epoch.tolist() == [2, 4, 6]
    assert rec.accuracy.shape == rec.memorised.shape == rec.diagonal.shape == (3,)
    assert rec.channels.shape == (3, K, K)
    for w in rec.channels:
        check_channel(torch.from_numpy(w))
    assert ((rec.accuracy >= 0) & (rec.accuracy <= 1)).all()
    assert ((rec.memorised >= 0) & (rec.memorised <= 1)).all()
    assert 0 <= rec.sigma <= 1 - 1 / K
    _, y, y_noisy, _, _ = noisy_data()
    assert rec.flip_rate == pytest.approx((y != y_noisy).double().mean().item())
    assert rec.at("accuracy", 4) == rec.accuracy[1]
    assert torch.equal(rec.channel, torch.from_numpy(rec.channels[-1]))
    with pytest.raises(KeyError, match="not recorded"):
        rec.at("accuracy", 3)


def test_a_short_run_repeats_the_first_records_of_a_long_one():
    short, long = run(4), run(8)
    assert np.array_equal(short.accuracy, long.accuracy[:2])
    assert np.array_equal(short.memorised, long.memorised[:2])
    assert np.array_equal(short.channels, long.channels[:2])


def test_frozen_channel_stays_put_and_no_channel_records_none():
    frozen = run(4, "W fixed at T")
    for w in frozen.channels:
        np.testing.assert_allclose(w, symmetric_channel(K, 0.4), atol=1e-6)
    plain = run(4, "no channel")
    assert plain.channels is None and plain.channel is None and plain.diagonal.size == 0


def test_memorisation_is_empty_without_flips_and_counts_predicted_flips():
    assert run(2, eps=0.0).memorised.size == 0
    x, y, y_noisy, x_test, y_test = noisy_data()
    model = build_mlp(DIM, K, width=16, seed=1).eval()
    recorder = EpochRecorder(x_test, y_test, x, y, y_noisy, every=1, device="cpu")
    recorder(1, model, None)
    flipped = y_noisy != y
    with torch.no_grad():
        predicted = model(x[flipped]).argmax(1)
    expected = (predicted == y_noisy[flipped]).float().mean().item()
    assert recorder.memorised == [pytest.approx(expected)]
    recorder(2, model, None)  # every=1: also recorded
    assert recorder.epoch == [1, 2]


def test_recording_does_not_change_training():
    x, y, y_noisy, x_test, y_test = noisy_data()
    rec_model = build_mlp(DIM, K, width=16, seed=1)
    config = TrainConfig(epochs=3, batch_size=16, weight_decay=0.0)
    train_on_noisy_labels(
        rec_model, x, y, y_noisy, config, x_test=x_test, y_test=y_test, generator=7, device="cpu"
    )
    plain_model = build_mlp(DIM, K, width=16, seed=1)
    train_model(plain_model, x, y_noisy, config, device="cpu", generator=7)
    for a, b in zip(rec_model.parameters(), plain_model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_summarise_means_over_runs_at_the_given_epochs():
    a, b = run(4), run(4, eps=0.2)
    row = summarise([a, b], (2, 4))
    assert list(row) == ["accuracy @2", "accuracy @4", "memorised @4", "mean diag(W)", "sigma"]
    assert row["accuracy @2"] == pytest.approx((a.accuracy[0] + b.accuracy[0]) / 2)
    assert row["memorised @4"] == pytest.approx((a.memorised[1] + b.memorised[1]) / 2)
    assert row["mean diag(W)"] == pytest.approx((a.diagonal[1] + b.diagonal[1]) / 2)
    assert row["sigma"] == pytest.approx((a.sigma + b.sigma) / 2)
    plain = summarise([run(2, "no channel", eps=0.0)], (2,))
    assert np.isnan(plain["mean diag(W)"]) and np.isnan(plain["memorised @2"])
