"""How a CPU process's heap is managed: fewer page faults, bounded resident memory.

**Scoring** (`settle_heap_thresholds`). glibc adapts its mmap threshold: it starts at 128 KiB and
rises to the size of a mapped block once one is freed, up to 32 MiB, with the trim threshold at
twice that. Until a process has freed a large block, every activation tensor over 128 KiB is
mapped on its own and its pages faulted in afresh at each forward pass; after that, whether the
top of the heap is handed back and faulted in again depends on what ran before. Scoring 64
best-of-8 responses with SmolLM2 (fp32, 2 threads, a fresh process) took 7.9-8.2 s per call with
530-570 thousand page faults; with the thresholds fixed where glibc's adaptation ends (32 MiB,
64 MiB), 6.6 s and none. A scorer sets them when it is built.

**Training** (`HeapTrimCallback`): keep a long run's resident memory bounded without slowing
every step.

Activation tensors change shape from chunk to chunk, so glibc's heap fragments and the process
keeps freed pages resident: a SmolLM2 LoRA epoch once grew to 13 GB. Two fixes were tried:

- a fixed, low mmap threshold (every block over 1 MiB mapped and unmapped on its own): flatter
  memory, but each step then faults in every page of its activations afresh. On 20 bf16 steps
  of SmolLM2 full fine-tuning (`bench/results/heap_policy.json`): 27.8M page faults, 114 s
  against 88 s with glibc's defaults, and the cost varied from run to run with the kernel's state;
- returning free pages to the system (`malloc_trim`) after every step: flat memory too, but
  about as many page faults (tried ad hoc, not kept).

`HeapTrimCallback` keeps glibc's defaults and calls `malloc_trim` only when the resident size
at a step's end has grown by a quarter, so a stable run pays nothing and a creeping one is
pulled back. `python bench/heap_policy.py` measures the three side by side.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

from transformers import TrainerCallback


def _glibc() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - not glibc (e.g. musl) if missing
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


# mallopt parameters (malloc.h) and the values glibc's adaptive thresholds stop at on 64-bit
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 2**20
TRIM_THRESHOLD_AT_MAX = 2 * MMAP_THRESHOLD_MAX
_USER_MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
_settled = False


def settle_heap_thresholds() -> bool:
    """Fix glibc's mmap and trim thresholds at the values its own adaptation ends at (see the
    module docstring), so a scorer's activations are reused from the heap instead of being
    mapped and faulted in at every call. Once per process; a no-op off glibc, and when the user
    has tuned malloc through the environment. Returns whether the thresholds are now set."""
    global _settled
    if _settled:
        return True
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc." in tunables or any(name in os.environ for name in _USER_MALLOC_ENV):
        return False
    libc = _glibc()
    if libc is None:
        return False
    _settled = bool(
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
        and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_AT_MAX)
    )
    return _settled


def resident_bytes() -> int | None:
    """This process's resident set size now (Linux), or None where /proc is not available."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class HeapTrimCallback(TrainerCallback):
    """After an optimizer step, give freed heap pages back when the resident size at a step's end
    has grown by `growth` (a fraction) over the first step's end after the last trim. (Right
    after a trim the size is low; the next step faults its working set back in, so the mark is
    taken there.) A no-op off Linux/glibc."""

    def __init__(self, growth: float = 0.25):
        self.growth = growth
        self.libc = _glibc()
        self.baseline: int | None = None
        self.trims = 0

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.libc is None:
            return
        rss = resident_bytes()
        if rss is None:
            return
        if self.baseline is None:
            self.baseline = rss
        elif rss > self.baseline * (1.0 + self.growth):
            self.libc.malloc_trim(0)
            self.trims += 1
            self.baseline = None  # the next step's end, with its transients back, is the new mark
