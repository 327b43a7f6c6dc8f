"""The output folder of a run: one run (or model) per folder unless --overwrite, checkpoints to
resume from, and the checks that a resumed run is the run it continues."""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from transformers import TrainingArguments

from rewardforge.commands.checks import EVAL_FILES, MODEL_FILE, RUN_FILES, check_output_dir, same_path
from rewardforge.files import atomic_write_text
from rewardforge.training.arguments import RewardArguments, UsageError
from rewardforge.training.trainer import STAGING_DIR

# what a run writes before its first checkpoint (no model yet)
UNFINISHED_RUN_FILES = ("train_metrics.jsonl", "rejected_rows.jsonl", "run_config.json")


def checkpoints(folder: Path) -> list[Path]:
    """The Trainer's checkpoint folders in `folder` (checkpoint-<step>), newest first; a folder of
    the user's such as checkpoint-best is none of them."""
    found = [p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.split("-", 1)[1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-", 1)[1]), reverse=True)


def checkpoint_of(path: str | Path, folder: Path) -> bool:
    """Whether `path` is one of `folder`'s own checkpoints (not one in a run nested inside it)."""
    return Path(path).resolve().parent == folder.resolve()


def prepare_output(output_dir: Path, args: RewardArguments) -> list[Path]:
    """Check that --output can take this run; never mix two runs (or a run and a model) in one
    folder unless asked to. Returns what --overwrite will remove, which `set_aside_previous_run`
    does only once the data and the model have loaded: a typo must not cost the old run."""
    check_output_dir(output_dir)
    if args.model and os.path.isdir(args.model) and same_path(args.model, output_dir):
        raise UsageError(
            f"--output {output_dir} is the --model folder: the run would write over the model it starts "
            "from; choose another folder"
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    for leftover in output_dir.glob(".save-*"):  # a final save that was killed (a whole model copy)
        if leftover.is_dir() and os.environ.get("LOCAL_RANK", "0") == "0":
            shutil.rmtree(leftover, ignore_errors=True)
    previous = sorted(
        {
            p
            for p in output_dir.iterdir()
            # a model's, adapter's or tokenizer's files: a run replaced by --overwrite must not
            # leave one behind for a scorer to load beside the new model; nor an evaluation's
            # scores of another model
            if p.is_file() and (p.name in RUN_FILES or p.name in EVAL_FILES or MODEL_FILE.fullmatch(p.name))
        }
        | set(checkpoints(output_dir))
        | {p for p in (output_dir / STAGING_DIR,) if p.is_dir()}
    )
    # a checkpoint of this folder's run continues it; one from elsewhere starts a run here, which
    # must not mix with (or silently replace) what the folder holds
    resumable = args.resume and (
        checkpoint_of(args.resume, output_dir)
        if args.resume != "last"
        else any(checkpoint_problem(c) is None for c in checkpoints(output_dir))
    )
    _refuse_inputs_among(  # a run that saves its model here deletes them
        replaced_runs(output_dir),
        args,
        f"{{option}} {{value}} is in a run that an --overwrite set aside in {output_dir}, which is deleted "
        "when a run there saves its model; move it out of that folder first",
    )
    for aside in replaced_runs(output_dir):
        print(
            f"[rewardforge] note: {aside} holds a run that an --overwrite replaced before its new run "
            "finished; it is deleted when a run in this folder saves its model (move its files back "
            "to keep it)"
        )
    if not previous or resumable:
        return []
    if args.resume == "last" and all(
        (p.is_file() and p.name in UNFINISHED_RUN_FILES) or p.name == STAGING_DIR for p in previous
    ):  # (a checkpoint still in .staging was never finished: killed while it was written)
        # a run killed before its first checkpoint left only its logs: nothing to continue and no
        # model to lose, so --resume starts it again (a preemptible job always passes --resume)
        return previous
    if not args.overwrite:
        shown = ", ".join(p.name for p in previous[:3])
        problems = "; ".join(f"{c.name}: {checkpoint_problem(c)}" for c in checkpoints(output_dir)[:3])
        nothing = (
            f"--resume: no checkpoint in {output_dir} to continue{f' ({problems})' if problems else ''}, and it "
            if args.resume == "last"
            else f"--resume {args.resume} is not a checkpoint of {output_dir}, which "
            if args.resume
            else ""
        )
        raise UsageError(
            f"{nothing or f'--output {output_dir} '}already holds a run or a model ({shown}); pass "
            f"{'' if args.resume else '--resume to continue a run, '}--overwrite to replace it, or choose "
            "another folder"
        )
    _refuse_inputs_among(
        previous,
        args,
        f"--overwrite would delete {{option}} {{value}}: it is part of the run in {output_dir}",
    )
    return previous


def _refuse_inputs_among(doomed: list[Path], args: RewardArguments, message: str) -> None:
    """Nothing this run reads may lie among what it deletes (`message` names option and value)."""
    resume = args.resume if args.resume not in (None, "last") else None
    inputs = (
        ("--model", args.model),
        ("--data", args.data),
        ("--eval-data", args.eval_data),
        ("--resume", resume),
    )
    from rewardforge.data.readers import split_local_spec

    for option, value in inputs:
        local = split_local_spec(value)[0] if value else None  # PATH:SPLIT reads PATH
        path = Path(local).resolve() if local and os.path.exists(local) else None
        if path is not None and any(path == p.resolve() or p.resolve() in path.parents for p in doomed):
            raise UsageError(message.format(option=option, value=value))


REPLACED_PREFIX = ".replaced-"


def set_aside_previous_run(previous: list[Path], output_dir: Path, overwrite: bool) -> Path | None:
    """--overwrite: move the replaced run's files into a hidden folder of `output_dir` (main
    process only), so that a run that fails or is killed before its model is saved costs nothing:
    the old run is still there to move back. `drop_replaced_runs` deletes it once the new model
    is saved. Returns the folder (None when nothing was moved). Without --overwrite, `previous`
    is what a --resume restarts from nothing: the logs of a run killed before its first
    checkpoint, which hold no model, so they are simply removed."""
    if not previous or os.environ.get("RANK", "0") != "0":  # the main process of all nodes
        return None
    if not overwrite:
        for path in previous:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        return None
    aside = Path(tempfile.mkdtemp(prefix=REPLACED_PREFIX, dir=output_dir))
    for path in previous:
        if path.exists():
            os.replace(path, aside / path.name)  # same folder, same file system: a rename
    print(
        f"[rewardforge] --overwrite: the replaced run is kept in {aside} until this run's model is "
        "saved; if this run fails, move its files back to restore it"
    )
    return aside


def replaced_runs(output_dir: Path) -> list[Path]:
    """Runs that an --overwrite set aside and whose replacement never finished."""
    return sorted(p for p in output_dir.glob(f"{REPLACED_PREFIX}*") if p.is_dir())


def drop_replaced_runs(output_dir: Path) -> None:
    """The new run's model is saved: the runs --overwrite replaced in this folder can go."""
    if os.environ.get("RANK", "0") != "0":
        return
    for aside in replaced_runs(output_dir):
        shutil.rmtree(aside, ignore_errors=True)


def checkpoint_problem(path: Path) -> str | None:
    """Why a checkpoint folder cannot be resumed from (None if it can): files the Trainer needs."""
    state = path / "trainer_state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f"trainer_state.json is missing or unreadable ({type(e).__name__})"
    weights = [*path.glob("model*.safetensors"), *path.glob("adapter_model*"), *path.glob("pytorch_model*")]
    if not weights or all(w.is_file() and w.stat().st_size == 0 for w in weights):
        return "no model weights"
    for file in sorted(path.iterdir()):
        damage = _damage(file)
        if damage:
            return f"{file.name} is damaged ({damage})"
    engine_state = (
        any(path.glob("global_step*"))
        or any(path.glob("optimizer_*"))
        or any(path.glob("pytorch_model_fsdp*"))
    )
    if not engine_state:
        missing = [n for n in ("optimizer.pt", "scheduler.pt") if not (path / n).is_file()]
        if missing:
            return f"{' and '.join(missing)} missing (the optimizer would restart from scratch)"
    return None


def _damage(file: Path) -> str | None:
    """Why a weights or torch file cannot be read back (a write cut short), or None. Reads the
    safetensors header (which must cover the file) and checks each member of torch's zip files;
    once per version of the file (a resume asks twice)."""
    try:
        stat = file.stat()
    except OSError as exc:
        return type(exc).__name__
    return _damage_of(str(file), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _damage_of(name: str, size: int, mtime_ns: int) -> str | None:
    file = Path(name)
    try:
        if file.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(file), "pt") as f:
                f.keys()
        elif file.suffix in (".pt", ".pth", ".bin") and file.is_file():
            if not zipfile.is_zipfile(file):
                return "not a torch archive"
            with zipfile.ZipFile(file) as archive:
                bad = archive.testzip()
            if bad:
                return f"member {bad} fails its checksum"
    except Exception as exc:  # noqa: BLE001 - any failure to read it is damage
        return " ".join(str(exc).split())[:100] or type(exc).__name__
    return None


def find_resume_checkpoint(output_dir: Path, resume: str) -> str | None:
    """'last': the newest checkpoint in output_dir that can be resumed (a damaged newer one is
    reported and passed over); a path: that checkpoint, which must be complete."""
    if resume != "last":
        path = Path(resume)
        if not path.is_dir():
            raise UsageError(f"--resume {resume}: no such checkpoint folder")
        problem = checkpoint_problem(path)
        if problem:
            raise UsageError(f"--resume {resume}: cannot resume from it: {problem}")
        return str(path)
    for path in checkpoints(output_dir):
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path)
        print(f"[rewardforge] skipping {path.name}: {problem}")
    return None


RESUME_KEEPS = (  # what a resumed run must share with the run it continues
    "model", "train_data", "limit", "eval_split", "learning_rate", "lr_scheduler_type", "batch_size",
    "gradient_accumulation_steps", "max_length", "loss", "margin_from_scores", "lora", "seed", "precision",
    "optimizer", "warmup_steps", "warmup_ratio", "lr_scheduler_kwargs", "max_grad_norm", "dropout", "data_seed",
    "train_sampling_strategy",
)  # fmt: skip


def run_identity(
    args: RewardArguments, targs: TrainingArguments, data: dict[str, Any], model_source: str
) -> dict[str, Any]:
    """The settings that make a run what it is; a resume must not change them."""
    train = data["train"]
    return {
        "model": str(Path(model_source).resolve()) if os.path.exists(model_source) else model_source,
        "train_data": train.get("fingerprint") or train["source"],
        "limit": args.limit,
        "eval_split": args.eval_split,
        "learning_rate": targs.learning_rate,
        "lr_scheduler_type": str(getattr(targs.lr_scheduler_type, "value", targs.lr_scheduler_type)),
        "batch_size": targs.per_device_train_batch_size,
        "gradient_accumulation_steps": targs.gradient_accumulation_steps,
        "max_length": args.max_length,
        "loss": [args.beta, args.center_rewards, args.loss_label_smoothing],
        "margin_from_scores": args.margin_from_scores,
        "lora": [args.lora_r, args.lora_alpha, args.lora_dropout, args.lora_target_modules]
        if args.lora
        else None,
        "seed": targs.seed,
        "precision": [args.dtype, bool(targs.bf16), bool(targs.fp16)],
        # another optimizer cannot load the saved one's state (sgd: KeyError 'momentum')
        "optimizer": [
            str(getattr(targs.optim, "value", targs.optim)), targs.optim_args, targs.weight_decay,
            targs.adam_beta1, targs.adam_beta2, targs.adam_epsilon,
        ],
        # the learning rate at each step, and what each step sees
        "warmup_steps": targs.warmup_steps,
        "warmup_ratio": getattr(targs, "warmup_ratio", None),
        "lr_scheduler_kwargs": targs.lr_scheduler_kwargs or {},
        "max_grad_norm": targs.max_grad_norm,
        "dropout": "kept" if args.keep_dropout else "off",
        "data_seed": targs.data_seed,
        "train_sampling_strategy": str(getattr(targs, "train_sampling_strategy", None)),
    }  # fmt: skip


def _setting(key: str, value: Any) -> str:
    """A recorded setting as a user would name it (precision: "bf16 autocast", not a tuple)."""
    if key == "precision" and isinstance(value, list) and len(value) == 3:
        dtype, bf16, fp16 = value
        return "bf16 autocast" if bf16 else "fp16 autocast" if fp16 else str(dtype)
    return repr(value)


def _comparable(value: Any) -> str:
    """A setting as text that ignores how it was written: key order, 2 or 2.0."""

    def plain(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        return v

    return json.dumps(plain(value), sort_keys=True, default=str)


def check_same_run(config_path: Path, identity: dict[str, Any], checkpoint: str) -> dict[str, Any]:
    """--resume continues the run its checkpoints come from: other data, another learning rate or
    LoRA would give a model that no single run trained, recorded as this one (or crash)."""
    try:
        before = json.loads(config_path.read_text(encoding="utf-8")).get("identity")
    except (OSError, ValueError, AttributeError):
        before = None
    if not isinstance(before, dict):
        print(
            f"[rewardforge] {config_path} does not say how the run began: the resumed options are not checked"
        )
        return identity
    changed = [
        f"{key} {_setting(key, before.get(key))} -> {_setting(key, identity.get(key))}"
        for key in RESUME_KEEPS
        if key in before  # a run from before a key was recorded is not refused for it
        and _comparable(before.get(key)) != _comparable(identity.get(key))
    ]
    if changed:
        raise UsageError(
            f"--resume from {checkpoint}: the run was started with other settings ({'; '.join(changed)}); "
            "resume with the same ones, or start a new run (without --resume: --overwrite, or another --output)"
        )
    # the run's identity stays as it began: a key an older run did not record is not taken from a
    # resume that may yet fail (it would then refuse the right setting next time)
    return dict(before)


def repoint_best_checkpoint(checkpoint: str, state: dict[str, Any]) -> None:
    """The best checkpoint a resumed checkpoint's state names, in the checkpoint's own folder: the
    state holds the path as typed when it was saved (relative to another working directory, in a
    folder since moved, or the original of a copied run), and the Trainer forgets a best
    checkpoint it cannot find (saving the last model, rotating the best away) or keeps the
    original's. `state` is the checkpoint's trainer_state.json, changed here too."""
    best = state.get("best_model_checkpoint")
    if not best:
        return
    here = Path(checkpoint).parent / Path(best).name
    if Path(best).resolve() != here.resolve() and here.is_dir():  # a copy of the run points at the original
        state["best_model_checkpoint"] = str(here)  # (every process writes the same text before reading it)
        atomic_write_text(
            Path(checkpoint, "trainer_state.json"), json.dumps(state, indent=2, sort_keys=True) + "\n"
        )


def checkpoint_state(checkpoint: str | None) -> dict[str, Any]:
    """A checkpoint's trainer_state.json ({}: no checkpoint): the step it was saved at and the
    log records written by then."""
    if checkpoint is None:
        return {}
    return json.loads(Path(checkpoint, "trainer_state.json").read_text(encoding="utf-8"))


def restore_metrics_log(path: Path, log_history: list[dict[str, Any]]) -> None:
    """A resumed run's train_metrics.jsonl, up to its checkpoint, is the checkpoint's log history
    (one line per record, as the metrics callback writes them): what followed the checkpoint in
    the killed run is logged again, and a run started from another run's checkpoint carries that
    run's log so far."""
    if os.environ.get("LOCAL_RANK", "0") != "0":
        return
    lines = []
    for record in log_history:
        rest = {k: v for k, v in record.items() if k not in ("step", "epoch")}
        lines.append(json.dumps({"step": record.get("step"), "epoch": record.get("epoch"), **rest}) + "\n")
    atomic_write_text(path, "".join(lines))
