"""User processors: a small class that turns records of a user's own format into pairs.

`load_processor("my_format.py:MyProcessor")` or `load_processor("pkg.module:MyProcessor")`
imports the class and returns an instance; the loader then calls `to_pair` on every record.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rewardforge.data.errors import DataError, DataOptionError
from rewardforge.data.types import PreferencePair


class PreferenceProcessor:
    """Base class for reading a preference format rewardforge does not know.

    Subclass it and implement `to_pair(record) -> PreferencePair | dict | None`:

    - return a `PreferencePair` built yourself (it is validated like any other row);
    - or return a dict in one of the built-in shapes (e.g. {"prompt", "chosen", "rejected"}),
      which is then detected and normalised exactly like a record from a file;
    - or return None to skip the record on purpose (counted in `LoadedPairs.skipped_by_processor`);
    - raise `ValueError("why")` for a bad record: it becomes an invalid row with that reason
      (raised at once, or collected in `LoadedPairs.rejected` with `skip_invalid=True`).
      Any other exception from `to_pair` (a `KeyError` for a record that lacks a field, say)
      makes an invalid row too, named by its type and message.

    Records come from the usual readers (JSONL, JSON, CSV, Parquet, saved datasets, hf:). A CSV
    cell is text ("10", not 10): convert numbers yourself, as the example does, since "10" > "9"
    is false.
    To read files of your own, also override `read(spec)` to yield `(location, record)`
    tuples, where location is something a user can find again, like "line 12".

    Example (``my_format.py``, used as ``processor="my_format.py:Votes"``)::

        from rewardforge.data import PreferenceProcessor

        class Votes(PreferenceProcessor):
            def to_pair(self, record):
                votes_a, votes_b = float(record["votes_a"]), float(record["votes_b"])  # CSV: text
                if votes_a == votes_b:
                    return None  # a tie says nothing about preference
                a_wins = votes_a > votes_b
                return {
                    "prompt": record["question"],
                    "chosen": record["a"] if a_wins else record["b"],
                    "rejected": record["b"] if a_wins else record["a"],
                }

    The class is instantiated with no arguments.
    """

    def to_pair(self, record: Any) -> PreferencePair | dict | None:
        raise NotImplementedError(f"{type(self).__name__} must implement to_pair(record)")

    def read(self, spec: str) -> Iterable[tuple[str, Any]]:
        """Yield (location, record). The default uses the built-in readers (see `iter_records`)."""
        from rewardforge.data.readers import iter_records

        return iter_records(spec)


def overrides_read(processor: PreferenceProcessor) -> bool:
    """True if the processor reads its own files (the loader then does not use the built-in readers)."""
    return type(processor).read is not PreferenceProcessor.read


def _import_file(path: Path, ref: str) -> Any:
    if not path.is_file():
        raise DataError(str(path), f"processor file not found (from {ref!r})")
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"rewardforge_user_processor_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise DataError(str(path), "cannot import this file as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up here
    _on_import_path(str(path.resolve().parent))  # its own helpers beside it, as `python file.py` finds them
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's code: any failure on import
        del sys.modules[name]
        raise DataOptionError(f"processor file {path} raised on import: {type(exc).__name__}: {exc}") from exc
    return module


def _on_import_path(folder: str) -> None:
    """After the installed packages: a user's file never shadows a library rewardforge imports later."""
    if folder not in sys.path:
        sys.path.append(folder)


def load_processor(ref: str | PreferenceProcessor | type[PreferenceProcessor]) -> PreferenceProcessor:
    """Import "path/to/file.py:ClassName" or "pkg.module:ClassName" and return an instance; in
    Python, an instance or a subclass itself is taken as it is."""
    if isinstance(ref, PreferenceProcessor):
        return ref
    if isinstance(ref, type) and issubclass(ref, PreferenceProcessor):
        return _instance(ref, ref.__qualname__)
    if not isinstance(ref, str):
        raise TypeError(
            "processor is 'path/to/file.py:ClassName', 'module:ClassName', or a PreferenceProcessor "
            f"(instance or subclass), got {type(ref).__name__}"
        )
    where, sep, class_name = ref.rpartition(":")
    if not sep or not where or not class_name.isidentifier():
        raise DataOptionError(
            f"bad processor reference {ref!r}: expected 'path/to/file.py:ClassName' or 'pkg.module:ClassName'"
        )
    is_file = where.endswith(".py") or "/" in where or "\\" in where
    if is_file:
        module = _import_file(Path(where), ref)
    else:
        _on_import_path(os.getcwd())  # as `python -m` finds a module here (the console script does not)
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (where == exc.name or where.startswith(exc.name + ".")):
                raise DataOptionError(
                    f"processor module {where!r} not found ({exc}); a module is looked for in the current "
                    "folder and on PYTHONPATH, or give the file: path/to/file.py:ClassName"
                ) from exc
            raise DataOptionError(  # the module is there; something it imports is not
                f"processor module {where!r} raised on import: {type(exc).__name__}: {exc}"
            ) from exc
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's code: any failure on import
            raise DataOptionError(
                f"processor module {where!r} raised on import: {type(exc).__name__}: {exc}"
            ) from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise DataOptionError(f"{where!r} has no attribute {class_name!r} (from processor {ref!r})")
    if not (isinstance(cls, type) and issubclass(cls, PreferenceProcessor)):
        raise DataOptionError(f"{ref!r} is not a subclass of rewardforge.data.PreferenceProcessor")
    return _instance(cls, ref)


def _instance(cls: type[PreferenceProcessor], ref: str) -> PreferenceProcessor:
    if cls.to_pair is PreferenceProcessor.to_pair:
        raise DataOptionError(f"{ref!r} does not implement to_pair(record)")
    try:
        return cls()
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's __init__
        raise DataOptionError(
            f"processor {ref!r} could not be created with no arguments: {type(exc).__name__}: {exc}"
        ) from exc
