"""The paper's CNNs: shapes, the trunk/head split, seeded initialisation, input checks."""

import pytest
import torch
from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from dean_nb.learner.models import (
    ARCHS,
    CONV_DROPOUTS,
    ChannelDropout,
    MCDropoutNet,
    arch_for_dataset,
    build_model,
    multiply_adds,
)

# (arch, in_channels, image_size, num_classes, first dense width)
CASES = [
    ("digits", 1, 8, 10, 128),
    ("mnist", 1, 28, 10, 128),
    ("emnist", 1, 28, 47, 512),
    ("cifar10", 3, 32, 10, 128),
    ("svhn", 3, 32, 10, 128),
    ("cifar100", 3, 32, 100, 512),
]


@pytest.fixture(scope="module")
def models():
    """The element-wise networks (the ablation; the default is ``channel``)."""
    return {
        arch: build_model(arch, k, c, s, seed=0, conv_dropout="element")
        for arch, c, s, k, _ in CASES
    }


@pytest.fixture(scope="module")
def channel_models():
    return {
        arch: build_model(arch, k, c, s, seed=0, conv_dropout="channel")
        for arch, c, s, k, _ in CASES
    }


def test_cases_cover_every_architecture():
    assert {case[0] for case in CASES} == set(ARCHS)


@pytest.mark.parametrize("conv_dropout", CONV_DROPOUTS)
@pytest.mark.parametrize(("arch", "channels", "size", "classes", "width"), CASES)
def test_forward_shapes_and_split(
    models, channel_models, arch, channels, size, classes, width, conv_dropout
):
    model = (channel_models if conv_dropout == "channel" else models)[arch]
    assert isinstance(model, MCDropoutNet)
    assert model.num_classes == classes
    x = torch.randn(3, channels, size, size)
    model.eval()
    logits = model(x)
    assert logits.shape == (3, classes)
    trunk_out = model.trunk(x)
    assert trunk_out.ndim == 2 and trunk_out.shape[0] == 3
    assert torch.allclose(model.head(trunk_out), logits)
    assert not any(isinstance(m, _DropoutNd) for m in model.trunk.modules())
    first = ChannelDropout if conv_dropout == "channel" else nn.Dropout
    assert type(model.head[0]) is first
    assert isinstance(model.head[-1], nn.Linear) and model.head[-1].out_features == classes
    assert isinstance(model.first_dense, nn.Linear)
    assert model.first_dense.out_features == width
    assert any(m is model.first_dense for m in model.head.modules())
    features = model.features(x)
    assert features.shape == (3, model.head[-1].in_features)
    assert torch.allclose(model.head[-1](features), logits)


def test_default_network_is_the_authors():
    default = build_model("mnist", 10, 1, 28, seed=0)
    assert type(default.head[0]) is ChannelDropout


@pytest.mark.parametrize("network", ["element", "channel"])
def test_paper_dropout_rates_and_first_dense_input(models, channel_models, network):
    built = models if network == "element" else channel_models
    rates = {
        arch: [m.p for m in built[arch].modules() if isinstance(m, _DropoutNd)] for arch in built
    }
    assert rates["mnist"] == [0.25, 0.5]
    assert rates["emnist"] == [0.25, 0.25, 0.5]
    assert rates["cifar10"] == [0.25, 0.25, 0.25, 0.5]
    assert rates["svhn"] == [0.3, 0.3, 0.3, 0.5]
    # MNIST: two valid 4x4 convs then 2x2 pooling: 28 -> 25 -> 22 -> 11, 32 maps.
    assert built["mnist"].first_dense.in_features == 32 * 11 * 11
    # CIFAR: three "same" blocks with pooling: 32 -> 4, 128 maps.
    assert built["cifar10"].first_dense.in_features == 128 * 4 * 4


def test_dropout_is_active_only_in_training_mode(models):
    model = models["mnist"]
    x = torch.randn(4, 1, 28, 28)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.allclose(model(x), model(x))
    model.eval()


def test_same_seed_same_weights_and_global_rng_untouched():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    a = build_model("digits", 10, 1, 8, seed=3)
    assert torch.equal(torch.rand(3), expected)
    b = build_model("digits", 10, 1, 8, seed=3)
    c = build_model("digits", 10, 1, 8, seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_state_dict_holds_first_dense_once(models):
    keys = list(models["mnist"].state_dict())
    assert not any(k.startswith("first_dense") for k in keys)
    assert len(keys) == len(set(keys))


def test_non_square_and_tuple_image_size():
    model = build_model("mnist", 10, 1, (28, 32), seed=0)
    assert model(torch.randn(2, 1, 28, 32)).shape == (2, 10)


def test_arch_for_dataset():
    assert arch_for_dataset("svhn") == "svhn"
    assert arch_for_dataset("fashion-mnist") == "mnist"
    assert arch_for_dataset("cifar100") == "cifar100"
    assert arch_for_dataset("digits") == "digits"
    with pytest.raises(ValueError, match="dataset_name"):
        arch_for_dataset("imagenet")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"arch": "resnet"}, "arch"),
        ({"num_classes": 1}, "num_classes"),
        ({"in_channels": 0}, "in_channels"),
        ({"image_size": 5}, "image_size"),
        ({"image_size": (28, 28, 3)}, "image_size"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, name):
    args = {"arch": "mnist", "num_classes": 10, "in_channels": 1, "image_size": 28} | kwargs
    with pytest.raises((ValueError, TypeError), match=name):
        build_model(**args)


def test_mcdropoutnet_rejects_dropout_in_trunk():
    head = nn.Sequential(nn.Dropout(0.5), nn.Linear(4, 3))
    with pytest.raises(ValueError, match="trunk"):
        MCDropoutNet(nn.Sequential(nn.Dropout(0.1), nn.Flatten()), head, head[1], 3)
    with pytest.raises(ValueError, match="head"):
        MCDropoutNet(nn.Flatten(), nn.Sequential(nn.ReLU(), nn.Linear(4, 3)), head[1], 3)


def test_build_mlp_splits_trunk_and_head_and_is_seeded():
    from dean_nb.learner.models import build_mlp

    a, b = build_mlp(5, 3, width=16, seed=4), build_mlp(5, 3, width=16, seed=4)
    assert not any(isinstance(m, nn.Dropout) for m in a.trunk.modules())
    assert isinstance(a.head[0], nn.Dropout) and a.first_dense is a.head[1]
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert a.eval()(torch.randn(7, 5)).shape == (7, 3)
    with pytest.raises(ValueError, match="num_classes"):
        build_mlp(5, 1)


def test_multiply_adds_counts_conv_and_linear_layers():
    conv = nn.Conv2d(2, 3, kernel_size=3)  # 6x6 -> 4x4 outputs, 2*3*3 each
    assert multiply_adds(conv, torch.zeros(5, 2, 6, 6)) == 3 * 16 * 18
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 7), nn.ReLU(), nn.Linear(7, 4))
    assert multiply_adds(net, torch.zeros(9, 12)) == 12 * 7 + 7 * 4
    assert not conv._forward_hooks and not net[1]._forward_hooks  # hooks removed
    model = build_model("digits", 10, 1, 8, seed=0)
    x = torch.zeros(3, 1, 8, 8)
    trunk, total = multiply_adds(model.trunk, x), multiply_adds(model, x)
    assert 0 < trunk < total
    assert total == trunk + multiply_adds(model.head, model.trunk(x))
    with pytest.raises(ValueError, match="x"):
        multiply_adds(conv, torch.zeros(0, 2, 6, 6))


def test_channel_networks_drop_as_the_authors_code(channel_models):
    """gaurav71531/DeAn models.py: Dropout2d on every conv map (0.3 in SVHN's net), after
    pooling; element-wise dropout only on the dense layer."""

    def drops(arch):
        return [
            (type(m).__name__, m.p)
            for m in channel_models[arch].head.modules()
            if isinstance(m, _DropoutNd)
        ]

    channel = "ChannelDropout"
    assert drops("mnist") == [(channel, 0.25), ("Dropout", 0.5)]
    assert drops("digits") == [(channel, 0.25), ("Dropout", 0.5)]
    assert drops("emnist") == [(channel, 0.25), (channel, 0.25), ("Dropout", 0.5)]
    cifar = [(channel, 0.25), ("Dropout2d", 0.25), (channel, 0.25), ("Dropout", 0.5)]
    assert drops("cifar10") == cifar
    assert [p for _, p in drops("svhn")] == [0.3, 0.3, 0.3, 0.5]
    assert channel_models["emnist"].first_dense.in_features == 128 * 4 * 4
    assert channel_models["cifar10"].first_dense.in_features == 128 * 4 * 4


@pytest.mark.parametrize(("arch", "channels", "size", "classes", "width"), CASES)
def test_the_dropout_kind_leaves_the_weights_alone(
    models, channel_models, arch, channels, size, classes, width
):
    a, b = list(models[arch].parameters()), list(channel_models[arch].parameters())
    assert len(a) == len(b)
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    x = torch.randn(2, channels, size, size)
    models[arch].eval()
    channel_models[arch].eval()
    assert torch.allclose(models[arch](x), channel_models[arch](x), atol=1e-5)


def test_channel_dropout_zeroes_whole_maps_at_rate_p():
    layer = ChannelDropout(0.25, channels=32).train()
    x = torch.rand(400, 32 * 121) + 0.5  # positive, so a zero is a drop
    with torch.random.fork_rng():
        torch.manual_seed(0)
        out = layer(x).view(400, 32, 121)
    dropped = (out == 0).all(-1)
    kept = (out != 0).all(-1)
    assert torch.equal(dropped | kept, torch.ones_like(dropped))  # a map goes whole
    assert abs(dropped.float().mean().item() - 0.25) < 0.01  # 12,800 maps: sd 0.004
    assert torch.allclose(out[kept], (x.view(400, 32, 121) / 0.75)[kept])
    assert torch.equal(layer.eval()(x), x)
    with pytest.raises(ValueError, match="channels"):
        ChannelDropout(0.25, channels=0)
    with pytest.raises(ValueError, match="C = 32"):
        layer(torch.rand(3, 100))


def test_build_model_rejects_an_unknown_conv_dropout():
    with pytest.raises(ValueError, match="conv_dropout"):
        build_model("mnist", 10, 1, 28, conv_dropout="spatial")
