"""Acquisition strategies behind one interface, and their name registry (chapter "Baselines").

Every strategy is a small frozen dataclass that holds only its options and implements
``select(ctx) -> Selection``; the work happens in small pure functions over tensors whose
names carry their axes (``probs_T_N_K``: T stochastic passes, N points, K classes), in the
style of batchbald_redux and baal. Strategies are looked up by name::

    from dean_nb import strategies
    strategy = strategies.get("dean", beta_kind="exp", beta_scale=0.25)
    selection = strategy.select(ctx)        # ctx: AcquisitionContext
    selection.indices                       # (budget,) int64 indices into ctx.x_pool

One module per rule, each holding its algorithm and its registered class:

- :mod:`~dean_nb.strategies.base`: the interface, the registry, pool subsetting.
- :mod:`~dean_nb.strategies.select`: :func:`select_batch`, a batch from any model and pool.
- :mod:`~dean_nb.strategies.scoring`: BALD (eq. 2), entropies, variation ratio, sigma.
- :mod:`~dean_nb.strategies.simple`: ``random``, ``entropy`` (one deterministic pass),
  ``bald`` (top-b BALD of MC-dropout passes).
- :mod:`~dean_nb.strategies.coreset`: ``coreset``, k-center greedy on penultimate features
  (Sener and Savarese 2018).
- :mod:`~dean_nb.strategies.batchbald`: ``batchbald``, greedy joint mutual information
  (Kirsch et al. 2019) on consistent MC dropout.
- :mod:`~dean_nb.strategies.badge`: ``badge``, k-means++ seeding on gradient embeddings
  (Ash et al. 2020).
- :mod:`~dean_nb.strategies.clustering` and :mod:`~dean_nb.strategies.annealing`: ``dean``,
  the paper's method (sqrt-JS clustering; beta = f(sigma) and the Gibbs sampler), with
  :mod:`~dean_nb.strategies.prim` (the exact minimum spanning tree, pruned by a Hellinger
  bound) and :mod:`~dean_nb.strategies.knn_linkage` (single linkage on a kNN graph, for pools
  too large for the exact tree).
- :mod:`~dean_nb.strategies.stochastic`: ``power-bald``, ``softmax-bald``, ``power-entropy``
  (Kirsch et al. 2023).
- :mod:`~dean_nb.strategies.typiclust`: ``typiclust``, typical points of uncovered k-means
  clusters (Hacohen et al. 2022), through scikit-activeml.
- :mod:`~dean_nb.strategies.relabel`: ``relabel-majority`` and ``activelab`` (Goh and Mueller
  2023, through cleanlab), which may spend the budget on asking about labelled images again
  (``Selection.relabel``).

Returned indices are int64 tensors on the CPU; scores are float tensors ``(P,)`` on the CPU,
or ``None`` where a strategy has none. The rules are registered here, explicitly, in the order
:func:`available` lists them.
"""

from dean_nb.strategies.annealing import DeAnStrategy
from dean_nb.strategies.badge import BadgeStrategy
from dean_nb.strategies.base import (
    AcquisitionContext,
    Selection,
    Strategy,
    available,
    get,
    pool_subset_indices,
    register,
    select_from_pool,
    top_k_indices,
)
from dean_nb.strategies.batchbald import BatchBALDStrategy
from dean_nb.strategies.coreset import CoresetStrategy
from dean_nb.strategies.relabel import ActiveLabStrategy, RelabelMajorityStrategy
from dean_nb.strategies.select import select_batch, select_from_predictions
from dean_nb.strategies.simple import (
    BALDStrategy,
    EntropyStrategy,
    RandomStrategy,
    random_indices,
)
from dean_nb.strategies.stochastic import (
    PowerBALDStrategy,
    PowerEntropyStrategy,
    SoftmaxBALDStrategy,
)
from dean_nb.strategies.typiclust import TypiClustStrategy

__all__ = [
    "AcquisitionContext",
    "ActiveLabStrategy",
    "BALDStrategy",
    "BadgeStrategy",
    "BatchBALDStrategy",
    "CoresetStrategy",
    "DeAnStrategy",
    "EntropyStrategy",
    "PowerBALDStrategy",
    "PowerEntropyStrategy",
    "RandomStrategy",
    "RelabelMajorityStrategy",
    "Selection",
    "SoftmaxBALDStrategy",
    "Strategy",
    "TypiClustStrategy",
    "available",
    "get",
    "pool_subset_indices",
    "random_indices",
    "register",
    "select_batch",
    "select_from_pool",
    "select_from_predictions",
    "top_k_indices",
]

for _strategy in (
    RandomStrategy,
    EntropyStrategy,
    BALDStrategy,
    CoresetStrategy,
    BatchBALDStrategy,
    BadgeStrategy,
    DeAnStrategy,
    PowerBALDStrategy,
    SoftmaxBALDStrategy,
    PowerEntropyStrategy,
    TypiClustStrategy,
    RelabelMajorityStrategy,
    ActiveLabStrategy,
):
    register(_strategy)
