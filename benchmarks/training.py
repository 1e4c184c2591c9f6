"""Benchmark: training the MNIST CNN on the CPU at batch size 32 (one acquisition step's fit).

After every acquisition step the model is retrained from scratch: 50 epochs of Adam at batch
32 (the ``medium`` preset's last step fits 1,040 Fashion-MNIST labels, 33 steps an epoch).
``baseline_train`` (``_baseline.py``) is the body of
:func:`dean_nb.learner.training.train_model` before this benchmark, without its channel,
progress and callback hooks; each variant changes one or more things about it (see
:data:`VARIANTS`); ``train_model`` is the package's function itself. Every variant trains the
same freshly built model (seed 0) on the same images in the same minibatch order with the same
dropout draws. ``|dw| ep 1`` and ``|dw| end`` are the largest weight difference from the
baseline after the first and the last epoch: 0 means bit for bit; anything else is float
rounding grown by training (Adam's first steps move every weight by about ``lr`` = 1e-3
whatever the size of its gradient, so a rounding difference in a tiny gradient's sign shows).

Reported per variant and thread count: seconds per epoch (the fastest epoch after the first,
over ``--repeats`` interleaved runs), the slowest first epoch (warm-up, compilation), the
achieved GFLOP/s (forward + backward counted as 3 x the forward multiply-adds x 2 FLOP, from
:func:`dean_nb.learner.models.multiply_adds`), its ratio to the sgemm rate measured in the same
run (``_timing.sgemm_gflops``: a ``(5120 x 3872) @ (3872 x 128)`` float32 matmul, the best
before or after the variants) and the speed-up over the baseline.

    nice python benchmarks/training.py                       # 1 thread, the default variants
    nice python benchmarks/training.py --threads 1 2 --variants baseline,channels_last
    nice python benchmarks/training.py --variants baseline,compile,jit_trace
    python benchmarks/training.py --random                   # random images, no data files

Findings (AMD EPYC, AVX-512, one core while the other core ran other work, torch 2.14): the
baseline already runs at 0.8-0.9x the sgemm rate (55-65 GFLOP/s, 0.85-1 s an epoch, runs vary
by +-6% with the other core's load); oneDNN (``mkldnn``) is what makes it so (off: half the
speed). The bit-for-bit options gain nothing measurable: foreach Adam is no faster than the
default on the CPU, and gathering ``x[idx]`` costs 0.2 ms of a ~29 ms step (``preshuffle``).
Channels-last and fused Adam (one pass over the 0.5M weights instead of ~10) each save about
5% (medians of paired runs), together 6-13% (1.26x at two threads), but they round
differently, so training no longer repeats records made before them bit for bit.
``train_model`` keeps both (the records were re-made with them and with the faster MC-dropout
masks, which changed the random stream anyway); channels-last also doubles the speed of the
trunk's forward pass in MC-dropout scoring (``benchmarks/loop.py``).
``torch.compile`` (dropout kept on torch's generator) needs ~60 s to compile cold (~8 s with
a warm inductor cache) and then runs an epoch ~35% slower; ``torch.jit.trace`` gains nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import time
import warnings

import torch
import torch.nn.functional as F
from _baseline import baseline_train
from _timing import sgemm_gflops
from torch import nn

from dean_nb.learner.models import build_model, multiply_adds
from dean_nb.learner.training import TrainConfig, make_optimizer, train_model
from dean_nb.runtime import derive_seed, make_generator, seeded_global_rng

VARIANTS: dict[str, dict] = {
    "baseline": {},
    "channels_last": {"channels_last": True},
    "no_mkldnn": {"mkldnn": False},
    "adam_foreach": {"adam": {"foreach": True}},
    "adam_fused": {"adam": {"fused": True}},
    "preshuffle": {"preshuffle": True},
    "flush_denormal": {"flush_denormal": True},
    "compile": {"compile": True},
    "jit_trace": {"jit_trace": True},
    "foreach+pre": {"adam": {"foreach": True}, "preshuffle": True},
    "cl+fused+pre": {"channels_last": True, "adam": {"fused": True}, "preshuffle": True},
    "train_model": {},
}
DEFAULT_VARIANTS = [name for name in VARIANTS if name not in ("compile", "jit_trace")]
CPU = torch.device("cpu")


def variant_train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    config,
    generator,
    *,
    channels_last: bool = False,
    mkldnn: bool = True,
    adam: dict | None = None,
    preshuffle: bool = False,
    flush_denormal: bool = False,
    compile: bool = False,
    jit_trace: bool = False,
    on_epoch=None,
):
    """``baseline_train`` with one or more changes (keyword flags, see :data:`VARIANTS`).

    ``compile`` keeps inductor's dropout on torch's own generator (``fallback_random``) so that
    it draws the same masks; ``jit_trace`` traces the model once in training mode (on a fork
    of the RNG, so the trace's dropout draws do not count).
    """
    gen = make_generator(generator)
    optimizer = make_optimizer(model, x.shape[0], config)
    if adam:  # the same groups, with Adam's implementation chosen by ``adam``
        groups = [
            {k: g[k] for k in ("params", "lr", "weight_decay")} for g in optimizer.param_groups
        ]
        optimizer = torch.optim.Adam(groups, **adam)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    model.train()
    forward = model
    stack = contextlib.ExitStack()
    if not mkldnn:
        stack.enter_context(warnings.catch_warnings())
        warnings.filterwarnings("ignore", message="TF32 acceleration")  # Intel GPUs only
        stack.enter_context(torch.backends.mkldnn.flags(enabled=False))
    stack.callback(torch.set_flush_denormal, False)
    torch.set_flush_denormal(flush_denormal)
    if compile:
        import torch._inductor.config as inductor_config

        stack.enter_context(inductor_config.patch(fallback_random=True))
        forward = torch.compile(model)
    with stack, seeded_global_rng(derive_seed(gen)):
        for _ in range(config.epochs):
            order = torch.randperm(x.shape[0], generator=gen)
            if preshuffle:
                xs, ys = x.index_select(0, order), y.index_select(0, order)
            for start in range(0, x.shape[0], config.batch_size):
                stop = start + config.batch_size
                if preshuffle:
                    xb, yb = xs[start:stop], ys[start:stop]
                else:
                    xb, yb = x[order[start:stop]], y[order[start:stop]]
                if jit_trace and forward is model:
                    with torch.random.fork_rng():
                        forward = torch.jit.trace(model, xb, check_trace=False)
                loss = F.cross_entropy(forward(xb), yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if on_epoch is not None:
                on_epoch()
    if channels_last:
        model.to(memory_format=torch.contiguous_format)
    return model.eval()


def run_variant(name: str, x, y, config) -> tuple[list[float], list[dict]]:
    """Train a fresh model (seed 0) with variant ``name``.

    Returns the wall time of every epoch and the weights after the first and the last epoch.
    """
    model = build_model("mnist", 10, x.shape[1], x.shape[-1], seed=0)
    stamps, weights = [time.perf_counter()], []

    def on_epoch(*_args) -> None:
        stamps.append(time.perf_counter())
        if len(stamps) in (2, config.epochs + 1):
            weights.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        stamps[-1] = time.perf_counter()  # the copy is not training time

    if name == "baseline":
        baseline_train(model, x, y, config, 1, on_epoch=on_epoch)
    elif name == "train_model":
        train_model(model, x, y, config, device="cpu", generator=1, on_epoch_end=on_epoch)
    else:
        variant_train(model, x, y, config, 1, on_epoch=on_epoch, **VARIANTS[name])
    return [b - a for a, b in itertools.pairwise(stamps)], weights


def max_difference(a: dict, b: dict) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


def load_images(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    """``--labels`` Fashion-MNIST training images ``(N, 1, 28, 28)`` and labels, or random ones."""
    gen = torch.Generator().manual_seed(args.seed)
    if args.random:
        x = torch.randn(args.labels, 1, 28, 28, generator=gen)
        return x, torch.randint(0, 10, (args.labels,), generator=gen)
    from dean_nb.problem.datasets import load_dataset

    data = load_dataset("fashion-mnist", root=args.root)
    idx = torch.randperm(data.x_train.shape[0], generator=gen)[: args.labels]
    return data.x_train[idx].contiguous(), data.y_train[idx]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labels", type=int, default=1040, help="N, training images")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timed run")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant (min)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="torch CPU threads")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help="comma-separated")
    parser.add_argument("--root", default=None, help="data folder (default: resolve_root)")
    parser.add_argument("--random", action="store_true", help="random images instead of data")
    parser.add_argument("--seed", type=int, default=0, help="which labelled images")
    args = parser.parse_args(argv)
    names = [n for n in args.variants.split(",") if n]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    x, y = load_images(args)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size)
    probe = build_model("mnist", 10, x.shape[1], x.shape[-1], seed=0)
    flop_per_epoch = 3 * 2 * multiply_adds(probe, x) * x.shape[0]
    print(
        f"Training the MNIST CNN on the CPU: {x.shape[0]} images, batch {config.batch_size}, "
        f"{config.epochs} epochs x {args.repeats} runs, {flop_per_epoch / 1e9:.1f} GFLOP/epoch"
    )
    print(
        f"  {'variant':15s} {'threads':>7s} {'s/epoch':>8s} {'1st ep s':>8s} {'GFLOP/s':>8s} "
        f"{'sgemm':>6s} {'ratio':>6s} {'vs base':>7s} {'|dw| ep 1':>9s} {'|dw| end':>9s}"
    )
    for threads in args.threads:
        torch.set_num_threads(threads)
        sgemm = sgemm_gflops(CPU, repeats=5)
        reference = run_variant("baseline", x, y, config)[1]  # also warms up the kernels
        # Interleaved repeats, so that a change in the machine's load hits every variant alike.
        runs: dict[str, list] = {name: [] for name in names}
        for _ in range(args.repeats):
            for name in names:
                runs[name].append(run_variant(name, x, y, config))
        sgemm = max(sgemm, sgemm_gflops(CPU, repeats=5))
        best = {
            name: min(t for times, _ in r for t in (times[1:] or times)) for name, r in runs.items()
        }
        for name, r in runs.items():
            seconds, first = best[name], max(times[0] for times, _ in r)
            speed = f"{best['baseline'] / seconds:6.2f}x" if "baseline" in best else "      -"
            dw = [max_difference(w, ref) for w, ref in zip(r[0][1], reference, strict=True)]
            gflops = flop_per_epoch / seconds / 1e9
            print(
                f"  {name:15s} {threads:7d} {seconds:8.3f} {first:8.2f} {gflops:8.1f} "
                f"{sgemm:6.1f} {gflops / sgemm:6.2f} {speed:>7s} {dw[0]:9.1e} {dw[-1]:9.1e}"
            )


if __name__ == "__main__":
    main()
