"""Checks shared by the score, serve, bon and rlhf commands.

- `integer` / `number` build argparse `type=` functions: a value that is not a number, is nan or
  inf, or is out of range is refused while the arguments are parsed (exit 2, the message names
  the option), before anything is loaded.
- `check_output_file` / `check_output_dir` / `same_path` / `check_device` run before the long
  work starts and raise the CLI's `UsageError` (exit 2, one line), so a run never does all its
  work and then fails to write the result.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import fnmatch
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from rewardforge.files import is_stream, own_descriptor_of, separate_openings_of_one_file, stream_problem


class DefaultsHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """--help says each option's default (unless its text already does, or it has none), and
    keeps the description's own line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            action.option_strings
            and action.nargs != 0  # a flag: its absence is the default
            and default not in (None, argparse.SUPPRESS, "")
            and default is not False  # an option left off
            and default != []  # an option that collects values
            and "default" not in text.lower()
        ):
            text += " (default: %(default)s)"
        return text


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line on stderr and exit code 2, without
    argparse's usage block: the line names the option, --help has the rest."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def usage_error(message: str) -> Exception:
    """A `rewardforge.training.run.UsageError` (imported lazily: it pulls in transformers)."""
    from rewardforge.training.run import UsageError

    return UsageError(message)


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _bounds(low: float | None, high: float | None, above: float | None) -> str:
    if low is not None and high is not None:
        return f"from {_num(low)} to {_num(high)}"
    parts = [
        f"> {_num(above)}" if above is not None else None,
        f">= {_num(low)}" if low is not None else None,
    ]
    parts.append(f"<= {_num(high)}" if high is not None else None)
    return " and ".join(p for p in parts if p)


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """argparse type: an integer in [low, high] (either bound optional)."""
    wanted = " ".join(filter(None, ("an integer", _bounds(low, high, None))))

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {value}")
        return value

    return parse


def number(
    low: float | None = None, high: float | None = None, *, above: float | None = None
) -> Callable[[str], float]:
    """argparse type: a finite number, at least `low` (or greater than `above`), at most `high`."""
    wanted = " ".join(filter(None, ("a finite number", _bounds(low, high, above))))

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if (
            not math.isfinite(value)
            or (above is not None and value <= above)
            or (low is not None and value < low)
            or (high is not None and value > high)
        ):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text}")
        return value

    return parse


def path_text(text: str) -> str:
    """argparse type for a path: an empty one would silently mean the working directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return text


def output_file_text(text: str) -> str:
    """argparse type for a file a command writes: `-` is standard output, as in most Unix tools
    (it made a file named `-`)."""
    return "/dev/stdout" if path_text(text) == "-" else text


def shown(path: str | os.PathLike) -> str:
    """An output path as the user wrote it: standard output is `-`."""
    return "-" if os.fspath(path) == "/dev/stdout" else os.fspath(path)


MODEL_MARKERS = ("config.json", "rewardforge.json", "adapter_config.json")


# The names save_pretrained (and rewardforge) write for a model, its tokenizer or its adapter:
# exact names, so a user's model_backup.safetensors or vocab.jsonl beside them is not one.
MODEL_FILE = re.compile(
    r"(?:model|pytorch_model|adapter_model)(?:-\d{5}-of-\d{5})?\.(?:safetensors|bin)"
    r"|(?:model\.safetensors|pytorch_model\.bin)\.index\.json"
    r"|config\.json|generation_config\.json|adapter_config\.json|rewardforge\.json"
    r"|tokenizer\.json|tokenizer_config\.json|tokenizer\.model|special_tokens_map\.json|added_tokens\.json"
    r"|vocab\.txt|vocab\.json|merges\.txt|spiece\.model|sentencepiece\.bpe\.model"
    r"|chat_template\.jinja|chat_template\.json"
)


def holds_model(folder: Path) -> bool:
    """A folder with a model's files (a saved model, a checkpoint or an adapter)."""
    return any((folder / marker).is_file() for marker in MODEL_MARKERS)


def check_not_inside(path: str | os.PathLike, folder: str | os.PathLike, option: str, what: str) -> None:
    """`path` does not write among a model's files: not into `folder` itself nor into any folder
    below it that holds a model (a checkpoint); a plain subfolder, like eval's `MODEL/eval/`, is fine."""
    target, home = Path(os.path.realpath(path)), Path(os.path.realpath(folder))  # no error on a link loop
    if not home.is_dir() or not (target == home or home in target.parents):
        return
    if target == home or target.parent == home or holds_model(target.parent):
        raise usage_error(f"{option} {path} would write among the files of the {what} folder {folder}")


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True if `a` and `b` name the same file or folder (after resolving links, `..`, and for
    existing files also hard links). Two streams are the same only as one regular file opened
    twice (`>f 3>f`): /dev/stdout and /dev/stderr on one terminal, or with 2>&1, take what is
    written into them in order; one descriptor named twice is one output."""
    if is_stream(a) and is_stream(b):
        # one descriptor named twice (`--output - --rejects -`): one output asked to hold two
        one = own_descriptor_of(a)
        return (one is not None and one == own_descriptor_of(b)) or separate_openings_of_one_file(a, b)
    pa, pb = Path(os.path.realpath(a)), Path(os.path.realpath(b))  # realpath: no error on a link loop
    if pa == pb:
        return True
    try:
        return pa.exists() and pb.exists() and os.path.samefile(pa, pb)
    except OSError:
        return False


def _check_can_write_in(folder: Path, option: str, target: Path) -> None:
    """`folder` exists and takes a new file, or can be created (its nearest existing ancestor is
    a folder that takes a new file). Checked by creating and removing a temporary file."""
    existing = Path(os.path.abspath(folder))
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise usage_error(f"{option} {target}: {existing} is not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".rewardforge-write-check-", dir=existing)
    except OSError as e:
        raise usage_error(f"{option} {target}: cannot write in {existing}: {e.strerror or e}") from None
    os.close(fd)
    os.unlink(tmp)


def check_output_file(path: str | os.PathLike, option: str = "--output") -> None:
    """A file can be written (atomically, via a temporary file beside it) at `path`; a symlink's
    target is what is written, so its folder is the one checked."""
    path = Path(path)
    _refuse_link_loop(path, option)
    if path.is_dir():
        raise usage_error(f"{option} {path} is a folder; give a file name")
    if is_stream(path):  # a stream or device: written into directly, nothing beside it
        problem = stream_problem(path)
        if problem:
            raise usage_error(f"{option} {path}: {problem}")
        return
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    if target.is_file() and _model_file(target.name) and holds_model(target.parent):
        # helper 70: `score --output MODEL/config.json` replaced a model's config with scores
        raise usage_error(
            f"{option} {path} would replace {target.name} of the model in {target.parent}; choose another file"
        )
    if target.is_file() and target.name in EVAL_FILES and (target.parent / "eval_config.json").is_file():
        # helper 93: an eval folder's results (no model there) were replaced by scores
        raise usage_error(
            f"{option} {path} would replace {target.name} of the evaluation in {target.parent}; "
            "choose another file"
        )
    _check_can_write_in(target.parent, option, path)


# What `rewardforge eval` writes in its --output folder.
EVAL_FILES = ("scores.jsonl", "metrics.json", "report.html", "eval_config.json", "rejected_rows.jsonl")

# What `rewardforge train` writes beside its model (and checkpoints).
RUN_FILES = (
    "rewardforge.json",
    "train_metrics.jsonl",
    "metrics.json",
    "rejected_rows.jsonl",
    "run_config.json",
)
# the files an RLHF run writes as it goes: a folder holding them holds a run (rollouts.rankN.jsonl too)
RUN_LOGS = ("train_log.jsonl", "rollouts*.jsonl", "summary.json")


def _model_file(name: str) -> bool:
    """A file of a model folder: one save_pretrained or rewardforge writes, a run's record (its
    metrics, the config `--config` reads again: scores written over them lost it, helper 90), or
    any weights or training state (a checkpoint's optimizer.pt, rng_state.pth, trainer_state.json)."""
    return (
        bool(MODEL_FILE.fullmatch(name))
        or name in (*RUN_FILES, "trainer_state.json")
        or any(fnmatch.fnmatch(name, pattern) for pattern in RUN_LOGS)
        or name.endswith((".safetensors", ".bin", ".pt", ".pth", ".gguf"))
    )


def _refuse_link_loop(path: Path, option: str) -> None:
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except FileNotFoundError:
            pass  # a link to a file yet to be written
        except (RuntimeError, OSError):
            raise usage_error(f"{option} {path} is a symlink loop") from None


def check_output_dir(path: str | os.PathLike, option: str = "--output") -> None:
    """`path` is a folder (or can be created as one) that takes new files."""
    path = Path(path)
    _refuse_link_loop(path, option)
    if path.exists() and not path.is_dir():
        raise usage_error(f"{option} {path} exists and is not a folder")
    _check_can_write_in(path, option, path)


@contextlib.contextmanager
def held_output_dir(
    path: str | os.PathLike, option: str = "--output", *, single_process: bool = False
) -> Iterator[None]:
    """Create the run's folder and hold it while the run writes (an flock on the folder itself,
    released when the process ends, even by kill -9): a second run into it at the same time is
    refused, where both passed the "already holds a run" check and their logs mixed. A run that
    fails removes the folders it created if they are still empty (a typo in --output leaves
    nothing behind), before it lets go of the lock; one refused by the lock removes nothing.
    The main process of a multi-process run holds the folder for all; a `single_process`
    command (eval) holds it whatever RANK its environment has."""
    path = Path(path)
    check_output_dir(path, option)
    created = _folders_mkdir_would_create(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a dangling symlink: mkdir cannot go through it
        raise usage_error(
            f"{option} {path} is a symlink to a missing folder; create it or choose another"
        ) from None
    main = single_process or os.environ.get("RANK", "0") == "0"  # (a job script's RANK: not eval's)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY) if main else None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise usage_error(
                    f"{option} {path} is in use: another run is writing into it now; wait for it to end or "
                    "choose another folder"
                ) from None
            except OSError:  # a file system without flock (some network mounts): run unguarded
                pass
        try:
            yield
        except BaseException:
            if main:
                for folder in created:  # rmdir refuses a folder that holds anything
                    try:
                        folder.rmdir()
                    except OSError:
                        pass
            raise
    finally:
        if fd is not None:
            os.close(fd)


def _folders_mkdir_would_create(path: Path) -> list[Path]:
    """The folders `path.mkdir(parents=True)` creates, innermost first. It makes every missing
    folder the path names, also one it only passes through (zz in zz/../yy), and each lands
    where the system resolves it (after symlinks): the path's own normalised form (yy) says
    neither."""
    literal = path if path.is_absolute() else Path.cwd() / path
    missing = []
    for folder in (literal, *literal.parents):
        if folder.name in ("..", "."):
            continue
        real = Path(os.path.realpath(folder))
        if not real.exists() and real not in missing:
            missing.append(real)
    return missing


def check_device(device: str | None, option: str = "--device") -> None:
    """`device` (None: the default) exists on this machine; else a UsageError naming the option
    and the devices there are."""
    if device is None:
        return
    from rewardforge.inference import resolve_device

    try:
        resolve_device(device)
    except ValueError as e:
        raise usage_error(f"{option} {e}") from None
