"""``typiclust``: scikit-activeml's TypiClust on our embeddings.

Properties: the batch is the library's own on the same embedding and seed; on separated blobs
it takes one point from each blob without a labelled point, its most typical (the least mean
distance to its k nearest neighbours); the PCA embedding needs no model; bad options are refused by name.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skactiveml.pool import TypiClust

from dean_nb import strategies
from dean_nb.runtime import make_generator
from dean_nb.strategies.base import AcquisitionContext
from dean_nb.strategies.typiclust import pca_embedding


def blobs(n_blobs: int = 6, per_blob: int = 40, seed: int = 0) -> torch.Tensor:
    """``(n_blobs * per_blob, 2)`` points: tight blobs, far apart, blob by blob."""
    gen = torch.Generator().manual_seed(seed)
    centres = 100.0 * torch.arange(n_blobs, dtype=torch.float64)[:, None].repeat(1, 2)
    noise = torch.randn(n_blobs, per_blob, 2, generator=gen, dtype=torch.float64)
    return (centres[:, None, :] + noise).reshape(-1, 2)


def features_ctx(pool: torch.Tensor, labelled: torch.Tensor, budget: int, seed: int = 0):
    return AcquisitionContext(
        model=None,
        x_pool=None,
        budget=budget,
        generator=make_generator(seed),
        features_N_F=pool,
        features_labelled_M_F=labelled,
    )


def test_the_batch_is_the_librarys_own_on_the_same_embedding_and_seed():
    points = blobs()
    labelled, pool = points[:5], points[5:]
    selection = strategies.get("typiclust", k=7).select(features_ctx(pool, labelled, 4, seed=3))
    seed = int(torch.randint(2**31 - 1, (1,), generator=make_generator(3)))
    x_all = torch.cat([labelled, pool]).numpy()
    y_all = np.r_[np.zeros(5), np.full(len(pool), np.nan)]
    expected = TypiClust(k=7, random_state=seed).query(x_all, y_all, batch_size=4) - 5
    assert selection.indices.tolist() == expected.tolist()
    assert selection.indices.dtype == torch.int64 and selection.scores is None


def test_one_typical_point_from_each_uncovered_blob():
    points = blobs(n_blobs=6, per_blob=40)
    blob_of = np.repeat(np.arange(6), 40)
    labelled_rows = [0, 40]  # one labelled point in blobs 0 and 1
    pool_rows = np.setdiff1d(np.arange(len(points)), labelled_rows)
    ctx = features_ctx(points[pool_rows], points[labelled_rows], budget=4)
    picks = pool_rows[strategies.get("typiclust", k=10).select(ctx).indices.numpy()]
    assert sorted(blob_of[picks]) == [2, 3, 4, 5]  # every uncovered blob, once
    for row in picks:  # ... its most typical point: the least mean distance to 10 neighbours
        in_blob = points[pool_rows[blob_of[pool_rows] == blob_of[row]]]
        dist = torch.cdist(in_blob, in_blob).sort(dim=1).values[:, 1:11].mean(dim=1)
        assert torch.equal(in_blob[dist.argmin()], points[row])


def test_the_pca_embedding_needs_no_model_and_is_seeded():
    gen = torch.Generator().manual_seed(1)
    x_pool = torch.randn(120, 1, 8, 8, generator=gen)
    x_labelled = torch.randn(10, 1, 8, 8, generator=gen)
    strategy = strategies.get("typiclust", embedding="pca", n_components=5)

    def pick(seed: int) -> list[int]:
        ctx = AcquisitionContext(
            model=None,
            x_pool=x_pool,
            budget=6,
            generator=make_generator(seed),
            x_labelled=x_labelled,
        )
        return strategy.select(ctx).indices.tolist()

    first = pick(0)
    assert first == pick(0) and len(set(first)) == 6 and max(first) < 120
    labelled, pool = pca_embedding(x_labelled, x_pool, 5, seed=0)
    assert labelled.shape == (10, 5) and pool.shape == (120, 5)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"embedding": "simclr"}, "embedding must be one of features, pca"),
        ({"k": 0}, "k must"),
        ({"n_components": 0}, "n_components must"),
    ],
)
def test_bad_options_are_refused_by_name(options, match):
    with pytest.raises(ValueError, match=match):
        strategies.get("typiclust", **options)
