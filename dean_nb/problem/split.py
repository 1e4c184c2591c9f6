"""The protocol's split of a training set: initial labelled set, validation set, pool.

Chapter "Data and protocol". :func:`make_split` draws the paper's protocol from the training labels: ``initial_per_class``
labelled images per class for the initial set, a fixed validation set (used only for the model
uncertainty sigma), and the pool the strategies acquire from. The test set is the dataset's own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dean_nb.runtime import GeneratorLike, make_generator
from dean_nb.validation import check_int_range, check_label_range, check_ndim

__all__ = [
    "Split",
    "make_split",
]


@dataclass(frozen=True)
class Split:
    """Indices into ``x_train`` for the active-learning protocol; the three sets are disjoint.

    Attributes:
        initial: ``(K * initial_per_class,)`` int64, the initial labelled set, sorted.
        validation: ``(V,)`` int64, the fixed validation set (model uncertainty sigma), sorted.
        pool: ``(P,)`` int64, every other training index, sorted.
    """

    initial: torch.Tensor
    validation: torch.Tensor
    pool: torch.Tensor

    def __post_init__(self) -> None:
        for name in ("initial", "validation", "pool"):
            t = check_ndim(name, getattr(self, name), 1, "(n,)")
            if t.dtype != torch.int64:
                raise TypeError(f"{name} must be int64 indices, got {t.dtype}")
        together = torch.cat([self.initial, self.validation, self.pool])
        if torch.unique(together).numel() != together.numel():
            raise ValueError("initial, validation and pool must be pairwise disjoint index sets")


def make_split(
    y_train: torch.Tensor,
    num_classes: int,
    initial_per_class: int,
    validation_size: int,
    seed: GeneratorLike,
) -> Split:
    """Draw the initial labelled set, the validation set and the pool (the paper's protocol).

    1. initial: for each class, ``initial_per_class`` indices drawn uniformly without
       replacement among that class's training images (the authors' code: 4 per class for
       MNIST, 2 for EMNIST, 5 for SVHN/CIFAR);
    2. validation: ``validation_size`` indices drawn uniformly without replacement from the
       remaining ones (fixed for the whole run; the paper's sigma is measured on it);
    3. pool: everything else.

    All draws come from one ``torch.Generator`` built from ``seed``, so the same seed gives
    the same split on every machine; global RNG state is never touched.

    Args:
        y_train: ``(N,)`` integer labels in ``[0, num_classes)``.
        num_classes: ``K >= 1``.
        initial_per_class: ``>= 1``; every class needs at least that many images.
        validation_size: in ``[0, N - K * initial_per_class]`` (``K`` classes).
        seed: an int, a ``torch.Generator`` (consumed), or ``None`` (fresh, non-reproducible).

    Returns:
        A :class:`Split` with sorted, pairwise disjoint int64 index tensors whose union is
        ``range(N)``: ``initial (K * initial_per_class,)``, ``validation (validation_size,)``, ``pool``.
    """
    if not isinstance(y_train, torch.Tensor):
        raise TypeError(f"y_train must be a torch.Tensor, got {type(y_train).__name__}")
    check_ndim("y_train", y_train, 1, "(N,)")
    if y_train.dtype.is_floating_point or y_train.dtype.is_complex or y_train.dtype == torch.bool:
        raise TypeError(f"y_train must hold integer labels, got dtype {y_train.dtype}")
    num_classes = check_int_range("num_classes", num_classes, 1)
    initial_per_class = check_int_range("initial_per_class", initial_per_class, 1)
    labels = y_train.detach().to("cpu", torch.int64)
    n = labels.numel()
    check_label_range("y_train", labels, num_classes)
    counts = torch.bincount(labels, minlength=num_classes)
    short = (counts < initial_per_class).nonzero().flatten().tolist()
    if short:
        c = short[0]
        raise ValueError(
            f"initial_per_class={initial_per_class} but class {c} has only {int(counts[c])} "
            f"training images ({len(short)} class(es) too small); initial_per_class must lie "
            f"in [1, {int(counts.min())}]"
        )
    available = n - num_classes * initial_per_class
    validation_size = check_int_range("validation_size", validation_size, 0, available)

    generator = make_generator(seed, "cpu")
    # initial: the first initial_per_class members of each class in a uniform random order
    perm = torch.randperm(n, generator=generator)
    perm_labels = labels[perm]
    by_class = perm[torch.argsort(perm_labels, stable=True)]  # class-major, random within class
    starts = torch.cumsum(counts, 0) - counts
    offsets = torch.arange(initial_per_class)
    initial = by_class[(starts.unsqueeze(1) + offsets).flatten()]

    # validation: a uniform subset of the rest, from a fresh permutation of the remainder
    is_initial = torch.zeros(n, dtype=torch.bool)
    is_initial[initial] = True
    rest = torch.arange(n)[~is_initial]
    rest = rest[torch.randperm(rest.numel(), generator=generator)]
    validation, pool = rest[:validation_size], rest[validation_size:]
    return Split(
        initial=torch.sort(initial).values,
        validation=torch.sort(validation).values,
        pool=torch.sort(pool).values,
    )
