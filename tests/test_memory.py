"""The heap-trim policy: trim only when a step's end finds the process grown, then re-mark."""

from __future__ import annotations

import sys

import pytest

from rewardforge import memory
from rewardforge.memory import HeapTrimCallback


class FakeLibc:
    def __init__(self):
        self.calls = 0

    def malloc_trim(self, pad: int) -> int:
        self.calls += 1
        return 1


def run_steps(monkeypatch, sizes: list[int], growth: float = 0.25) -> tuple[HeapTrimCallback, list[int]]:
    """Feed one resident size per step end; returns the callback and the steps that trimmed."""
    cb = HeapTrimCallback(growth=growth)
    cb.libc = FakeLibc()
    trimmed = []
    for step, size in enumerate(sizes, 1):
        monkeypatch.setattr(memory, "resident_bytes", lambda size=size: size)
        before = cb.libc.calls
        cb.on_step_end(None, None, None)
        if cb.libc.calls > before:
            trimmed.append(step)
    return cb, trimmed


def test_a_stable_run_is_never_trimmed(monkeypatch):
    cb, trimmed = run_steps(monkeypatch, [1000, 1100, 1200, 1249, 1200, 1249])
    assert trimmed == [] and cb.trims == 0


def test_growth_past_the_mark_trims_and_the_next_step_sets_a_new_mark(monkeypatch):
    # mark 1000; 1300 > 1250 trims; the next step (1300) is the new mark, so 1600 does not
    # trim (< 1625) and 1700 does.
    _, trimmed = run_steps(monkeypatch, [1000, 1100, 1300, 1300, 1600, 1700, 1700])
    assert trimmed == [3, 6]


def test_without_glibc_or_proc_it_does_nothing(monkeypatch):
    cb = HeapTrimCallback()
    cb.libc = None
    cb.on_step_end(None, None, None)  # no error, nothing recorded
    assert cb.baseline is None
    cb = HeapTrimCallback()
    cb.libc = FakeLibc()
    monkeypatch.setattr(memory, "resident_bytes", lambda: None)
    cb.on_step_end(None, None, None)
    assert cb.baseline is None and cb.libc.calls == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc are Linux")
def test_on_this_machine_it_reads_the_resident_size_and_trims_for_real():
    size = memory.resident_bytes()
    assert size is not None and size > 10 * 2**20
    libc = memory._glibc()
    assert libc is not None
    assert libc.malloc_trim(0) in (0, 1)


class FakeMallopt:
    def __init__(self):
        self.set: dict[int, int] = {}

    def mallopt(self, param: int, value: int) -> int:
        self.set[param] = value
        return 1


def fresh_settle(monkeypatch, libc) -> None:
    monkeypatch.setattr(memory, "_settled", False)
    monkeypatch.setattr(memory, "_glibc", lambda: libc)
    for name in ("GLIBC_TUNABLES", *memory._USER_MALLOC_ENV):
        monkeypatch.delenv(name, raising=False)


def test_scoring_fixes_the_thresholds_where_glibc_adaptation_ends(monkeypatch):
    libc = FakeMallopt()
    fresh_settle(monkeypatch, libc)
    assert memory.settle_heap_thresholds()
    assert libc.set == {-3: 32 * 2**20, -1: 64 * 2**20}  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
    libc.set.clear()
    assert memory.settle_heap_thresholds() and libc.set == {}  # once per process


@pytest.mark.parametrize(
    "env", [("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=1048576"), ("MALLOC_TRIM_THRESHOLD_", "0")]
)
def test_a_user_who_tuned_malloc_keeps_their_settings(monkeypatch, env):
    libc = FakeMallopt()
    fresh_settle(monkeypatch, libc)
    monkeypatch.setenv(*env)
    assert not memory.settle_heap_thresholds()
    assert libc.set == {}


def test_without_glibc_thresholds_are_left_alone(monkeypatch):
    fresh_settle(monkeypatch, None)
    assert not memory.settle_heap_thresholds()


def test_a_cpu_scorer_settles_the_heap(monkeypatch, tiny_llama_dir):
    from rewardforge.inference import RewardModel

    libc = FakeMallopt()
    fresh_settle(monkeypatch, libc)
    RewardModel.from_pretrained(str(tiny_llama_dir), device="cpu")
    assert libc.set == {-3: 32 * 2**20, -1: 64 * 2**20}
