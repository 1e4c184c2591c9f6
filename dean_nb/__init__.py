"""dean_nb: noisy batch active learning with deterministic annealing (DeAn).

The companion package of the dean-nb book. Gupta, Sahu and Lin, "Noisy Batch Active Learning
with Deterministic Annealing", arXiv:1909.12473.

Tensor names carry their axes, in one order: ``K`` is the number of classes, ``N`` the pool or
data points and ``T`` the MC-dropout samples, so ``probs_T_N_K[t, n, k] = p_t(y = k | x_n)``
(batchbald_redux, whose naming style this follows, uses ``K`` for the MC samples instead).

One concept per module: ``data``, ``models``, ``oracle`` and ``noise`` (the oracle's
channels), ``mc_dropout`` (MC-dropout passes, independent or consistent masks), ``scoring``
(BALD, entropy, sigma), ``clustering`` (sqrt-JS distances, single linkage, median centroids),
``annealing`` (beta = f(sigma) and the Gibbs batch sampler), ``denoise``, ``strategies``
(interface, registry, small strategies), ``coreset``, ``batchbald``, ``badge`` and
``stochastic`` (the larger baselines), ``training``, the experiment modules, ``plots``;
``validation`` and ``runtime`` hold the checks and the devices/generators they share.
"""

__version__ = "0.1.0"
