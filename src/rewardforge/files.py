"""Atomic file writes: readers see the old file or the new one, never half of one.

Every output rewardforge writes (models' metadata, metrics, scores, rejected rows) goes
through `AtomicFile`: a temporary file beside the target, fsynced, then renamed over it. The
temporary file gets the mode of the file it replaces, or the one a plain `open()` would give
(0666 minus the umask), not mkstemp's 0600. A stream (/dev/stdout, a FIFO, a device) is written
into directly. No torch here, so the data layer can use it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import os
import re
import signal
import socket
import stat
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO


def new_file_mode() -> int:
    """The mode `open(path, "w")` gives a new file under the current umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def give_new_file_mode(paths: Iterable[Path]) -> None:
    """Files written with a mode of their own (transformers saves weights 0600) get the mode any
    new file gets here: a model is read by whoever may read its folder (a server, a colleague)."""
    mode = new_file_mode()
    for path in paths:
        path.chmod(mode)


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """A failed write names its file: the OS error of a write or flush has no filename ("[Errno
    28] No space left on device" said nothing of which output)."""
    try:
        yield
    except OSError as e:
        if e.filename is not None or e.errno is None:
            raise
        raise OSError(e.errno, e.strerror, str(path)) from e


class AtomicFile:
    """A text file written under a temporary name and renamed into place by `commit`;
    `discard` (or leaving a `with` block by an exception) removes it and keeps the old file.

    A symlink is followed (its target is replaced, the link stays). A device, FIFO or socket
    (`/dev/null`, a pipe) is written directly: renaming a file over it would replace the device
    itself; a descriptor path (/dev/stdout) through a copy of the descriptor. Temporary files of writers that died (kill -9) are cleared by the next writer of the
    same file on this host."""

    def __init__(self, path: str | os.PathLike[str]):
        given = os.path.abspath(path)
        self.path = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
        stream = descriptor_path(given)
        self.tmp: str | None = None  # the temporary file; None for a stream, written directly
        if stream is not None or _special(self.path):
            self.fh = _open_stream(stream) if stream else open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by commit/discard
            return
        if self.path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "Is a directory", str(self.path))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _clear_stale_temporaries(self.path)
        # a file replaced keeps its mode (a private 0600 file stays private)
        mode = stat.S_IMODE(self.path.stat().st_mode) if self.path.is_file() else new_file_mode()
        fd = None
        try:
            # Ctrl-C or SIGTERM between mkstemp and the end of __init__ would leave the temporary
            # file with no owner to remove it: they wait, then arrive here, where it is removed
            with held_signals():
                fd, self.tmp = tempfile.mkstemp(
                    prefix=_temp_prefix(self.path), suffix=".tmp", dir=self.path.parent
                )
                os.fchmod(fd, mode)
                self.fh = os.fdopen(fd, "w", encoding="utf-8")
        except BaseException:
            if getattr(self, "fh", None) is not None:
                self.fh.close()
            elif fd is not None:
                os.close(fd)
            if self.tmp is not None:
                Path(self.tmp).unlink(missing_ok=True)
            raise

    @property
    def direct(self) -> bool:
        return self.tmp is None

    def write(self, text: str) -> None:
        with _naming(self.path):
            self.fh.write(text)
            if self.direct:  # a stream shared with other outputs: each text out in the order written
                self.fh.flush()

    def sync(self) -> None:
        """Everything written is on disk (where a full disk fails), not yet in place."""
        with _naming(self.path):
            self.fh.flush()
            if not self.direct:
                os.fsync(self.fh.fileno())

    def _place(self) -> None:
        self.fh.close()
        if self.tmp is not None:
            os.replace(self.tmp, self.path)

    def commit(self) -> None:
        try:
            self.sync()
            self._place()
        except BaseException:
            self.discard()  # a full disk at the last write: no temporary file left behind
            raise

    def discard(self) -> None:
        try:
            if not self.fh.closed:
                self.fh.close()
        except OSError:  # its unwritten buffer cannot be written (a full disk): it goes anyway
            pass
        finally:
            if self.tmp is not None:
                Path(self.tmp).unlink(missing_ok=True)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


DESCRIPTOR_PATH = re.compile(
    r"/dev/(?P<std>stdout|stderr)|/dev/fd/(?P<fd>\d+)"
    r"|/proc/(?P<pid>self|thread-self|\d+)(?:/task/\d+)?/fd/(?P<pfd>\d+)"
)
STANDARD_FDS = {"stdout": 1, "stderr": 2}


def descriptor_path(path: str | os.PathLike[str]) -> str | None:
    """The descriptor path (/dev/stdout, /dev/fd/N, /proc/PID/fd/N) that `path` names, through
    any links on the way, or None. What the shell opened there (a file opened with > or >>, a
    pipe) is written into, as a shell redirect would. Other /dev and /proc paths (/dev/shm/x,
    /proc/self/cwd/x) are files like any."""
    here = os.path.abspath(path)
    for _ in range(40):
        # folders resolved (a link to /proc/self/fd, /dev/fd itself), the last part kept as named
        here = os.path.join(os.path.realpath(os.path.dirname(here)), os.path.basename(here))
        if DESCRIPTOR_PATH.fullmatch(here):
            return here
        if not os.path.islink(here):
            return None
        here = os.path.join(os.path.dirname(here), os.readlink(here))
    return None


def _special(path: Path) -> bool:
    """A device, FIFO or socket (`/dev/null`, a named pipe)."""
    return path.exists() and not (path.is_file() or path.is_dir())


def is_stream(path: str | os.PathLike[str]) -> bool:
    """An output written into as it is (a descriptor such as /dev/stdout, a device, a FIFO): a
    file named after it (`OUTPUT.rejected.jsonl`) would land beside the device, in /dev."""
    return descriptor_path(path) is not None or _special(Path(path))


def own_descriptor_of(path: str | os.PathLike[str]) -> int | None:
    """This process's descriptor number that `path` names (through links), or None."""
    stream = descriptor_path(path)
    return None if stream is None else _own_descriptor(stream)


def _own_descriptor(stream: str) -> int | None:
    """This process's descriptor number that `stream` names, or None (another process's)."""
    found = DESCRIPTOR_PATH.fullmatch(stream)
    if found is None:
        return None
    if found["std"]:
        return STANDARD_FDS[found["std"]]
    if found["fd"]:
        return int(found["fd"])
    if found["pid"] in ("self", "thread-self", str(os.getpid())):
        return int(found["pfd"])
    return None


# The descriptors open when a command started (`note_inherited_descriptors`, called by the CLI
# before it opens any file): a descriptor path naming another number would write into one of
# the command's own files, such as the temporary file of another output.
INHERITED_DESCRIPTORS: set[int] | None = None


def note_inherited_descriptors() -> None:
    global INHERITED_DESCRIPTORS
    try:
        listing = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # no /proc: only the check of each descriptor's own flags
        INHERITED_DESCRIPTORS = None
        return
    try:  # the listing's own descriptors (1 if stdout is closed) aside: `listing` and its copy
        names = {int(name) for name in os.listdir(listing)} - {listing}
    finally:
        os.close(listing)
    INHERITED_DESCRIPTORS = {fd for fd in names if _is_open(fd)}


def _is_open(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError:
        return False
    return True


def separate_openings_of_one_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True if descriptor paths `a` and `b` are one regular file opened twice (`>f 3>f`): each
    has its own offset, so their writes land over each other. One opening shared (`2>&1`), two
    openings that both append, a terminal or a pipe take both in order."""
    fds = [own_descriptor_of(a), own_descriptor_of(b)]
    if None in fds:
        return False
    try:
        first, second = (os.fstat(fd) for fd in fds)
        if not (
            stat.S_ISREG(first.st_mode) and (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)
        ):
            return False
        if all(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND for fd in fds):
            return False  # both append (>>f 3>>f): every write goes to the end, none over another
        # one opening has one offset: different offsets are two openings; equal ones, move the
        # first's and see whether the second's moves with it
        here = os.lseek(fds[0], 0, os.SEEK_CUR)
        if os.lseek(fds[1], 0, os.SEEK_CUR) != here:
            return True
        os.lseek(fds[0], here + 1, os.SEEK_SET)
        try:
            shared = os.lseek(fds[1], 0, os.SEEK_CUR) == here + 1
        finally:
            os.lseek(fds[0], here, os.SEEK_SET)
    except OSError:
        return False
    return not shared


def stream_problem(path: str | os.PathLike[str]) -> str | None:
    """Why our descriptor that `path` names cannot take the output (closed, not ours from the
    start, read-only), or None. Asked before any work, and again when the file is opened."""
    fd = own_descriptor_of(path)
    return None if fd is None else _descriptor_problem(fd)


def _descriptor_problem(fd: int) -> str | None:
    if INHERITED_DESCRIPTORS is not None and fd not in INHERITED_DESCRIPTORS:
        return f"descriptor {fd} was not open when rewardforge started"
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except OSError:
        return f"descriptor {fd} is not open"
    if flags & os.O_ACCMODE == os.O_RDONLY:
        return f"descriptor {fd} is open for reading only"
    return None


def _open_stream(stream: str) -> TextIO:
    """Write through a copy of our own descriptor, not a new opening of its path: a file the
    shell opened with `>` has one offset for us and for the program's own prints, so nothing
    either writes lands over the other. What Python has buffered for it goes out first."""
    fd = _own_descriptor(stream)
    if fd is None:
        return open(stream, "a", encoding="utf-8")  # noqa: SIM115 - closed by commit/discard
    problem = _descriptor_problem(fd)
    if problem:
        raise OSError(errno.EBADF, problem, stream)
    for std in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            std.flush()
    return os.fdopen(os.dup(fd), "w", encoding="utf-8")


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{socket.gethostname()}-{os.getpid()}."


def _clear_stale_temporaries(path: Path) -> None:
    """Remove temporary files of `path` left by processes of this host that no longer run (only
    `path`'s own: mkstemp's random part has no dot, so `a.host-9`'s temporaries do not match)."""
    own = re.compile(
        rf"\.{re.escape(path.name)}\.{re.escape(socket.gethostname())}-(\d+)\.[A-Za-z0-9_]+\.tmp"
    )
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        found = own.fullmatch(tmp.name)
        if found and not _running(int(found.group(1))):
            tmp.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def write_together(texts: dict[Path, str | None]) -> None:
    """Write several files as one: every text goes to its temporary file first, and only when all
    are written are they renamed into place (and the files given None removed), with Ctrl-C and
    SIGTERM held for the renames alone (a pipe with no reader may block the writing, which stays
    interruptible). A failure (a full disk, a folder in a file's place) leaves every old file as
    it was, not some new files beside old ones."""
    pending: list[AtomicFile] = []
    try:
        for path, text in texts.items():
            if text is not None:
                pending.append(AtomicFile(path))
                pending[-1].write(text)
    except BaseException:
        for f in pending:
            f.discard()
        raise
    commit_together(pending, remove=[Path(p) for p, text in texts.items() if text is None])


def commit_together(files: list[AtomicFile], remove: list[Path] = ()) -> None:
    """Put written files in place as one: all are flushed to disk first (where a full disk
    fails), then renamed, with Ctrl-C and SIGTERM held; on failure all are discarded."""
    try:
        for f in files:
            f.sync()
        with held_signals():
            for f in files:
                f._place()
            for path in remove:
                path.unlink(missing_ok=True)
    except BaseException:
        for f in files:
            f.discard()
        raise


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
