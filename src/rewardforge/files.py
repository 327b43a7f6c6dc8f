"""Atomic file writes: readers see the old file or the new one, never half of one.

Every output rewardforge writes (models' metadata, metrics, scores, rejected rows) goes
through `AtomicFile`: a temporary file beside the target, fsynced, then renamed over it. The
temporary file gets the mode a plain `open()` would give (0666 minus the umask), not
mkstemp's 0600. No torch here, so the data layer can use it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path


def new_file_mode() -> int:
    """The mode `open(path, "w")` gives a new file under the current umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


class AtomicFile:
    """A text file written under a temporary name and renamed into place by `commit`;
    `discard` (or leaving a `with` block by an exception) removes it and keeps the old file."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            os.fchmod(fd, new_file_mode())
            self.fh = os.fdopen(fd, "w", encoding="utf-8")
        except BaseException:
            os.close(fd)
            Path(self.tmp).unlink(missing_ok=True)
            raise

    def write(self, text: str) -> None:
        self.fh.write(text)

    def commit(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        if not self.fh.closed:
            self.fh.close()
        Path(self.tmp).unlink(missing_ok=True)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` atomically."""
    with AtomicFile(path) as f:
        f.write(text)


@contextlib.contextmanager
def held_signals() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends (then arrive as usual): files written
    together are then all new or all old. Only the main thread sets handlers; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    kinds = (signal.SIGINT, signal.SIGTERM)
    before = {sig: signal.signal(sig, lambda sig, frame: arrived.append(sig)) for sig in kinds}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(arrived):
            signal.raise_signal(sig)
