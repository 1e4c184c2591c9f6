"""The setting of chapter 1: data sets, the protocol's split, the noisy oracle and its channel.

- :mod:`~dean_nb.problem.datasets`: the built-in loaders (``digits`` embedded, Fashion-MNIST
  from Debian's package, the paper's data sets from a ``root``).
- :mod:`~dean_nb.problem.split`: initial labelled set, validation set and pool.
- :mod:`~dean_nb.problem.oracle`: channels (K-SC eq. 1, pair-flip, any column-stochastic
  matrix) and the noisy oracle.
- :mod:`~dean_nb.problem.noise`: a run's channel spec (names, files, digests).
"""
