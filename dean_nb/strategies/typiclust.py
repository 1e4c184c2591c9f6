"""``typiclust``: the most typical point of each uncovered cluster (Hacohen, Dekel and
Weinshall 2022), through scikit-activeml's own ``skactiveml.pool.TypiClust``.

TypiClust answers the cold start with typicality instead of uncertainty: cluster the labelled
and pool points together into ``L + b`` groups (k-means), keep the clusters that hold no
labelled point, and from each of the ``b`` largest take its most *typical* point, the one with
the smallest mean distance to its ``k`` nearest neighbours inside the cluster. The choice needs
no trust in the model's scores, only an embedding where distances mean something.

The algorithm is the library's (a dependency, not a re-implementation); this module supplies
the embedding and maps the library's indices back to the pool:

- ``embedding="features"``: the step model's penultimate features, as ``coreset`` takes them
  (``model.features`` or the input of its last ``nn.Linear``; or ``ctx.features_N_F`` and
  ``ctx.features_labelled_M_F`` when given);
- ``embedding="pca"``: the first ``n_components`` principal components of the flattened
  inputs, fitted on the labelled set and the pool together: model-free.

The paper's own embeddings come from self-supervised training (SimCLR), which needs more than
the labelled set and the pool; these two need nothing else. The k-means and the tie-breaks are
seeded from ``ctx.generator``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from dean_nb.strategies.base import AcquisitionContext, Selection, check_context, context_generator
from dean_nb.strategies.coreset import labelled_features, pool_features
from dean_nb.validation import check_int_range

__all__ = ["EMBEDDINGS", "TypiClustStrategy", "pca_embedding", "typiclust_indices"]

#: What ``typiclust`` clusters: the model's penultimate features, or PCA of the inputs.
EMBEDDINGS: tuple[str, ...] = ("features", "pca")


def pca_embedding(
    x_labelled: torch.Tensor | None, x_pool: torch.Tensor, n_components: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(labelled (L, D'), pool (P, D'))``: PCA of the flattened inputs, fitted on both sets,
    ``D' = min(n_components, D, L + P)``; float64."""
    from sklearn.decomposition import PCA

    pool_P_D = x_pool.detach().flatten(start_dim=1).to("cpu", torch.float64).numpy()
    n_labelled = 0 if x_labelled is None else int(x_labelled.shape[0])
    parts = [pool_P_D]
    if n_labelled:
        parts.insert(0, x_labelled.detach().flatten(start_dim=1).to("cpu", torch.float64).numpy())
    both = np.concatenate(parts)
    dims = min(n_components, both.shape[1], both.shape[0])
    reduced = PCA(n_components=dims, random_state=seed).fit_transform(both)
    return reduced[:n_labelled], reduced[n_labelled:]


def typiclust_indices(
    labelled_L_F: np.ndarray, pool_P_F: np.ndarray, budget: int, k: int, seed: int
) -> np.ndarray:
    """``(budget,)`` pool indices chosen by ``skactiveml.pool.TypiClust(k=k,
    random_state=seed)`` on the stacked embedding (labelled rows first, marked labelled)."""
    from skactiveml.pool import TypiClust

    n_labelled = labelled_L_F.shape[0]
    x_all = np.concatenate([labelled_L_F, pool_P_F]).astype(np.float64)
    y_all = np.full(x_all.shape[0], np.nan)
    y_all[:n_labelled] = 0.0  # any class: only "labelled or not" matters to the rule
    picked = TypiClust(k=k, random_state=seed).query(x_all, y_all, batch_size=budget)
    return np.asarray(picked, dtype=np.int64) - n_labelled


@dataclass(frozen=True)
class TypiClustStrategy:
    """TypiClust (Hacohen et al. 2022) via scikit-activeml: typical points of uncovered
    k-means clusters, on the model's features or on PCA of the inputs (module docstring).

    Options:
        embedding: ``"features"`` (default) or ``"pca"`` (:data:`EMBEDDINGS`).
        k: neighbours of the typicality (the paper: 20).
        n_components: dimensions of the ``pca`` embedding (at most the input's).

    ``Selection.scores`` is ``None``: the rule ranks clusters, not points.
    """

    name: ClassVar[str] = "typiclust"
    embedding: str = "features"
    k: int = 20
    n_components: int = 50

    def __post_init__(self) -> None:
        if self.embedding not in EMBEDDINGS:
            raise ValueError(
                f"embedding must be one of {', '.join(EMBEDDINGS)}; got {self.embedding!r}"
            )
        check_int_range("k", self.k, 1)
        check_int_range("n_components", self.n_components, 1)

    def select(self, ctx: AcquisitionContext) -> Selection:
        _, budget = check_context(ctx)
        seed = int(torch.randint(2**31 - 1, (1,), generator=context_generator(ctx)))
        if self.embedding == "pca":
            if ctx.x_pool is None:
                raise ValueError("typiclust with embedding='pca' needs ctx.x_pool (the inputs)")
            labelled, pool = pca_embedding(ctx.x_labelled, ctx.x_pool, self.n_components, seed)
        else:
            pool = pool_features(ctx).detach().to("cpu", torch.float64).numpy()
            features = labelled_features(ctx)
            width = pool.shape[1]
            labelled = (
                np.empty((0, width))
                if features is None
                else features.detach().to("cpu", torch.float64).numpy()
            )
        indices = typiclust_indices(labelled, pool, budget, self.k, seed)
        return Selection(indices=torch.from_numpy(indices), scores=None)
