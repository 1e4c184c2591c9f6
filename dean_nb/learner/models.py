"""The paper's CNNs (appendix B.1) split into a deterministic trunk and a stochastic head.

Chapter "Models and MC dropout". Every network here is an :class:`MCDropoutNet`:

* ``trunk``: every layer before the first dropout. It is deterministic (no dropout, no
  batch norm), so for T Monte-Carlo dropout passes it needs to run only once per input; its
  output is flat, ``(N, D)``.
* ``head``: starts with ``nn.Dropout`` and ends with the final ``nn.Linear`` that gives the
  logits ``(N, K)``. All randomness of MC dropout lives here.

``forward(x) = head(trunk(x))``, so the split changes nothing about what the network computes;
:func:`dean_nb.learner.mc_dropout.mc_dropout_probs` uses it to run the trunk once and the head T times.

Architectures (``arch``), after appendix B.1 of Gupta, Sahu and Lin (arXiv:1909.12473):

* ``"mnist"`` (also Fashion-MNIST): Conv 32@4x4, ReLU, Conv 32@4x4, ReLU, MaxPool 2,
  Dropout .25, Dense 128, ReLU, Dropout .5, Dense K. The paper's text puts the dropout before
  the pooling; the authors' code (Gal et al.'s Keras MNIST model) pools first, which we follow:
  the trunk then holds both convolutions.
* ``"emnist"`` (47 classes): Conv 32@4x4, ReLU, Conv 64@4x4, ReLU, MaxPool 2, Dropout .25,
  Conv 128@4x4, ReLU, MaxPool 2, Dropout .25, Dense 512, ReLU, Dropout .5, Dense K.
* ``"cifar10"``: three blocks [Conv, ReLU, Conv, ReLU, MaxPool 2, Dropout .25] with 32, 64,
  128 filters of 3x3 ("same" padding, as in Keras' CIFAR-10 example; with "valid" padding a
  32x32 image would shrink to nothing), then Dense 128, ReLU, Dropout .5, Dense K.
* ``"svhn"``: as ``"cifar10"`` with conv dropout .3 (the authors' ``SVHN_NN_SimpleNext``).
* ``"cifar100"``: as ``"cifar10"`` with Dense 512.
* ``"digits"``: a small net for scikit-learn's 8x8 digits (the book's CPU preset): Conv
  16@3x3, ReLU, Conv 32@3x3, ReLU (both "same"), MaxPool 2, Dropout .25, Dense 128, ReLU,
  Dropout .5, Dense K.

**How the conv maps are dropped** (``conv_dropout``). The authors' code
(gaurav71531/DeAn, ``models.py``) puts ``nn.Dropout2d`` on every convolutional map: a whole
feature map is zeroed at once, for every image and pass. That is ``"channel"``, the default;
the dense layer's dropout (.5) is element-wise in both. ``"element"`` drops single
activations of the maps (``nn.Dropout``), as this package did before it followed the code;
it is kept, with its exact layer order (dropout before pooling in EMNIST and CIFAR, as the
paper's text has it), for the ablation of chapter 6 and to re-make the earlier records. A
channel dropout commutes with max pooling (a zeroed map pools to zero, a kept one is only
rescaled), so pooling first changes nothing but the cost.

The first channel dropout acts on the trunk's flat output: :class:`ChannelDropout` zeroes
whole blocks of ``H * W`` features of the flattened ``(N, C, H, W)`` map, exactly
``nn.Dropout2d`` before ``nn.Flatten``. Convolutions use "valid" padding (Keras' default)
unless said otherwise. Dropout rates, filter counts and dense widths are the authors' code's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.modules.dropout import _DropoutNd

from dean_nb.runtime import derive_seed, make_generator, seeded_global_rng
from dean_nb.validation import check_int_range, import_callable

__all__ = [
    "ARCHS",
    "CONV_DROPOUTS",
    "ChannelDropout",
    "MCDropoutNet",
    "arch_for_dataset",
    "build_mlp",
    "build_model",
    "default_model",
    "model_from_path",
    "multiply_adds",
]

ARCHS: tuple[str, ...] = ("digits", "mnist", "emnist", "cifar10", "svhn", "cifar100")

#: How convolutional maps are dropped: whole maps (the authors' ``nn.Dropout2d``; the
#: default) or single activations (the earlier networks of this package).
CONV_DROPOUTS: tuple[str, ...] = ("channel", "element")

_ARCH_FOR_DATASET: dict[str, str] = {
    "digits": "digits",
    "mnist": "mnist",
    "fashion-mnist": "mnist",
    "emnist": "emnist",
    "svhn": "svhn",
    "cifar10": "cifar10",
    "cifar100": "cifar100",
}


class ChannelDropout(_DropoutNd):
    """``nn.Dropout2d`` on a flattened map: zeroes whole channels of ``(N, C * L)`` features.

    The input is an ``(N, C, H, W)`` map flattened channel-major by ``nn.Flatten``, so channel
    ``c`` is the contiguous block ``[c L, (c + 1) L)`` with ``L = H W``. In training mode each
    ``(n, c)`` block is zeroed with probability ``p`` and the rest scaled by ``1 / (1 - p)``,
    independently; the same law as ``nn.Dropout2d(p)`` on the unflattened map.

    Args:
        p: drop probability in [0, 1].
        channels: C; the feature count must be a multiple of it.
    """

    def __init__(self, p: float, channels: int) -> None:
        super().__init__(p)
        self.channels = check_int_range("channels", channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C * L)`` to ``(N, C * L)``."""
        if x.ndim != 2 or x.shape[1] % self.channels:
            raise ValueError(
                f"ChannelDropout expects (N, C * L) features with C = {self.channels}, "
                f"got shape {tuple(x.shape)}"
            )
        grouped = x.reshape(x.shape[0], self.channels, -1)
        return F.dropout1d(grouped, self.p, self.training).reshape(x.shape)

    def extra_repr(self) -> str:
        return f"p={self.p}, channels={self.channels}"


class MCDropoutNet(nn.Module):
    """A classifier split as ``logits = head(trunk(x))`` for cheap MC dropout.

    Args:
        trunk: deterministic layers mapping ``(N, C, H, W)`` to flat features ``(N, D)``;
            must contain no dropout.
        head: ``nn.Sequential`` whose first layer is an ``nn.Dropout`` or a
            :class:`ChannelDropout` and whose last layer is the ``nn.Linear`` giving the
            logits ``(N, K)``.
        first_dense: the dense layer that receives the paper's weight decay (it must be a
            submodule of ``head`` or ``trunk``; it is looked up by name, so it is stored once
            in ``state_dict``).
        num_classes: K.
        arch: name of the architecture, for ``repr`` and for rebuilding the same model.
    """

    def __init__(
        self,
        trunk: nn.Module,
        head: nn.Sequential,
        first_dense: nn.Linear,
        num_classes: int,
        arch: str = "custom",
    ) -> None:
        super().__init__()
        check_int_range("num_classes", num_classes, 2)
        if not isinstance(head, nn.Sequential) or len(head) < 2:
            raise TypeError("head must be an nn.Sequential of at least two layers")
        if not isinstance(head[0], nn.Dropout | ChannelDropout):
            raise ValueError(
                f"head must start with nn.Dropout or ChannelDropout, got {type(head[0]).__name__}"
            )
        if not isinstance(head[-1], nn.Linear) or head[-1].out_features != num_classes:
            raise ValueError("head must end with an nn.Linear with num_classes outputs")
        if any(isinstance(m, nn.modules.dropout._DropoutNd) for m in trunk.modules()):
            raise ValueError("trunk must be deterministic: it contains a dropout layer")
        self.trunk = trunk
        self.head = head
        self.num_classes = int(num_classes)
        self.arch = arch
        names = [name for name, module in self.named_modules() if module is first_dense]
        if not names or not isinstance(first_dense, nn.Linear):
            raise ValueError("first_dense must be an nn.Linear inside trunk or head")
        self._first_dense_name = names[0]

    @property
    def first_dense(self) -> nn.Linear:
        """The first dense layer: the only one with weight decay (appendix B.1, authors' code)."""
        return self.get_submodule(self._first_dense_name)  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, H, W)`` to logits ``(N, K)``."""
        return self.head(self.trunk(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations ``(N, F)``: the input of the final ``nn.Linear``.

        Dropout layers act as the current mode says (off in ``eval()``). Used by the coreset
        baseline (k-center greedy on these features).
        """
        h = self.trunk(x)
        for layer in list(self.head)[:-1]:
            h = layer(h)
        return h

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, num_classes={self.num_classes}"


def arch_for_dataset(dataset_name: str) -> str:
    """The architecture the authors use for a data set (Fashion-MNIST -> mnist)."""
    key = str(dataset_name).lower()
    if key not in _ARCH_FOR_DATASET:
        allowed = ", ".join(_ARCH_FOR_DATASET)
        raise ValueError(f"dataset_name must be one of {allowed}; got {dataset_name!r}")
    return _ARCH_FOR_DATASET[key]


def _image_hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    if not isinstance(image_size, tuple | list):
        size = check_int_range("image_size", image_size, 1)  # type: ignore[arg-type]
        return size, size
    sizes = tuple(image_size)
    if len(sizes) != 2:
        raise ValueError(f"image_size must be an int or a pair (H, W), got {image_size!r}")
    return (
        check_int_range("image_size[0]", sizes[0], 1),
        check_int_range("image_size[1]", sizes[1], 1),
    )


def _out_shape(layers: nn.Module, in_shape: tuple[int, ...], arch: str) -> tuple[int, ...]:
    """Per-sample output shape of ``layers`` on an input of per-sample shape ``in_shape``."""
    was_training = layers.training
    layers.eval()  # no dropout draws while probing shapes
    try:
        with torch.no_grad():
            out = layers(torch.zeros((1, *in_shape)))
    except RuntimeError as err:
        raise ValueError(
            f"image_size {in_shape[1:]} is too small for the {arch!r} architecture ({err})"
        ) from None
    finally:
        layers.train(was_training)
    if out.numel() == 0:
        raise ValueError(f"image_size {in_shape[1:]} is too small for the {arch!r} architecture")
    return tuple(out.shape[1:])


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _dense_head(
    pre: list[nn.Module], in_features: int, hidden: int, num_classes: int, first: nn.Module
) -> tuple[nn.Sequential, nn.Linear]:
    """``[first, *pre, Dense hidden, ReLU, Dropout .5, Dense K]``; ``pre`` ends flat."""
    first_dense = nn.Linear(in_features, hidden)
    head = nn.Sequential(
        first,
        *pre,
        first_dense,
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(hidden, num_classes),
    )
    return head, first_dense


def _first_dropout(p: float, channels: int, conv_dropout: str) -> nn.Module:
    """The head's first layer, on the trunk's flat map of ``channels`` maps."""
    return ChannelDropout(p, channels) if conv_dropout == "channel" else nn.Dropout(p)


def _build_small(
    arch: str,
    num_classes: int,
    in_channels: int,
    hw: tuple[int, int],
    convs: tuple[int, int],
    kernel: int,
    padding: int,
    hidden: int,
    conv_dropout: str,
) -> MCDropoutNet:
    """MNIST-style net: Conv, ReLU, Conv, ReLU, MaxPool | Dropout .25, Dense, ReLU, Dropout .5, Dense."""
    trunk = nn.Sequential(
        nn.Conv2d(in_channels, convs[0], kernel, padding=padding),
        nn.ReLU(),
        nn.Conv2d(convs[0], convs[1], kernel, padding=padding),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
    )
    (dim,) = _out_shape(trunk, (in_channels, *hw), arch)
    first = _first_dropout(0.25, convs[1], conv_dropout)
    head, first_dense = _dense_head([], dim, hidden, num_classes, first)
    return MCDropoutNet(trunk, head, first_dense, num_classes, arch)


def _build_emnist(
    num_classes: int, in_channels: int, hw: tuple[int, int], conv_dropout: str
) -> MCDropoutNet:
    convs = nn.Sequential(
        nn.Conv2d(in_channels, 32, 4),
        nn.ReLU(),
        nn.Conv2d(32, 64, 4),
        nn.ReLU(),
    )
    if conv_dropout == "element":  # the paper's text: dropout before pooling
        map_shape = _out_shape(convs, (in_channels, *hw), "emnist")
        trunk = nn.Sequential(*convs, nn.Flatten())
        middle = [nn.Unflatten(1, map_shape), nn.MaxPool2d(2), nn.Conv2d(64, 128, 4)]
        middle += [nn.ReLU(), nn.Dropout(0.25), nn.MaxPool2d(2), nn.Flatten()]
    else:  # the authors' code: pool, then drop whole maps
        pooled = nn.Sequential(*convs, nn.MaxPool2d(2))
        map_shape = _out_shape(pooled, (in_channels, *hw), "emnist")
        trunk = nn.Sequential(*pooled, nn.Flatten())
        middle = [nn.Unflatten(1, map_shape), nn.Conv2d(64, 128, 4), nn.ReLU()]
        middle += [nn.MaxPool2d(2), nn.Flatten(), ChannelDropout(0.25, 128)]
    (dim,) = _out_shape(nn.Sequential(*middle), (_numel(map_shape),), "emnist")
    first = _first_dropout(0.25, 64, conv_dropout)
    head, first_dense = _dense_head(middle, dim, 512, num_classes, first)
    return MCDropoutNet(trunk, head, first_dense, num_classes, "emnist")


def _conv_pair(c_in: int, c_out: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.ReLU(),
    ]


def _cifar_middle(map_shape: tuple[int, ...], p: float, conv_dropout: str) -> list[nn.Module]:
    """The layers between the first dropout and the dense layer (blocks 2 and 3)."""
    if conv_dropout == "element":  # the paper's text: dropout before pooling
        return [
            nn.Unflatten(1, map_shape),
            nn.MaxPool2d(2),
            *_conv_pair(32, 64),
            nn.Dropout(p),
            nn.MaxPool2d(2),
            *_conv_pair(64, 128),
            nn.Dropout(p),
            nn.MaxPool2d(2),
            nn.Flatten(),
        ]
    return [
        nn.Unflatten(1, map_shape),
        *_conv_pair(32, 64),
        nn.MaxPool2d(2),
        nn.Dropout2d(p),
        *_conv_pair(64, 128),
        nn.MaxPool2d(2),
        nn.Flatten(),
        ChannelDropout(p, 128),
    ]


def _build_cifar(
    arch: str,
    num_classes: int,
    in_channels: int,
    hw: tuple[int, int],
    hidden: int,
    p: float,
    conv_dropout: str,
) -> MCDropoutNet:
    first = nn.Sequential(*_conv_pair(in_channels, 32))
    if conv_dropout == "channel":  # the authors' code pools before it drops
        first.append(nn.MaxPool2d(2))
    map_shape = _out_shape(first, (in_channels, *hw), arch)
    trunk = nn.Sequential(*first, nn.Flatten())
    middle = _cifar_middle(map_shape, p, conv_dropout)
    (dim,) = _out_shape(nn.Sequential(*middle), (_numel(map_shape),), arch)
    head, first_dense = _dense_head(
        middle, dim, hidden, num_classes, _first_dropout(p, 32, conv_dropout)
    )
    return MCDropoutNet(trunk, head, first_dense, num_classes, arch)


def _keras_init_(model: nn.Module) -> None:
    """Glorot-uniform weights and zero biases for every conv and dense layer (Keras' defaults,
    which the authors' code used), instead of torch's Kaiming-uniform default."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def build_model(
    arch: str,
    num_classes: int,
    in_channels: int,
    image_size: int | Sequence[int],
    seed: int | None = None,
    conv_dropout: str = "channel",
) -> MCDropoutNet:
    """Build one of the paper's CNNs (appendix B.1), freshly initialised, on the CPU.

    Args:
        arch: one of :data:`ARCHS` (see the module docstring; :func:`arch_for_dataset` maps a
            data set name to its architecture).
        num_classes: K >= 2, the number of logits.
        in_channels: C of the input images ``(N, C, H, W)``.
        image_size: H = W as an int, or ``(H, W)``.
        seed: initialisation seed; the same seed gives identical weights. ``None`` draws a
            fresh seed. The caller's global RNG state is never touched. Weights are
            Glorot-uniform and biases zero, as in the authors' Keras code.
        conv_dropout: ``"channel"`` (whole maps, the authors' code) or ``"element"``; see
            :data:`CONV_DROPOUTS` and the module docstring.

    Returns:
        An :class:`MCDropoutNet` in training mode on the CPU (move it with ``.to(device)``).
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}; got {arch!r}")
    num_classes = check_int_range("num_classes", num_classes, 2)
    in_channels = check_int_range("in_channels", in_channels, 1)
    hw = _image_hw(image_size)
    if conv_dropout not in CONV_DROPOUTS:
        allowed = ", ".join(CONV_DROPOUTS)
        raise ValueError(f"conv_dropout must be one of {allowed}; got {conv_dropout!r}")
    if seed is None:
        seed = derive_seed(make_generator(None))
    with seeded_global_rng(int(seed), device="cpu"):
        drop = conv_dropout
        if arch == "digits":
            model = _build_small(arch, num_classes, in_channels, hw, (16, 32), 3, 1, 128, drop)
        elif arch == "mnist":
            model = _build_small(arch, num_classes, in_channels, hw, (32, 32), 4, 0, 128, drop)
        elif arch == "emnist":
            model = _build_emnist(num_classes, in_channels, hw, drop)
        else:
            hidden = 512 if arch == "cifar100" else 128
            p = 0.3 if arch == "svhn" else 0.25
            model = _build_cifar(arch, num_classes, in_channels, hw, hidden, p, drop)
        _keras_init_(model)
    return model


def build_mlp(in_features: int, num_classes: int, width: int = 128, seed: int = 0) -> MCDropoutNet:
    """A two-hidden-layer dropout MLP for flat features ``(N, in_features)``.

    For synthetic or tabular data (the denoising tests and ``benchmarks/denoise_study.py``):
    trunk ``Linear, ReLU``; head ``Dropout(0.1), Linear (first_dense), ReLU, Dropout(0.1),
    Linear``. PyTorch's default initialisation under ``seed``; the caller's RNG is untouched.
    """
    in_features = check_int_range("in_features", in_features, 1)
    num_classes = check_int_range("num_classes", num_classes, 2)
    width = check_int_range("width", width, 1)
    with seeded_global_rng(int(seed), device="cpu"):
        first_dense = nn.Linear(width, width)
        trunk = nn.Sequential(nn.Linear(in_features, width), nn.ReLU())
        head = nn.Sequential(
            nn.Dropout(0.1), first_dense, nn.ReLU(), nn.Dropout(0.1), nn.Linear(width, num_classes)
        )
        return MCDropoutNet(trunk, head, first_dense, num_classes, "mlp")


def model_from_path(
    path: str, num_classes: int, input_shape: Sequence[int], seed: int
) -> nn.Module:
    """The model that the factory at the import path ``package.module:function`` builds.

    The factory is called as ``factory(num_classes, input_shape, seed)`` (``input_shape``:
    the shape of one item, a tuple such as ``(C, H, W)`` or ``(D,)``) with torch's global RNG
    seeded by ``seed`` (the caller's state is restored), so a factory that ignores ``seed``
    is still reproducible. It must return an ``nn.Module`` that maps a batch ``(N,
    *input_shape)`` to logits ``(N, K)``.

    Raises:
        ValueError: naming ``model``, the path and the cause: not an import path, a module
            that does not import, no such function, a call that raises, or no ``nn.Module``.
    """
    factory = import_callable("model", path)
    shape = tuple(int(n) for n in input_shape)
    with seeded_global_rng(int(seed), device="cpu"):
        try:
            model = factory(int(num_classes), shape, int(seed))
        except Exception as err:
            raise ValueError(
                f"model {path!r}: factory(num_classes={num_classes}, input_shape={shape}, "
                f"seed=...) raised {type(err).__name__}: {err}"
            ) from err
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"model {path!r} must return an nn.Module (factory(num_classes, input_shape, "
            f"seed)); it returned a {type(model).__name__}"
        )
    return model


def default_model(
    num_classes: int, input_shape: Sequence[int], seed: int, conv_dropout: str = "channel"
) -> MCDropoutNet:
    """The network for a data set of one's own when no model is named: :func:`build_mlp` for
    feature vectors ``(D,)``, the ``digits`` CNN (:func:`build_model`) for images ``(C, H, W)``.

    Raises:
        ValueError: items of another rank (name a model for them).
    """
    shape = tuple(int(n) for n in input_shape)
    if len(shape) == 1:
        return build_mlp(shape[0], num_classes, seed=seed)
    if len(shape) == 3:
        return build_model("digits", num_classes, shape[0], shape[1:], seed, conv_dropout)
    raise ValueError(
        f"no built-in model for items of shape {shape} (only (D,) and (C, H, W)): name a "
        "model, 'package.module:function' with function(num_classes, input_shape, seed)"
    )


def multiply_adds(module: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of the ``Conv2d`` and ``Linear`` layers of ``module`` for one input.

    Runs ``module`` once, without gradients, on ``x[:1]`` (``x`` is ``(N, ...)``, moved to the
    module's device) with forward hooks that count ``weight[0].numel()`` (``in_channels /
    groups * kh * kw``, or ``in_features``) per output element. Biases, activations and
    pooling are not counted. Chapter 2 compares a model's trunk with the whole network.
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 1 or x.shape[0] == 0:
        raise ValueError("x must be a tensor (N, ...) with N >= 1")
    counts: list[int] = []

    def hook(layer: nn.Module, _inputs, output: torch.Tensor) -> None:
        counts.append(layer.weight[0].numel() * output[0].numel())

    layers = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    handles = [m.register_forward_hook(hook) for m in layers]
    parameter = next(module.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    try:
        with torch.no_grad():
            module(x[:1].to(device))
    finally:
        for handle in handles:
            handle.remove()
    return sum(counts)
