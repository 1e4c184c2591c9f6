"""dean_nb: noisy batch active learning with deterministic annealing (DeAn).

The companion package of the dean-nb book. Gupta, Sahu and Lin, "Noisy Batch Active Learning
with Deterministic Annealing", arXiv:1909.12473.
"""

__version__ = "0.1.0"
