"""pytest settings for the chapters (``pytest --nbval``).

Passes ``book/nbval_sanitize.cfg`` to nbval, so the README's ``pytest --nbval`` needs no extra
flag; an explicit ``--nbval-sanitize-with FILE`` on the command line wins.

It also pins the chapters' kernels to one BLAS/OpenMP thread (unless the caller set
``OMP_NUM_THREADS``): the book's networks are tiny, and on a 2-core runner torch's thread pool
costs more than it gains, several-fold more when the machine is busy. The committed outputs are
executed the same way (``OMP_NUM_THREADS=1 jupyter execute --inplace ...``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SANITIZE_FILE = Path(__file__).with_name("nbval_sanitize.cfg")


def pytest_configure(config: pytest.Config) -> None:
    """Default ``--nbval-sanitize-with`` to this folder's sanitize file (absolute path)."""
    os.environ.setdefault(
        "OMP_NUM_THREADS", "1"
    )  # inherited by the kernels nbval starts
    if getattr(config.option, "nbval_sanitize_with", "missing") is None:
        config.option.nbval_sanitize_with = str(SANITIZE_FILE)
