"""The learner: the authors' networks, MC dropout, training, and the denoising layer.

- :mod:`~dean_nb.learner.models`: the CNNs of appendix B.1 (trunk + stochastic head).
- :mod:`~dean_nb.learner.mc_dropout`: T stochastic passes, independent or consistent masks.
- :mod:`~dean_nb.learner.training`: fit from scratch, evaluate.
- :mod:`~dean_nb.learner.denoise`: the noisy-channel layer of section 4.2.
- :mod:`~dean_nb.learner.forward`: forward loss correction with an anchor-point channel estimate.
"""
