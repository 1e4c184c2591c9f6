"""How MC-dropout masks are drawn and applied: byte masks, the fused head, consistent masks."""

import copy
import math

import pytest
import torch
from torch import nn

from dean_nb.learner import mc_dropout
from dean_nb.learner.masks import keep_mask
from dean_nb.learner.mc_dropout import (
    inference_modes,
    mc_dropout_probs,
    torch_dropout_probs,
)
from dean_nb.learner.models import ChannelDropout, build_mlp, build_model
from dean_nb.runtime import seeded_global_rng
from dean_nb.strategies.scoring import bald


def _unfused(model: nn.Module) -> nn.Module:
    """A copy whose head has an ``nn.Identity`` after each dropout: same function, but the
    dropout + dense fusion does not apply, so every mask is applied as a (t, B, D) tensor."""
    other = copy.deepcopy(model)
    layers = []
    for layer in other.head:
        layers.append(layer)
        if isinstance(layer, nn.Dropout | ChannelDropout):
            layers.append(nn.Identity())
    other.head = nn.Sequential(*layers)
    return other


# ---------------------------------------------------------------- keep_mask


@pytest.mark.parametrize("p", [0.25, 0.5, 0.3, 0.9])
def test_keep_mask_is_bernoulli_one_minus_p(p):
    """Entries are 0 or 1, kept with probability 1 - p (5 standard errors), and two
    neighbouring entries (from one 64-bit draw on the byte path) are independent."""
    n = 400_000
    mask = keep_mask((n,), p, torch.Generator().manual_seed(0))
    assert mask.dtype == torch.float32 and set(mask.unique().tolist()) <= {0.0, 1.0}
    se = math.sqrt(p * (1 - p) / n)
    assert abs(mask.mean().item() - (1 - p)) < 5 * se
    pairs = mask.view(-1, 2)
    both = (pairs[:, 0] * pairs[:, 1]).mean().item()
    se_both = math.sqrt((1 - p) ** 2 * (1 - (1 - p) ** 2) / (n // 2))
    assert abs(both - (1 - p) ** 2) < 5 * se_both


def test_keep_mask_edge_rates_seed_and_out():
    gen = torch.Generator().manual_seed(1)
    assert keep_mask((3, 4), 0.0, gen).eq(1).all()
    assert keep_mask((3, 4), 1.0, gen).eq(0).all()
    a = keep_mask((64,), 0.25, torch.Generator().manual_seed(5))
    buffer = torch.empty(64, dtype=torch.float64)
    b = keep_mask((64,), 0.25, torch.Generator().manual_seed(5), out=buffer)
    assert b is buffer and torch.equal(a.double(), b)


# ---------------------------------------------------------------- masks as dropout


class _ReaderNet(nn.Module):
    def __init__(self, d: int, p: float, channels: int | None = None) -> None:
        super().__init__()
        linear = nn.Linear(d, d)
        with torch.no_grad():
            linear.weight.copy_(torch.eye(d))
            linear.bias.zero_()
        self.trunk = nn.Flatten()
        drop = nn.Dropout(p) if channels is None else ChannelDropout(p, channels)
        self.head = nn.Sequential(drop, linear)
        self.num_classes = d


def _read_masks(probs_T_N_D: torch.Tensor) -> torch.Tensor:
    """Kept entries have the larger probability of their row."""
    low = probs_T_N_D.min(dim=-1, keepdim=True).values
    return (probs_T_N_D > low * 1.5).float()


@pytest.mark.parametrize("masks", ["independent", "consistent"])
def test_masks_are_drawn_per_input_or_per_pass(masks):
    """Independent: about 1 - p of the entries kept, and two inputs' masks differ.
    Consistent: every input of a pass has the same mask, and passes differ."""
    d, p, n, t = 16, 0.25, 30, 50
    net = _ReaderNet(d, p)
    x = torch.ones(n, d)
    kept_T_N_D = _read_masks(mc_dropout_probs(net, x, t, batch_size=7, generator=2, masks=masks))
    assert abs(kept_T_N_D.mean().item() - (1 - p)) < 0.03
    same_across_inputs = (kept_T_N_D == kept_T_N_D[:, :1]).all(dim=-1).float().mean().item()
    same_across_passes = (kept_T_N_D == kept_T_N_D[:1]).all(dim=-1)[1:].float().mean().item()
    if masks == "consistent":
        assert same_across_inputs == 1.0
        assert same_across_passes < 0.1
    else:
        assert same_across_inputs < 0.1
        assert same_across_passes < 0.1


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("masks", ["independent", "consistent"])
def test_channel_masks_drop_whole_maps(masks, fused):
    """A ChannelDropout mask keeps or drops a map's L features together, at rate p per map;
    consistent masks are shared by every input of a pass. Unfused, the mask is applied on
    the (t, B, D) block; fused, a chunk at a time straight into the dense layer."""
    c, length, p, n, t = 6, 4, 0.25, 40, 60
    d = c * length
    net = _ReaderNet(d, p, channels=c)
    reader = nn.Linear(d, d + 1)  # an extra logit of 0.5 tells kept (4/3) from dropped (0)
    with torch.no_grad():
        reader.weight.copy_(torch.cat([torch.eye(d), torch.zeros(1, d)]))
        reader.bias.copy_(torch.cat([torch.zeros(d), torch.tensor([0.5])]))
    net.head[1], net.num_classes = reader, d + 1
    if not fused:
        net = _unfused(net)
    x = torch.ones(n, d)
    probs = mc_dropout_probs(net, x, t, batch_size=9, generator=5, masks=masks)
    kept_T_N_C_L = (probs[..., :d] > probs[..., d:]).float().view(t, n, c, length)
    assert torch.equal(kept_T_N_C_L.amin(-1), kept_T_N_C_L.amax(-1))  # maps go whole
    rate = 1 - kept_T_N_C_L[..., 0].mean().item()
    sd = math.sqrt(p * (1 - p) / (t * (n if masks == "independent" else 1) * c))
    assert abs(rate - p) < 5 * sd
    same_across_inputs = (kept_T_N_C_L == kept_T_N_C_L[:, :1]).all().item()
    assert same_across_inputs == (masks == "consistent")


@pytest.mark.parametrize("arch", ["digits", "cifar10"])
@pytest.mark.parametrize("masks", ["independent", "consistent"])
def test_channel_networks_match_a_train_mode_forward_in_distribution(arch, masks):
    """The authors' networks (channel dropout on the conv maps, nn.Dropout2d inside the head
    for CIFAR) sampled by the fast path have the law of a plain train()-mode forward (what
    the authors' evalModel runs): means within 5 standard errors, spreads within 20%."""
    c, size = (1, 8) if arch == "digits" else (3, 32)
    model = build_model(arch, 10, c, size, seed=1, conv_dropout="channel")
    x = torch.randn(4, c, size, size, generator=torch.Generator().manual_seed(2))
    t = 1000
    fast = mc_dropout_probs(model, x, t, generator=3, masks=masks)
    with torch.no_grad(), inference_modes(model, dropout=True), seeded_global_rng(4):
        naive = torch.stack([torch.softmax(model(x), -1) for _ in range(t)])
    se = ((fast.var(0) + naive.var(0)) / t).sqrt()
    assert ((fast.mean(0) - naive.mean(0)).abs() <= 5 * se + 1e-4).all()
    assert torch.allclose(fast.std(0), naive.std(0), rtol=0.2, atol=3e-3)


@pytest.mark.parametrize("masks", ["independent", "consistent"])
def test_fused_head_equals_the_masks_applied_one_by_one(monkeypatch, digits_model, x_digits, masks):
    """The fused dropout + dense product (and the masked-weight product of consistent masks)
    computes what dropout then dense computes with the same masks. With one chunk per pass,
    both paths consume the generator's bytes in the same order."""
    monkeypatch.setattr(mc_dropout, "FUSED_CHUNK_ELEMENTS_CPU", 2**30)
    fused = mc_dropout_probs(digits_model, x_digits, 6, batch_size=16, generator=4, masks=masks)
    plain = mc_dropout_probs(
        _unfused(digits_model), x_digits, 6, batch_size=16, generator=4, masks=masks
    )
    assert torch.allclose(fused, plain, atol=1e-6)


def test_chunked_fused_head_draws_from_the_same_distribution(monkeypatch, digits_model):
    """Small fused chunks (several per pass) give samples from the same distribution. Where
    every chunk's masks fill whole 64-bit draws (here: 32 channels of 2 bits a row) they are
    even the same samples; nothing depends on that."""
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    t = 800
    rows_per_chunk = []
    masked_rows = mc_dropout._MaskSampler._masked_rows

    def counted(self, p, channels, rows_n_D, buffer_n_D):
        rows_per_chunk.append(rows_n_D.shape[0])
        return masked_rows(self, p, channels, rows_n_D, buffer_n_D)

    monkeypatch.setattr(mc_dropout._MaskSampler, "_masked_rows", counted)
    whole = mc_dropout_probs(digits_model, x, t, generator=0)
    assert rows_per_chunk == [6] * t  # one chunk a pass
    rows_per_chunk.clear()
    monkeypatch.setattr(mc_dropout, "FUSED_CHUNK_ELEMENTS_CPU", 2 * 512)
    chunked = mc_dropout_probs(digits_model, x, t, generator=0)
    assert rows_per_chunk == [2] * (3 * t)  # three chunks of two rows a pass
    se = ((whole.var(0) + chunked.var(0)) / t).sqrt()
    assert ((whole.mean(0) - chunked.mean(0)).abs() <= 5 * se + 1e-4).all()
    assert torch.allclose(whole.std(0), chunked.std(0), rtol=0.2, atol=3e-3)


def test_consistent_masks_match_torch_dropout_in_distribution(digits_model):
    """Per input, consistent masks are ordinary dropout: the mean and spread over passes agree
    with torch's own dropout on the whole net, within 5 standard errors."""
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(7))
    t = 1000
    consistent = mc_dropout_probs(digits_model, x, t, generator=1, masks="consistent")
    with torch.no_grad(), inference_modes(digits_model, dropout=True), seeded_global_rng(2):
        naive = torch.stack([torch.softmax(digits_model(x), -1) for _ in range(t)])
    se = ((consistent.var(0) + naive.var(0)) / t).sqrt()
    assert ((consistent.mean(0) - naive.mean(0)).abs() <= 5 * se + 1e-4).all()
    assert torch.allclose(consistent.std(0), naive.std(0), rtol=0.2, atol=3e-3)


def test_copies_get_identical_samples_only_with_consistent_masks(digits_model, x_digits):
    """Two copies of an image are one sampled network per pass (BatchBALD's requirement):
    identical samples with consistent masks, different ones with independent masks."""
    x = torch.cat([x_digits[:10], x_digits[:10]])
    consistent = mc_dropout_probs(digits_model, x, 8, batch_size=7, generator=3, masks="consistent")
    assert torch.allclose(consistent[:, :10], consistent[:, 10:], atol=1e-6, rtol=0)
    assert consistent.std(dim=0).mean() > 1e-3
    independent = mc_dropout_probs(digits_model, x, 8, batch_size=7, generator=3)
    assert (independent[:, :10] - independent[:, 10:]).abs().amax() > 1e-2


def test_consistent_masks_do_not_depend_on_batch_size(digits_model, x_digits):
    a = mc_dropout_probs(digits_model, x_digits, 9, batch_size=40, generator=6, masks="consistent")
    b = mc_dropout_probs(digits_model, x_digits, 9, batch_size=3, generator=6, masks="consistent")
    assert torch.allclose(a, b, atol=1e-6, rtol=0)
    assert (bald(a) > 0).all()


def test_same_seed_same_samples_in_both_modes(digits_model, x_digits):
    for masks in ("independent", "consistent"):
        a = mc_dropout_probs(digits_model, x_digits, 4, generator=8, masks=masks)
        b = mc_dropout_probs(digits_model, x_digits, 4, generator=8, masks=masks)
        c = mc_dropout_probs(digits_model, x_digits, 4, generator=9, masks=masks)
        assert torch.equal(a, b) and not torch.equal(a, c)


def test_other_rates_dtypes_and_heads(x_digits):
    """A dropout rate with no exact byte threshold (0.1), a float64 model, and a head whose
    dense layers are separated from the dropout by a ReLU all give valid, varying samples."""
    mlp = build_mlp(64, 10, seed=0)
    x = x_digits.flatten(1)
    for model, inputs in ((mlp, x), (copy.deepcopy(mlp).double(), x.double())):
        for masks in ("independent", "consistent"):
            probs = mc_dropout_probs(model, inputs, 6, generator=0, masks=masks)
            assert probs.dtype == torch.float32 and torch.isfinite(probs).all()
            assert torch.allclose(probs.sum(-1), torch.ones(6, 40), atol=1e-5)
            assert probs.std(dim=0).mean() > 1e-4


def test_mask_mode_is_checked_and_any_model_is_sampled(digits_model, x_digits):
    with pytest.raises(ValueError, match="masks must be one of independent, consistent"):
        mc_dropout_probs(digits_model, x_digits, 2, masks="shared")
    nested = nn.Sequential(nn.Flatten(), nn.Sequential(nn.Linear(64, 8), nn.Dropout(0.5)))
    nested.append(nn.Linear(8, 3))
    probs = mc_dropout_probs(nested, x_digits, 3, generator=0)  # torch's dropout, independent
    assert probs.shape == (3, 40, 3)
    alpha = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.AlphaDropout(0.5), nn.Linear(8, 3))
    with pytest.raises(ValueError, match=r"AlphaDropout .*masks='independent'"):
        mc_dropout_probs(alpha, x_digits, 2, masks="consistent")


class _MapNet(nn.Module):
    """A reader's CNN: dropout modules nested anywhere, on maps and on a flat layer."""

    def __init__(self) -> None:
        super().__init__()
        with seeded_global_rng(11):
            self.body = nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU(), nn.Dropout2d(0.25))
            self.tail = nn.ModuleDict({"drop": nn.Dropout(0.5), "out": nn.Linear(6 * 36, 4)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail["out"](self.tail["drop"](self.body(x).flatten(1)))


def test_consistent_masks_on_any_model_are_one_network_per_pass(x_digits):
    """On a model the package did not build, consistent masks give copies of an input the
    same sample in each pass, do not depend on the batch size, vary across passes, and have
    the law of torch's own train()-mode dropout (means within 5 standard errors)."""
    model = _MapNet()
    x = torch.cat([x_digits[:10], x_digits[:10]])
    a = mc_dropout_probs(model, x, 6, batch_size=7, generator=3, masks="consistent")
    b = mc_dropout_probs(model, x, 6, batch_size=20, generator=3, masks="consistent")
    assert torch.allclose(a[:, :10], a[:, 10:], atol=1e-6, rtol=0)
    assert torch.allclose(a, b, atol=1e-6, rtol=0)
    assert a.std(dim=0).mean() > 1e-3
    assert model.training  # the caller's modes are restored
    t = 1500
    fast = mc_dropout_probs(model, x_digits[:4], t, generator=1, masks="consistent")
    naive = torch_dropout_probs(model, x_digits[:4], t, generator=2)
    se = ((fast.var(0) + naive.var(0)) / t).sqrt()
    assert ((fast.mean(0) - naive.mean(0)).abs() <= 5 * se + 1e-4).all()


def test_torch_dropout_probs_is_the_whole_model_path(digits_model, x_digits):
    """``torch_dropout_probs``, T whole passes with torch's dropout, is the path
    ``mc_dropout_probs`` takes for a head it cannot walk (the same samples from the same
    generator); it repeats by seed, restores the caller's modes and leaves the global RNG."""
    nested = nn.Sequential(nn.Flatten(), nn.Sequential(nn.Linear(64, 8), nn.Dropout(0.5)))
    nested.append(nn.Linear(8, 3))
    assert torch.equal(
        mc_dropout_probs(nested, x_digits, 3, generator=5),
        torch_dropout_probs(nested, x_digits, 3, generator=5),
    )
    model = copy.deepcopy(digits_model).train()
    state = torch.get_rng_state()
    probs = torch_dropout_probs(model, x_digits, 4, batch_size=7, generator=1)
    assert model.training and torch.equal(torch.get_rng_state(), state)
    assert probs.shape == (4, 40, 10)
    assert torch.allclose(probs.sum(-1), torch.ones(4, 40), atol=1e-5)
    assert probs.std(dim=0).mean() > 1e-3
    assert torch.equal(probs, torch_dropout_probs(model, x_digits, 4, batch_size=7, generator=1))
    assert torch_dropout_probs(model, x_digits[:0], 2).shape == (2, 0, 10)
    with pytest.raises(ValueError, match="n_samples"):
        torch_dropout_probs(model, x_digits, 0)
