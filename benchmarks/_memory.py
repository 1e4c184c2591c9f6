"""Peak resident memory of the current process, for the benchmarks' per-method subprocesses.

``/proc/self/clear_refs`` resets the peak (``VmHWM``) to the current RSS; reading ``VmHWM``
afterwards gives the peak of what ran in between. Linux only.
"""

from __future__ import annotations

from pathlib import Path


def status_kib(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``...)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_baseline() -> int:
    """The RSS (kB) that later ``VmHWM`` readings are measured against."""
    return status_kib("VmRSS") if reset_peak() else status_kib("VmHWM")
