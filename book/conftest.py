"""pytest settings for the chapters (``pytest --nbval``).

Passes ``book/nbval_sanitize.cfg`` to nbval, so the README's ``pytest --nbval`` needs no extra
flag; an explicit ``--nbval-sanitize-with FILE`` on the command line wins.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SANITIZE_FILE = Path(__file__).with_name("nbval_sanitize.cfg")


def pytest_configure(config: pytest.Config) -> None:
    """Default ``--nbval-sanitize-with`` to this folder's sanitize file (absolute path)."""
    if getattr(config.option, "nbval_sanitize_with", "missing") is None:
        config.option.nbval_sanitize_with = str(SANITIZE_FILE)
