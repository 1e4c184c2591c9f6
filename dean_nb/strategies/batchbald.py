"""BatchBALD: greedy joint mutual information of a batch (Kirsch, van Amersfoort & Gal 2019;
chapter "Baselines").

For a batch ``y_1..y_n`` of labels and T weight samples ``w_t`` (consistent MC-dropout passes),
``a_BatchBALD = H(y_1..y_n) - sum_i E_w H(y_i | w)``, maximised greedily one point at a time
(:func:`batchbald_indices`), with the joint entropy exact over the ``K^n`` label configurations
while they are few and estimated from sampled configurations beyond. Pure functions over
tensors whose names carry their axes: ``T`` passes, ``N`` candidates, ``B`` batch points,
``K`` classes, ``C`` configurations (all of them), ``M`` sampled configurations. (batchbald_redux
calls the MC samples ``K``; here ``K`` is always the number of classes.)

:class:`dean_nb.strategies.batchbald.BatchBALDStrategy` wraps them behind the strategy interface and
registers them as ``"batchbald"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from dean_nb.runtime import make_generator
from dean_nb.strategies import scoring
from dean_nb.strategies.base import (
    AcquisitionContext,
    Selection,
    check_context,
    compute_device,
    context_generator,
    pool_mc_probs,
    top_k_indices,
)
from dean_nb.validation import check_budget, check_int_range, check_ndim

__all__ = [
    "batch_mutual_information",
    "batchbald_indices",
    "conditional_entropies",
    "exact_log_config_probs",
    "joint_entropies_with_candidates",
    "joint_entropy_exact",
    "joint_entropy_sampled",
    "sample_configurations",
    "sampled_log_config_probs",
]

#
# For a batch y_1..y_n of labels and T weight samples w_t (MC-dropout passes),
#   a_BatchBALD = H(y_1..y_n) - sum_i E_w H(y_i | w).
# The second (conditional) term is a sum of per-point terms and is exact. The joint entropy
# needs p(y_1..y_n) = mean_t prod_i p_t(y_i) for every configuration: K^n of them. We keep the
# per-pass log-probabilities of the configurations of the current batch, ``log_config_T_C``,
# and score every candidate j by enumerating its K labels on top:
#   p(c, k) = mean_t exp(log_config_T_C[t, c]) p_t(j, k).
# Exact: H = -sum_c sum_k p(c, k) log p(c, k) over all K^(n-1) configurations c.
# Sampled: configurations c_1..c_M are drawn from the batch's joint q(c) = mean_t prod p_t, and
#   H ~= -(1/M) sum_m sum_k p(c_m, k) / q(c_m) log p(c_m, k)   (importance weights p/q).
# To avoid underflow of long products, every configuration is rescaled by its largest
# per-pass probability, s_c = max_t, which cancels in p/q and is added back inside the log.


def exact_log_config_probs(probs_T_B_K: torch.Tensor) -> torch.Tensor:
    """``(T, K^B)`` log ``prod_i p_t(y_i)`` for every configuration ``(y_1..y_B)``.

    Configurations are ordered lexicographically (the first point varies slowest). ``B = 0``
    gives the single empty configuration, ``(T, 1)`` zeros. Float64.
    """
    check_ndim("probs_T_B_K", probs_T_B_K, 3, "(T, B, K)")
    log_p_T_B_K = probs_T_B_K.to(torch.float64).log()
    n_passes = probs_T_B_K.shape[0]
    log_config_T_C = torch.zeros(n_passes, 1, dtype=torch.float64, device=probs_T_B_K.device)
    for i in range(probs_T_B_K.shape[1]):
        log_config_T_C = (log_config_T_C[:, :, None] + log_p_T_B_K[:, i, None, :]).reshape(
            n_passes, -1
        )
    return log_config_T_C


def sample_configurations(
    probs_T_B_K: torch.Tensor, n_samples: int, generator: torch.Generator
) -> torch.Tensor:
    """``(M, B)`` label configurations drawn from the joint ``mean_t prod_i p_t(y_i)``.

    The joint is a uniform mixture over passes of product distributions, so the draw is
    stratified over the passes, as batchbald_redux's: ``M // T`` samples from every pass ``t``
    (plus ``M mod T`` from passes drawn without replacement), each with every
    ``y_i ~ p_t(y_i)`` independently. The mixture's weights are unchanged, so the importance
    weights of :func:`joint_entropies_with_candidates` still apply, with less variance than
    passes drawn at random. A class that its pass gives probability 0 is never drawn, even
    where the pass's row sums to a hair below 1. Uniforms come from ``generator`` on its own
    device, so a CPU generator serves CUDA inputs.
    """
    check_ndim("probs_T_B_K", probs_T_B_K, 3, "(T, B, K)")
    n_samples = check_int_range("n_samples", n_samples, 1)
    n_passes, n_points, n_classes = probs_T_B_K.shape
    device = probs_T_B_K.device
    per_pass, extra = divmod(n_samples, n_passes)
    t_M = torch.cat(
        [
            torch.arange(n_passes, device=generator.device).repeat_interleave(per_pass),
            torch.randperm(n_passes, generator=generator, device=generator.device)[:extra],
        ]
    )
    u_M_B = torch.rand(
        n_samples, n_points, generator=generator, device=generator.device, dtype=torch.float64
    )
    probs_M_B_K = probs_T_B_K.to(torch.float64)[t_M.to(device)]
    cdf_M_B_K = probs_M_B_K.cumsum(dim=-1)
    configs_M_B = torch.searchsorted(cdf_M_B_K, u_M_B.to(device)[..., None], right=True)
    # a uniform above a cumulative sum a hair below 1 falls past the last class: it goes to
    # the last class of positive probability (never to one its pass cannot draw)
    last_positive_M_B = n_classes - 1 - (probs_M_B_K > 0).flip(-1).to(torch.int8).argmax(-1)
    return torch.minimum(configs_M_B.squeeze(-1), last_positive_M_B)


def sampled_log_config_probs(probs_T_B_K: torch.Tensor, configs_M_B: torch.Tensor) -> torch.Tensor:
    """``(T, M)`` log ``prod_i p_t(y_i)`` for the given configurations ``(M, B)``. Float64."""
    check_ndim("probs_T_B_K", probs_T_B_K, 3, "(T, B, K)")
    check_ndim("configs_M_B", configs_M_B, 2, "(M, B)")
    log_p_T_B_K = probs_T_B_K.to(torch.float64).log()
    n_passes = probs_T_B_K.shape[0]
    index_T_B_M = configs_M_B.T.to(probs_T_B_K.device)[None].expand(n_passes, -1, -1)
    return torch.gather(log_p_T_B_K, 2, index_T_B_M).sum(dim=1)


def joint_entropies_with_candidates(
    log_config_T_C: torch.Tensor,
    probs_T_N_K: torch.Tensor,
    *,
    sampled: bool,
    max_elements: int = 2**21,
) -> torch.Tensor:
    """``(N,)`` joint entropy ``H(y_batch, y_j)`` for every candidate ``j``, in nats, float64.

    Args:
        log_config_T_C: per-pass log-probabilities of the batch's configurations, from
            :func:`exact_log_config_probs` (``sampled=False``: all ``K^B`` configurations) or
            :func:`sampled_log_config_probs` (``sampled=True``: ``M`` configurations drawn
            from the batch's joint by :func:`sample_configurations`).
        probs_T_N_K: candidates' per-pass class probabilities.
        max_elements: bound on the ``(C, n, K)`` block held at once (candidates are chunked;
            the default keeps a float64 block within a large cache). The values do not depend
            on it.

    With ``a[c, n, k] = mean_t w[t, c] p_t(y_n = k)``, ``w = p_t(c) / exp(s_c)`` rescaled by
    each configuration's largest per-pass probability, ``p(c, k) log p(c, k)`` is
    ``exp(s_c) (a s_c + a log a)``. The ``a s_c`` part sums over ``k`` to ``q_c s_c``, the same
    for every candidate, so it is added once; each candidate's block costs one matrix product
    ``(C, T) @ (T, n K)`` and one ``xlogy``.
    """
    check_ndim("log_config_T_C", log_config_T_C, 2, "(T, C)")
    check_ndim("probs_T_N_K", probs_T_N_K, 3, "(T, N, K)")
    if log_config_T_C.shape[0] != probs_T_N_K.shape[0]:
        raise ValueError(
            f"log_config_T_C and probs_T_N_K must share the pass axis T, got "
            f"{log_config_T_C.shape[0]} and {probs_T_N_K.shape[0]}"
        )
    n_passes, n_configs = log_config_T_C.shape
    _, n_cand, n_classes = probs_T_N_K.shape
    log_config_T_C = log_config_T_C.to(torch.float64)
    device = log_config_T_C.device
    probs_T_NK = probs_T_N_K.to(device=device, dtype=torch.float64).reshape(n_passes, -1)

    # rescale each configuration by its largest per-pass probability (s_c); impossible
    # configurations (all passes -inf) get weight 0 and never produce inf - inf
    s_C = log_config_T_C.max(dim=0).values
    possible_C = torch.isfinite(s_C)
    s_C = torch.where(possible_C, s_C, torch.zeros_like(s_C))
    w_T_C = torch.where(possible_C, torch.exp(log_config_T_C - s_C), 0.0)
    q_C = w_T_C.mean(dim=0)  # q(c) / exp(s_c); >= 1/T for sampled configurations
    if sampled:
        weight_C = torch.where(possible_C, 1.0 / (n_configs * q_C.clamp_min(1e-300)), 0.0)
    else:
        weight_C = torch.where(possible_C, torch.exp(s_C), torch.zeros_like(s_C))
    shared = -(weight_C * s_C * q_C).sum()  # the a s_c part, summed over k: every candidate's

    w_C_T = (w_T_C.T / n_passes).contiguous()
    chunk = max(1, max_elements // max(1, n_configs * n_classes))
    out_N = torch.empty(n_cand, dtype=torch.float64, device=device)
    for start in range(0, n_cand, chunk):
        stop = min(n_cand, start + chunk)
        a_C_nK = w_C_T @ probs_T_NK[:, start * n_classes : stop * n_classes]
        alog_C_n = torch.xlogy(a_C_nK, a_C_nK).view(n_configs, stop - start, n_classes).sum(2)
        out_N[start:stop] = -(weight_C @ alog_C_n)
    return out_N + shared


def joint_entropy_exact(probs_T_B_K: torch.Tensor) -> torch.Tensor:
    """Exact joint entropy ``H(y_1..y_B)`` (nats, float64 scalar) of ``B >= 1`` points whose
    joint is ``mean_t prod_i p_t(y_i)``, by enumerating all ``K^B`` configurations.
    """
    check_ndim("probs_T_B_K", probs_T_B_K, 3, "(T, B, K)")
    if probs_T_B_K.shape[1] < 1:
        raise ValueError("probs_T_B_K must hold at least one point (B >= 1)")
    log_config_T_C = exact_log_config_probs(probs_T_B_K[:, :-1])
    return joint_entropies_with_candidates(log_config_T_C, probs_T_B_K[:, -1:], sampled=False)[0]


def joint_entropy_sampled(
    probs_T_B_K: torch.Tensor, n_samples: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Monte-Carlo joint entropy ``H(y_1..y_B)`` (nats, float64 scalar): ``n_samples``
    configurations of the first ``B - 1`` points drawn from their joint, the last point's
    ``K`` labels enumerated (the estimator BatchBALD uses once ``K^B`` is too large).
    """
    check_ndim("probs_T_B_K", probs_T_B_K, 3, "(T, B, K)")
    if probs_T_B_K.shape[1] < 1:
        raise ValueError("probs_T_B_K must hold at least one point (B >= 1)")
    gen = make_generator(generator)
    batch_T_B_K = probs_T_B_K[:, :-1]
    configs_M_B = sample_configurations(batch_T_B_K, n_samples, gen)
    log_config_T_M = sampled_log_config_probs(batch_T_B_K, configs_M_B)
    return joint_entropies_with_candidates(log_config_T_M, probs_T_B_K[:, -1:], sampled=True)[0]


def batch_mutual_information(
    probs_T_B_K: torch.Tensor, n_per_pass: int, generator: torch.Generator | None = None
) -> tuple[float, float]:
    """Monte-Carlo BatchBALD value ``I(y_1..y_B; w)`` of a whole batch and its standard error,
    in nats: a reference for judging batches, sharper than joint entropy minus the sum of the
    conditional entropies.

    ``I = mean_t E_{y ~ p_t} [log p_t(y) - log p(y)]`` with ``p = mean_s p_s`` (each pass's
    divergence from the mixture). ``n_per_pass`` configurations are drawn from every pass ``t``
    and each contributes ``log T - log sum_s exp(l_s - l_t)``, ``l_s = log p_s(y)``. Each term
    is at most ``log T``, so the estimate is too (as the true value over ``T`` passes is), and
    the large spread of ``log p(y)`` over configurations cancels between the two logs: its
    error is far smaller than that of :func:`joint_entropy_sampled` with as many
    configurations. The standard error is the stratified one (passes are strata).
    """
    check_ndim("probs_T_B_K", probs_T_B_K, 3, "(T, B, K)")
    n_per_pass = check_int_range("n_per_pass", n_per_pass, 2)
    gen = make_generator(generator)
    n_passes = probs_T_B_K.shape[0]
    mean_T = torch.empty(n_passes, dtype=torch.float64)
    var_T = torch.empty(n_passes, dtype=torch.float64)
    for t in range(n_passes):
        configs_M_B = sample_configurations(probs_T_B_K[t : t + 1], n_per_pass, gen)
        log_T_M = sampled_log_config_probs(probs_T_B_K, configs_M_B)
        # finite: sample_configurations never draws a label of probability 0 under pass t
        term_M = math.log(n_passes) - torch.logsumexp(log_T_M - log_T_M[t], dim=0)
        mean_T[t], var_T[t] = float(term_M.mean()), float(term_M.var())  # any device
    stderr = math.sqrt(float(var_T.sum()) / n_per_pass) / n_passes
    return float(mean_T.mean()), stderr


def conditional_entropies(probs_T_N_K: torch.Tensor) -> torch.Tensor:
    """``(N,)`` expected per-pass entropy ``E_w H(y | w) = mean_t H(p_t)`` in nats, float64."""
    check_ndim("probs_T_N_K", probs_T_N_K, 3, "(T, N, K)")
    p = probs_T_N_K.to(torch.float64)
    return -torch.xlogy(p, p).sum(dim=2).mean(dim=0)


def batchbald_indices(
    probs_T_N_K: torch.Tensor,
    budget: int,
    *,
    max_exact_configurations: int = 1000,
    n_joint_samples: int = 1000,
    generator: torch.Generator | None = None,
    max_elements: int = 2**21,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy BatchBALD (Kirsch et al. 2019, Alg. 1) over the ``N`` points of ``probs_T_N_K``.

    Step ``n`` adds the candidate maximising ``H(y_1..y_n) - sum_i E_w H(y_i | w)``. The joint
    entropy is exact while the batch so far has at most ``max_exact_configurations`` label
    configurations (``K^(n-1)``; each candidate's ``K`` labels are always enumerated, as in
    batchbald_redux); beyond that ``n_joint_samples`` configurations of the current batch are
    drawn (from ``generator``) at every step. With both at 1000 and ``K = 10`` the first four
    picks are exact, and an exact step costs what a sampled one does.

    Returns:
        ``(indices (budget,), gains (budget,))``: the picks in order, and each pick's BatchBALD
        value of the batch up to and including it (float64, nats).
    """
    check_ndim("probs_T_N_K", probs_T_N_K, 3, "(T, N, K)")
    n_points = int(probs_T_N_K.shape[1])
    budget = check_budget(budget, n_points)
    max_exact_configurations = check_int_range(
        "max_exact_configurations", max_exact_configurations, 1
    )
    n_joint_samples = check_int_range("n_joint_samples", n_joint_samples, 1)
    gen = make_generator(generator)
    device = probs_T_N_K.device

    cond_N = conditional_entropies(probs_T_N_K)
    taken_N = torch.zeros(n_points, dtype=torch.bool, device=device)
    chosen = torch.empty(budget, dtype=torch.long)
    values = torch.empty(budget, dtype=torch.float64)
    cond_batch = 0.0
    log_config_T_C: torch.Tensor | None = exact_log_config_probs(probs_T_N_K[:, :0])
    for step in range(budget):
        batch_T_B_K = probs_T_N_K[:, chosen[:step].to(device)]
        exact = log_config_T_C is not None and (log_config_T_C.shape[1] <= max_exact_configurations)
        if exact:
            assert log_config_T_C is not None
            joint_N = joint_entropies_with_candidates(
                log_config_T_C, probs_T_N_K, sampled=False, max_elements=max_elements
            )
        else:
            log_config_T_C = None  # once sampled, stay sampled
            configs_M_B = sample_configurations(batch_T_B_K, n_joint_samples, gen)
            log_config_T_M = sampled_log_config_probs(batch_T_B_K, configs_M_B)
            joint_N = joint_entropies_with_candidates(
                log_config_T_M, probs_T_N_K, sampled=True, max_elements=max_elements
            )
        gain_N = (joint_N - cond_batch - cond_N).masked_fill(taken_N, -math.inf)
        pick = int(torch.argmax(gain_N))
        chosen[step] = pick
        values[step] = gain_N[pick].item()
        taken_N[pick] = True
        cond_batch += float(cond_N[pick])
        if log_config_T_C is not None:
            log_p_T_K = probs_T_N_K[:, pick].to(torch.float64).log()
            log_config_T_C = (log_config_T_C[:, :, None] + log_p_T_K[:, None, :]).reshape(
                probs_T_N_K.shape[0], -1
            )
    return chosen, values


@dataclass(frozen=True)
class BatchBALDStrategy:
    """BatchBALD (Kirsch et al. 2019): greedy joint mutual information over MC-dropout passes.

    The passes use consistent masks (one sampled network per pass, shared by the whole pool,
    as batchbald_redux's ``ConsistentMCDropout``): with a fresh mask per image, two copies of
    an image would look like independent evidence and the joint information of a batch would
    collapse towards the sum of its BALD scores.

    Options:
        max_exact_configurations: exact joint entropy while the batch so far has at most this
            many label configurations (``K^(n-1)`` before pick ``n``).
        n_joint_samples: sampled configurations ``M`` once it does not.
        candidates_per_pick: only the top ``candidates_per_pick * budget`` BALD points are
            candidates (at most the pool); ``None`` makes the whole pool a candidate.

    ``Selection.scores`` are the BALD scores of the whole pool.

    With ``T`` passes a batch's joint information cannot exceed ``log T``; once the greedy
    batch reaches it (about 20 picks at ``T = 20`` on Fashion-MNIST, ``benchmarks/peers.py``),
    every candidate's true gain is zero and the later picks are ranked by the estimate's noise.
    """

    name: ClassVar[str] = "batchbald"
    max_exact_configurations: int = 1000
    n_joint_samples: int = 1000
    candidates_per_pick: int | None = 10

    def __post_init__(self) -> None:
        check_int_range("max_exact_configurations", self.max_exact_configurations, 1)
        check_int_range("n_joint_samples", self.n_joint_samples, 1)
        if self.candidates_per_pick is not None:
            check_int_range("candidates_per_pick", self.candidates_per_pick, 1)

    def select(self, ctx: AcquisitionContext) -> Selection:
        pool_size, budget = check_context(ctx)
        gen = context_generator(ctx)
        device = compute_device(ctx)
        # Consistent masks: pass t is one sampled network for the whole pool, which the joint
        # entropy of a batch assumes (Kirsch et al. 2019).
        probs_T_N_K = pool_mc_probs(ctx, gen, masks="consistent").to(device)
        scores_N = scoring.bald(probs_T_N_K).detach().cpu()
        if self.candidates_per_pick is None:
            candidates = torch.arange(pool_size)
        else:
            n_cand = min(pool_size, self.candidates_per_pick * budget)
            candidates = top_k_indices(scores_N, n_cand)
        picks, _ = batchbald_indices(
            probs_T_N_K[:, candidates.to(device)],
            budget,
            max_exact_configurations=self.max_exact_configurations,
            n_joint_samples=self.n_joint_samples,
            generator=gen,
        )
        return Selection(indices=candidates[picks], scores=scores_N)
