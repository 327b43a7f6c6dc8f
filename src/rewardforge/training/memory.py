"""Keep a long CPU run's resident memory bounded without slowing every step.

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
    except (OSError, AttributeError):
        return None
    return libc


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
