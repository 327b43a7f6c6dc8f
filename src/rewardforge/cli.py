"""`rewardforge <command>`: the single entry point. Bad input exits 2 with one clear line."""

from __future__ import annotations

import errno
import functools
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

COMMANDS: dict[str, tuple[str, str]] = {
    # name: (module:function, one-line summary)
    "train": (
        "rewardforge.commands.train:main",
        "train a Bradley-Terry reward model from pairwise preferences",
    ),
    "eval": (
        "rewardforge.commands.eval:main",
        "evaluate reward models: metrics, per-pair scores, HTML report",
    ),
    "score": ("rewardforge.commands.score:main", "score prompt/response items from a file (streaming)"),
    "serve": ("rewardforge.commands.serve:main", "serve a reward model over HTTP with dynamic batching"),
    "rlhf": ("rewardforge.commands.rlhf:main", "optimise a policy against a reward model (GRPO or ScaleRL)"),
    "bon": ("rewardforge.commands.bon:main", "best-of-N: sample N responses per prompt, keep the RM's best"),
}

EXIT_BAD_INPUT = 2
EXIT_TRAINING_FAILED = 3

USAGE = """usage: rewardforge <command> [options]

Train, evaluate, serve and use Bradley-Terry reward models.

commands:
{commands}

Run `rewardforge <command> --help` for every option of a command.
With no options, `rewardforge train` trains all-MiniLM-L6-v2 on a small built-in preference set
and prints its held-out accuracy (a 2-minute CPU demo).
"""


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [f"  {name.ljust(width)}  {summary}" for name, (_, summary) in COMMANDS.items()]
    return USAGE.format(commands="\n".join(lines))


def _load(target: str) -> Callable[[list[str]], int]:
    import importlib

    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def known_errors() -> tuple[type[BaseException], ...]:
    """Errors caused by the user's input or options: reported in one line, exit code 2."""
    from rewardforge.data.errors import DataError, DataOptionError
    from rewardforge.modeling import ModelLoadError
    from rewardforge.training.run import UsageError

    # a user's env reward failing (rlhf and bon): its module is only imported by those commands
    env_rewards = sys.modules.get("rewardforge.rlhf.env_rewards")
    extra = (env_rewards.EnvRewardError,) if env_rewards is not None else ()
    return (DataError, DataOptionError, ModelLoadError, UsageError, FileNotFoundError, *extra)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    if argv[0] in {"-V", "--version"}:
        from rewardforge import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"rewardforge: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return EXIT_BAD_INPUT
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from rewardforge import files

    files.note_inherited_descriptors()  # before the command opens any file
    command = _load(COMMANDS[name][0])
    previous = _terminate_cleanly() if name in CLEAN_ON_SIGTERM else None
    hook = sys.unraisablehook
    sys.unraisablehook = functools.partial(_redeliver_if_swallowed, hook)
    try:
        return int(command(negative_values_joined(rest)) or 0)
    except KeyboardInterrupt:
        print(f"rewardforge: interrupted{_resume_hint(name)}", file=sys.stderr)
        return 130
    except Terminated:
        print(f"rewardforge: terminated{_resume_hint(name)}", file=sys.stderr)
        return 128 + signal.SIGTERM
    except Exception as e:  # noqa: BLE001 - only known kinds are turned into clean messages
        from rewardforge.training.trainer import NonFiniteLossError

        if isinstance(e, known_errors()):
            print(f"rewardforge {name}: error: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
        failure = write_failure(e)
        if failure:  # the disk, not rewardforge
            print(f"rewardforge {name}: error: {failure}", file=sys.stderr)
            return 1
        if isinstance(e, NonFiniteLossError):
            print(
                f"rewardforge {name}: training stopped: {e}. Checkpoints written so far are intact.",
                file=sys.stderr,
            )
            return EXIT_TRAINING_FAILED
        raise
    finally:
        files.INHERITED_DESCRIPTORS = None
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        sys.unraisablehook = hook


# Why a write fails on a machine, not in rewardforge: one line, exit 1, no traceback.
WRITE_FAILURES = {
    errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO, errno.EISDIR,
    errno.ENOTDIR, errno.ELOOP, errno.EPIPE, errno.EBADF,
}  # fmt: skip

# os error N in the message of an error that is no OSError (the Rust writers of safetensors and
# tokenizers); torch.save's writer reports a short write without errno
OS_ERROR_NUMBER = re.compile(r"os error (\d+)")
TORCH_WRITE_FAILURE = re.compile(r"PytorchStreamWriter failed writing|inline_container\.cc.*unexpected pos")


def write_failure(e: BaseException) -> str | None:
    """The message of a write the machine refused (a full disk, a read-only folder), or None.
    Not every writer raises an OSError: safetensors' SafetensorError and the tokenizers library's
    Exception say "(os error 28)", torch.save's RuntimeError a short write; and libraries may
    wrap the OSError in another exception."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError):
            if e.errno in WRITE_FAILURES:
                return str(e)
        elif (number := OS_ERROR_NUMBER.search(str(e))) and int(number.group(1)) in WRITE_FAILURES:
            return f"writing the model's files: {_first_line(e)}"  # safetensors', tokenizers' errors
        elif isinstance(e, RuntimeError) and TORCH_WRITE_FAILURE.search(str(e)):
            return f"torch could not write a checkpoint file (is the disk full?): {_first_line(e)}"
        e = e.__cause__ or e.__context__
    return None


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _resume_hint(name: str) -> str:
    if name in ("train", "rlhf"):
        return "; the same command with --resume continues from the newest checkpoint"
    return ""


# Commands that unwind on SIGTERM (removing temporary files, a folder the run created) as on
# Ctrl-C: what schedulers and `docker stop` send. serve only while its model loads (it was killed
# without a word); once it listens, uvicorn handles the signal. The trainers only as one process:
# under torchrun or accelerate the launcher tears its workers down.
CLEAN_ON_SIGTERM = {"score", "eval", "bon", "serve", "train", "rlhf"}


NEGATIVE_NUMBER = re.compile(r"-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|-(inf|infinity|nan)", re.IGNORECASE)


def negative_values_joined(argv: list[str]) -> list[str]:
    """A negative number after an option is its value (`--learning-rate -1e-3`): argparse reads
    "-1e-3" as an option and says "expected one argument", where the option's own check says
    what is wrong. No command takes positional arguments, so nothing else is meant."""
    out: list[str] = []
    for i, a in enumerate(argv):
        after = argv[i + 1] if i + 1 < len(argv) else ""
        # (several negative numbers in a row are one option's list: `--label_names -1 -2`)
        if (
            out
            and out[-1].startswith("--")
            and "=" not in out[-1]
            and NEGATIVE_NUMBER.fullmatch(a)
            and not NEGATIVE_NUMBER.fullmatch(after)
        ):
            out[-1] = f"{out[-1]}={a}"
        else:
            out.append(a)
    return out


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so `finally` blocks and context managers run."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def _redeliver_if_swallowed(otherwise: Callable[[Any], None], unraisable: Any) -> None:
    """Python swallows an exception raised inside `__del__` (regex's objects run many while
    transformers imports): a SIGTERM or Ctrl-C landing there was lost and the run went on to
    exit 0. The signal is sent again a moment later, to land in ordinary code."""
    for kind, signum in ((Terminated, signal.SIGTERM), (KeyboardInterrupt, signal.SIGINT)):
        if isinstance(unraisable.exc_value, kind):
            threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
            return
    otherwise(unraisable)  # (the hook before: Python's, or a test runner's)


def _terminate_cleanly() -> Any:
    if threading.current_thread() is not threading.main_thread() or "LOCAL_RANK" in os.environ:
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


if __name__ == "__main__":
    sys.exit(main())
