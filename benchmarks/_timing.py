"""Timing helpers shared by the benchmarks: wall time on a device, and the machine's sgemm rate.

The sgemm rate is the yardstick the benchmarks divide their achieved GFLOP/s by: a float32
``(5120 x 3872) @ (3872 x 128)`` product, the shape of the MNIST CNN's dense head on a batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def sync(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (CUDA runs asynchronously; the CPU does not)."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], T], device: torch.device) -> tuple[float, T]:
    """``(seconds, fn())``: the wall time of one call, the device synchronised around it."""
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def sgemm_gflops(device: torch.device, repeats: int = 10) -> float:
    """Best-of-``repeats`` float32 rate of a (5120 x 3872) @ (3872 x 128) product, GFLOP/s."""
    a = torch.randn(5120, 3872, device=device)
    b = torch.randn(3872, 128, device=device)
    a @ b  # warm-up
    best = min(timed(lambda: a @ b, device)[0] for _ in range(repeats))
    return 2 * 5120 * 3872 * 128 / best / 1e9
