"""Benchmark: dean_nb against the peer libraries, on the same inputs, in one run.

The peers are baal (its MC-dropout ``ModelWrapper`` and its ``BALD`` and ``BatchBALD``
heuristics) and batchbald_redux (``get_batchbald_batch``), installed with
``pip install .[peers]``; a peer that is not installed is skipped with a line saying so. Both
sides get the same tensors, run on one thread, alternate (ours, peer, ours, ...) and keep
their best of ``--repeats``; each line prints the two times, their ratio and how far the
outputs agree:

- **MC dropout**: the ``medium`` preset's network (the authors' MNIST CNN, whole conv maps
  dropped) trained on the preset's 40 initial labels, then ``T`` passes over ``--pool``
  images: ours ``mc_dropout_probs`` (the trunk once), baal's ``predict_on_batch`` on a
  ``patch_module`` copy of the same weights (its first dropout written as ``Dropout2d`` on the
  unflattened map, the same law). Agreement: the largest gap of the two mean predictions in
  units of its Monte-Carlo standard error.
- **BALD** on those predictions: ours ``scoring.bald`` against baal's ``BALD().compute_score``.
- **BatchBALD** at each of ``--budgets`` over the top ``--candidates`` BALD images (default:
  the whole pool of 2000): ours ``batchbald_indices`` (exact joint
  entropy while ``K^n <= 1000``, then 1000 sampled configurations), batchbald_redux's
  ``get_batchbald_batch`` (exact, then ``num_samples`` = 1000 sampled) and baal's
  ``BatchBALD`` (its default 500 draws). Agreement: how many of our first picks equal
  batchbald_redux's (identical while both are exact), how many of baal's picks (which it
  returns ranked, not in pick order) batchbald_redux also took, and the joint mutual
  information of each method's batch under one reference estimate with its standard error
  (:func:`joint_mi`: ``strategies.batchbald.batch_mutual_information``, 1,000 configurations
  drawn from each pass).

The machine's own yardstick, its float32 sgemm rate, is printed first.

    nice python benchmarks/peers.py                       # pool 2000, b = 10 and 50
    nice python benchmarks/peers.py --budgets 10,50,200   # b = 200: minutes per method
    nice python benchmarks/peers.py --budgets 200 --batchbald-peers batchbald_redux
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import math
import os
import time

# the peers draw progress bars per pick; they would bury the lines this script prints
os.environ.setdefault("TQDM_DISABLE", "1")

import torch
from _timing import sgemm_gflops

from dean_nb.experiment import ExperimentConfig, train_step_model
from dean_nb.learner.mc_dropout import mc_dropout_probs
from dean_nb.learner.models import ChannelDropout
from dean_nb.problem.datasets import load_dataset
from dean_nb.problem.split import make_split
from dean_nb.strategies import batchbald, scoring

PEERS = ("baal", "batchbald_redux")


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def best_of(repeats: int, *fns):
    """Alternate the callables ``repeats`` times; ``[(best seconds, last output)]`` per fn."""
    best = [float("inf")] * len(fns)
    outs = [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            outs[i] = fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return list(zip(best, outs, strict=True))


def step0_model_and_pool(args: argparse.Namespace):
    """The preset's first model and ``--pool`` pool images (Fashion-MNIST, else digits)."""
    try:
        data, name = load_dataset("fashion-mnist"), "fashion-mnist"
    except (FileNotFoundError, RuntimeError):
        data, name = load_dataset("digits"), "digits"
    config = ExperimentConfig.preset(name, "medium" if name == "fashion-mnist" else "quick")
    split = make_split(data.y_train, data.num_classes, config.initial_per_class, 0, config.seed)
    x0, y0 = data.x_train[split.initial], data.y_train[split.initial]
    model, _ = train_step_model(config, x0, y0, data.num_classes, 0, torch.device("cpu"))
    pool = data.x_train[split.pool[: args.pool]]
    return model.eval(), pool, name


def baal_copy(model: torch.nn.Module, map_shape: tuple[int, int, int]) -> torch.nn.Module:
    """The same weights for baal: ``ChannelDropout`` as ``Dropout2d`` on the unflattened map,
    then every dropout made stochastic by baal's ``patch_module``."""
    from baal.bayesian.dropout import patch_module

    twin = copy.deepcopy(model)
    for i, layer in enumerate(twin.head):
        if isinstance(layer, ChannelDropout):
            twin.head[i] = torch.nn.Sequential(
                torch.nn.Unflatten(1, map_shape), torch.nn.Dropout2d(layer.p), torch.nn.Flatten()
            )
    return patch_module(twin).eval()


def compare_mc_dropout(args, model, pool) -> torch.Tensor:
    """Time both MC-dropout passes; return our ``probs_T_N_K``."""

    def ours():
        return mc_dropout_probs(model, pool, args.samples, batch_size=256, generator=0)

    if not installed("baal"):
        print("MC dropout: baal not installed, ours only")
        return ours()
    from baal.modelwrapper import ModelWrapper, TrainingArgs

    channels = model.head[0].channels if isinstance(model.head[0], ChannelDropout) else 1
    with torch.no_grad():
        flat = model.trunk(pool[:1]).shape[1]
    side = round((flat // channels) ** 0.5)
    wrapper = ModelWrapper(
        baal_copy(model, (channels, side, side)),
        TrainingArgs(batch_size=256, use_cuda=False, replicate_in_memory=False),
    )

    def peer():
        torch.manual_seed(0)
        logits_N_K_T = torch.cat(
            [
                wrapper.predict_on_batch(pool[i : i + 256], args.samples)
                for i in range(0, len(pool), 256)
            ]
        )
        return logits_N_K_T.softmax(1).permute(2, 0, 1)

    (t_ours, probs), (t_peer, probs_peer) = best_of(args.repeats, ours, peer)
    err = (probs.var(0) + probs_peer.var(0)).div(args.samples).sqrt().clamp_min(1e-6)
    z = ((probs.mean(0) - probs_peer.mean(0)).abs() / err).max().item()
    print(
        f"MC dropout, {len(pool)} images x T = {args.samples}: ours {t_ours:.2f} s, baal "
        f"{t_peer:.2f} s ({t_peer / t_ours:.1f}x); mean predictions: largest of "
        f"{probs.shape[1] * probs.shape[2]} gaps {z:.1f} s.e. (chance alone: about "
        f"{(2 * math.log(probs.shape[1] * probs.shape[2])) ** 0.5:.1f})"
    )
    return probs


def compare_bald(args, probs_T_N_K: torch.Tensor) -> None:
    if not installed("baal"):
        print("BALD: baal not installed")
        return
    from baal.active.heuristics import BALD

    probs_N_K_T = probs_T_N_K.permute(1, 2, 0).double().numpy()
    (t_ours, ours), (t_peer, peer) = best_of(
        args.repeats,
        lambda: scoring.bald(probs_T_N_K),
        lambda: torch.from_numpy(BALD().compute_score(probs_N_K_T)),
    )
    gap = (ours.double() - peer).abs().max().item()
    print(
        f"BALD, {probs_T_N_K.shape[1]} images: ours {1e3 * t_ours:.1f} ms, baal "
        f"{1e3 * t_peer:.1f} ms ({t_peer / t_ours:.1f}x); largest gap {gap:.1e} nats"
    )


def joint_mi(probs_T_N_K: torch.Tensor, picks: list[int], n_per_pass: int = 1000) -> str:
    """Reference BatchBALD value of a batch, ``"value +/- s.e. nats"``: each pass's divergence
    from the mixture, 1000 configurations drawn from every pass (fixed seed)."""
    gen = torch.Generator().manual_seed(12345)
    value, stderr = batchbald.batch_mutual_information(probs_T_N_K[:, picks], n_per_pass, gen)
    return f"{value:.4f} +/- {stderr:.4f} nats"


def prefix_mi(probs_T_N_K: torch.Tensor, picks: list[int]) -> str:
    """The reference value of the batch's first n picks, n = 5, 10, 20, 50, ...: where it meets
    log T (the most that T passes can tell apart), no batch of that size is better than another
    by the joint information, and the later picks are ranked by the estimate's noise alone."""
    sizes = [n for n in (5, 10, 20, 50, 100, 150, 200, 400) if n <= len(picks)]
    values = [batchbald.batch_mutual_information(probs_T_N_K[:, picks[:n]], 200, n) for n in sizes]
    return ", ".join(f"n={n} {v:.3f}+/-{e:.3f}" for n, (v, e) in zip(sizes, values, strict=True))


def batchbald_methods(cand_T_N_K: torch.Tensor, peers: list[str]) -> dict:
    """``{name: fn(budget) -> picks}`` for ours and each of ``peers``, on the same inputs."""

    def ours(budget: int) -> list[int]:
        gen = torch.Generator().manual_seed(0)
        return batchbald.batchbald_indices(cand_T_N_K, budget, generator=gen)[0].tolist()

    methods = {"ours": ours}
    if "batchbald_redux" in peers:
        from batchbald_redux.batchbald import get_batchbald_batch

        log_N_K_C = cand_T_N_K.permute(1, 0, 2).log()
        methods["batchbald_redux"] = lambda b: (
            get_batchbald_batch(log_N_K_C, b, 1000, dtype=torch.double, device="cpu").indices
        )
    if "baal" in peers:
        from baal.active.heuristics import BatchBALD

        probs_N_K_T = cand_T_N_K.permute(1, 2, 0).numpy()
        methods["baal"] = lambda b: BatchBALD(b)(probs_N_K_T)[:b].tolist()
    return methods


def compare_batchbald(args, probs_T_N_K: torch.Tensor) -> None:
    top = torch.topk(scoring.bald(probs_T_N_K), args.candidates).indices
    cand_T_N_K = probs_T_N_K[:, top].double()
    methods = batchbald_methods(cand_T_N_K, [p for p in args.batchbald_peers if installed(p)])
    n_passes = cand_T_N_K.shape[0]
    print(
        f"BatchBALD over {cand_T_N_K.shape[1]} candidates, T = {n_passes}: a batch's joint "
        f"information is at most log T = {math.log(n_passes):.4f} nats"
    )
    for budget in args.budgets:
        runs = [lambda fn=fn: fn(budget) for fn in methods.values()]  # noqa: B023
        timed = dict(zip(methods, best_of(args.repeats, *runs), strict=True))
        t_ours = timed["ours"][0]
        for name, (seconds, picks) in timed.items():
            line = f"BatchBALD b = {budget}, {name}: {seconds:.2f} s"
            if name != "ours":
                line += f" ({seconds / t_ours:.2f}x ours)"
            if "batchbald_redux" in timed and name == "ours":
                pairs = zip(picks, timed["batchbald_redux"][1], strict=True)
                same = next((i for i, (a, c) in enumerate(pairs) if a != c), budget)
                line += f", first {same} picks as batchbald_redux's"
            elif "batchbald_redux" in timed and name == "baal":  # baal ranks, not in pick order
                shared = len(set(picks) & set(timed["batchbald_redux"][1]))
                line += f", {shared} of its {budget} picks among batchbald_redux's"
            line += f", joint MI {joint_mi(cand_T_N_K, picks)}"
            print(line)
            if name != "baal" and budget > 10:
                print(f"  {name}'s first n picks: {prefix_mi(cand_T_N_K, picks)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pool", type=int, default=2000, help="pool images scored")
    parser.add_argument("--samples", type=int, default=20, help="T, MC-dropout passes")
    parser.add_argument("--candidates", type=int, default=2000, help="BatchBALD candidates")
    parser.add_argument(
        "--budgets", type=lambda s: [int(b) for b in s.split(",")], default=[10, 50]
    )
    parser.add_argument(
        "--batchbald-peers",
        type=lambda s: [p for p in s.split(",") if p],
        default=list(PEERS),
        help="peers that run BatchBALD (comma-separated; baal's b = 200 takes about an hour)",
    )
    parser.add_argument("--repeats", type=int, default=2, help="best of this many, interleaved")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.batchbald_peers) - set(PEERS))
    if unknown:
        parser.error(f"--batchbald-peers: unknown {unknown}; choose among {', '.join(PEERS)}")
    torch.set_num_threads(1)
    missing = [p for p in PEERS if not installed(p)]
    print(f"one thread; sgemm {sgemm_gflops(torch.device('cpu')):.0f} GFLOP/s")
    if missing:
        print(f"not installed (pip install .[peers]): {', '.join(missing)}")
    model, pool, name = step0_model_and_pool(args)
    print(f"data: {name}, the preset's step-0 model")
    probs_T_N_K = compare_mc_dropout(args, model, pool)
    compare_bald(args, probs_T_N_K)
    compare_batchbald(args, probs_T_N_K)


if __name__ == "__main__":
    main()
