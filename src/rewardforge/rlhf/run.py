"""The cold-start RLHF workflow behind `rewardforge rlhf`: load the RM, build the prompt set,
generate rollouts with the policy, score them with the RM, update the policy (TRL), save it with
a summary. Checkpoints go to OUT/checkpoints; `resume=True` continues from the newest one.

OUT/ holds, when the run ends: the policy (a plain HF folder, LoRA merged unless
save_adapter), run_config.json, summary.json, train_log.jsonl (every log record) and
rollouts.jsonl (every rollout with its rm_score, env rewards and total).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from rewardforge.commands.checks import RUN_LOGS
from rewardforge.files import atomic_write_text
from rewardforge.training.run import UsageError


def resolved_learning_rate(given: float | None, lora: bool) -> float:
    """--learning-rate, or its default: 1e-5, or 1e-4 with LoRA."""
    return float(given) if given is not None else (1e-4 if lora else 1e-5)


RESUME_KEYS = (
    "policy", "rm", "prompts", "algo", "mode", "rm_coeff", "kl_coeff", "group_size", "lora",
    # what a step optimises and samples: the record of the steps before would not be this run's
    "env_rewards", "prompts_per_step", "max_completion_length", "temperature", "max_prompts", "seed",
    # what the restored optimizer and schedule were made with (a new rate was recorded, not used)
    "learning_rate", "lora_r", "lora_alpha", "epsilon_max",
)  # fmt: skip
# --grpo-arg keys the restored optimizer and schedule were made with: a new value was recorded
# while the restored one went on (the `train` command refuses the same)
RESUME_GRPO_KEYS = (
    "lr_scheduler_type", "lr_scheduler_kwargs", "warmup_steps", "warmup_ratio", "optim", "optim_args",
    "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon",
    # and the sampler's: how often a batch repeats, whether prompts are shuffled (the order)
    "num_iterations", "steps_per_generation", "shuffle_dataset",
)  # fmt: skip

# --grpo-arg keys that rewardforge sets itself, and the option that sets them. Such a key is
# refused (naming the option) rather than silently beaten by, or beating, that option.
# use_cpu and disable_tqdm are set too, but have no option: --grpo-arg overrides them.
OPTION_OF_GRPO_KEY = {
    "max_steps": "--steps",
    "num_generations": "--group-size",
    "group_size": "--group-size",
    "max_completion_length": "--max-completion-length",
    "temperature": "--temperature",
    "learning_rate": "--learning-rate",
    "save_steps": "--save-steps",
    "seed": "--seed",
    "bf16": "--bf16",
    "use_vllm": "--use-vllm",
    "beta": "--kl-coeff",
    "kl_coeff": "--kl-coeff",
    "reward_weights": "--mode and --rm-coeff",
    "rm_mode": "--mode",
    "rm_coeff": "--rm-coeff",
    "env_rewards": "--env-reward",
    "prompts_per_step": "--prompts-per-step",
    "rm_batch_size": "--rm-batch-size",
    "api_key": "--api-key",
    "epsilon_max": "--epsilon-max",
    "output_dir": "--output (checkpoints go to OUTPUT/checkpoints)",
    "rollouts_path": "--output (rollouts go to OUTPUT/rollouts.jsonl)",
}


def _model_file_in(out: Path) -> Path | None:
    """A file of a model in `out` (what saving a policy into it would overwrite), if any."""
    from rewardforge.commands.checks import MODEL_FILE

    found = (
        sorted(p for p in out.iterdir() if p.is_file() and MODEL_FILE.fullmatch(p.name))
        if out.is_dir()
        else []
    )
    return found[0] if found else None


@dataclass
class RLHFOptions:
    policy: str
    rm: str
    prompts: str
    output: str
    mode: str = "replace"
    rm_coeff: float = 0.5
    kl_coeff: float | None = None  # None: the algorithm's default (grpo 0.0, scalerl 0.01)
    algo: str = "grpo"
    steps: int = 30
    group_size: int = 4
    prompts_per_step: int = 2
    max_completion_length: int = 128
    temperature: float = 1.0
    learning_rate: float | None = None  # None: 1e-5, or 1e-4 with LoRA
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    save_adapter: bool = False
    use_vllm: bool = False
    env_rewards: list[str] = field(default_factory=list)
    api_key: str | None = None
    rm_batch_size: int = 16
    max_prompts: int | None = None
    save_steps: int = 10
    seed: int = 42
    bf16: bool = False
    use_cpu: bool | None = None  # None: True when there is no GPU
    resume: bool = False
    epsilon_max: float = 5.0
    grpo_overrides: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.algo not in ("grpo", "scalerl"):
            raise UsageError(f"--algo must be grpo or scalerl, got {self.algo!r}")
        if self.mode not in ("replace", "bonus"):
            raise UsageError(f"--mode must be replace or bonus, got {self.mode!r}")
        if self.mode == "bonus" and not self.env_rewards:
            raise UsageError("--mode bonus adds the RM score to environment rewards: give --env-reward NAME")
        for name, value, low in (
            ("--steps", self.steps, 1),
            ("--group-size", self.group_size, 2),
            ("--prompts-per-step", self.prompts_per_step, 1),
            ("--max-completion-length", self.max_completion_length, 1),
            ("--save-steps", self.save_steps, 1),
        ):
            if int(value) < low:
                raise UsageError(f"{name} must be at least {low}, got {value}")
        if not math.isfinite(self.rm_coeff) or (self.mode == "bonus" and self.rm_coeff <= 0):
            # a weight <= 0 would have the policy lower the RM score (or ignore it)
            raise UsageError(f"--rm-coeff must be a finite number > 0, got {self.rm_coeff}")
        if self.kl_coeff is not None and (not math.isfinite(self.kl_coeff) or self.kl_coeff < 0):
            raise UsageError("--kl-coeff must be a finite number >= 0")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise UsageError(f"--temperature must be a finite number > 0, got {self.temperature}")
        if self.learning_rate is not None and not (
            math.isfinite(self.learning_rate) and self.learning_rate > 0
        ):
            raise UsageError(f"--learning-rate must be a finite number > 0, got {self.learning_rate}")
        if self.max_prompts is not None and self.max_prompts < 1:
            raise UsageError(f"--max-prompts must be at least 1, got {self.max_prompts}")
        if self.rm_batch_size < 1:
            raise UsageError(f"--rm-batch-size must be at least 1, got {self.rm_batch_size}")
        if not self.lora and self.save_adapter:
            raise UsageError("--save-adapter keeps a LoRA adapter: it needs --lora")
        if not self.lora and (self.lora_r, self.lora_alpha) != (16, 32):
            raise UsageError("--lora-r and --lora-alpha set the LoRA adapters: they need --lora")
        if self.algo != "scalerl" and self.epsilon_max != 5.0:  # GRPO has no CISPO cap: it did nothing
            raise UsageError("--epsilon-max is ScaleRL's importance-weight cap: it needs --algo scalerl")
        reserved = dict(OPTION_OF_GRPO_KEY)
        if self.algo == "scalerl":
            reserved["epsilon_high"] = "--epsilon-max"
        from trl import GRPOConfig

        known = {f.name for f in dataclasses.fields(GRPOConfig)}
        for key, value in list(self.grpo_overrides.items()):
            if isinstance(value, bool) and key in BOOL_SPELLINGS:  # scale_rewards=false, as TRL takes it
                value = self.grpo_overrides[key] = BOOL_SPELLINGS[key][value]
            if key in TEXT_CHOICES and value not in TEXT_CHOICES[key]:
                raise UsageError(  # TRL refused it with a traceback at the first step
                    f"--grpo-arg {key}={value!r}: expected one of {', '.join(sorted(TEXT_CHOICES[key]))}, "
                    "true or false"
                )
            if key in reserved:
                raise UsageError(
                    f"--grpo-arg {key}: rewardforge sets this from {reserved[key]}; use that instead"
                )
            if key not in known:  # GRPOConfig's own TypeError named no option
                raise UsageError(f"--grpo-arg {key}: GRPOConfig has no such field")
            _check_grpo_value(key, value)
        if self.use_vllm:
            import importlib.util

            if importlib.util.find_spec("vllm") is None:
                raise UsageError("--use-vllm needs vLLM (pip install vllm, on a GPU machine)")

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        d["api_key"] = "***" if self.api_key else None
        return d


# GRPOConfig fields typed as text that TRL also takes as a boolean, and the text each means
BOOL_SPELLINGS: dict[str, dict[bool, str]] = {"scale_rewards": {True: "group", False: "none"}}
# and every text it takes
TEXT_CHOICES: dict[str, set[str]] = {"scale_rewards": {"group", "batch", "none"}}


def _check_grpo_value(key: str, value: Any) -> None:
    """A --grpo-arg value of the type GRPOConfig declares for it (`top_p=abc` failed deep in
    generation, after the run folder was made). Unknown keys are left to GRPOConfig's own check."""
    import types
    import typing

    from trl import GRPOConfig

    hint = typing.get_type_hints(GRPOConfig).get(key)
    if hint is None:
        return
    members = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    allowed = [
        t for t in (typing.get_origin(m) or m for m in members) if isinstance(t, type)
    ]  # list[str]: list
    if not allowed:
        return
    ok = any(
        isinstance(value, t) and not (isinstance(value, bool) and t in (int, float)) for t in allowed
    ) or (isinstance(value, int) and not isinstance(value, bool) and float in allowed)
    if value is None:
        ok = type(None) in allowed
    if not ok:
        names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
        raise UsageError(f"--grpo-arg {key}={value!r}: expected {names}")


class ProgressPrinter(TrainerCallback):
    """One line per logged step: RM score, env reward, KL, time per step and time left; every
    log record also goes to train_log.jsonl."""

    def __init__(self, log_path: Path, env_names: list[str], printer=print):
        self.log_path = log_path
        self.env_names = env_names
        self.printer = printer
        self.started = time.monotonic()
        self.first_step: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.monotonic()
        self.first_step = state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": state.global_step, **logs}, default=str) + "\n")
        if "rm_score/mean" not in logs:
            return
        done = state.global_step - (self.first_step or 0)
        elapsed = time.monotonic() - self.started
        per_step = elapsed / done if done > 0 else math.nan
        left = per_step * (state.max_steps - state.global_step) if done > 0 else math.nan
        rm = [_figure(logs.get(f"rm_score/{k}")) for k in ("mean", "std", "min", "max")]
        parts = [f"step {state.global_step}/{state.max_steps}", f"rm {rm[0]} (sd {rm[1]}, {rm[2]}..{rm[3]})"]
        # an env reward gives no value (None) on rollouts it cannot judge, a whole step's maybe
        parts += [f"{name} {_figure(logs.get(f'rewards/{name}/mean'))}" for name in self.env_names]
        if "kl" in logs:
            parts.append(f"kl {_figure(logs['kl'], 4)}")
        parts.append(f"{per_step:.1f} s/step, ~{_duration(left)} left")
        self.printer(" | ".join(parts), flush=True)


def _figure(value: Any, digits: int = 3) -> str:
    """A logged number for the progress line; "n/a" for one the step did not have."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return f"{value:.{digits}f}"
    return "n/a"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def _check_resume(out: Path, opts: RLHFOptions) -> tuple[str | None, int, bool]:
    """Where a --resume goes on from: the newest checkpoint of the run in `out` that reads back
    whole (a newer one cut short by a kill is named and passed over), its step, and whether the
    run only needs finishing (killed after its last checkpoint, before its policy and summary were
    saved). (None, 0, False): a run killed before its first checkpoint, which starts again."""
    from rewardforge.training.output import find_resume_checkpoint

    ckpt_dir = out / "checkpoints"
    last = find_resume_checkpoint(ckpt_dir, "last") if ckpt_dir.is_dir() else None
    if last is None:
        saved = (out / "summary.json").exists() or _model_file_in(out) is not None
        ours = _is_rlhf_output(out)
        # the Trainer writes a checkpoint's trainer_state.json last: without it, one never finished
        finished = [c for c in ckpt_dir.glob("checkpoint-*") if (c / "trainer_state.json").exists()]
        if not saved and not finished and (ours or not (ckpt_dir.is_dir() and any(ckpt_dir.iterdir()))):
            # no run yet, or one killed before its first checkpoint was written whole (its logs,
            # the checkpoint it was writing): nothing to continue and no policy to lose, so it
            # starts (a preemptible job always passes --resume); a finished checkpoint damaged
            # since is not thrown away
            if not ours:
                _check_no_run(out)  # other files of the same names are not ours to replace
            return None, 0, False
        raise UsageError(
            f"--resume: no checkpoint in {ckpt_dir} to continue (checkpoints are saved every --save-steps)"
        )
    config_path = out / "run_config.json"
    if config_path.is_file():
        recorded = json.loads(config_path.read_text(encoding="utf-8"))
        old, now = dict(recorded.get("options", {})), opts.public()
        ran_at = (recorded.get("grpo_config") or {}).get("learning_rate")
        # the rate each ran at: the default given by its value is no change; a record from before
        # the options kept the rate has the rate it ran at in grpo_config
        if "learning_rate" in old or isinstance(ran_at, int | float):
            old["learning_rate"] = (
                resolved_learning_rate(old["learning_rate"], old.get("lora", False))
                if "learning_rate" in old
                else float(ran_at)
            )
            now["learning_rate"] = resolved_learning_rate(opts.learning_rate, opts.lora)
        if old.get("algo") != "scalerl":  # GRPO has no CISPO cap: a recorded value never ran
            old.pop("epsilon_max", None)
        # one file by another path is no change, and the same name from another folder is one:
        # the places resolved when the run began (a run recorded before them: from here)
        places = recorded.get("places") if isinstance(recorded.get("places"), dict) else {}
        for key in ("policy", "rm", "prompts"):
            if key in old:
                old[key], now[key] = places.get(key, _place(old[key])), _place(now.get(key))
        changed = [k for k in RESUME_KEYS if k in old and old[k] != now.get(k)]
        old_grpo, now_grpo = old.get("grpo_overrides") or {}, now.get("grpo_overrides") or {}
        for key in RESUME_GRPO_KEYS:  # the values each runs with: TRL's default is no change
            before, after = _grpo_value(old_grpo, key), _grpo_value(now_grpo, key)
            if before != after:
                changed.append(f"--grpo-arg {key}")
                old[f"--grpo-arg {key}"], now[f"--grpo-arg {key}"] = before, after
        if changed:
            raise UsageError(
                "--resume with different options than the run being resumed: "
                + ", ".join(f"{k} {old[k]!r} -> {now.get(k)!r}" for k in changed)
            )
    step = _checkpoint_step(last)
    if step > opts.steps or (step == opts.steps and _finished_at(out) == step):
        # the Trainer would train one step past --steps, and again at each resume
        raise UsageError(
            f"--resume: {Path(last).name} is at step {step} and --steps is {opts.steps}: nothing is left "
            "to train; give more --steps to go on (that checkpoint's weights are the run's last)"
        )
    return last, step, step == opts.steps


def mid_cycle_note(step: int, config: Any) -> str | None:
    """What a resume from `step` cannot restore: TRL generates a batch once for num_iterations x
    steps_per_generation steps and keeps it outside the checkpoint, so a checkpoint inside that
    cycle makes a resumed run generate the batch again (same prompts, new completions)."""
    cycle = int(getattr(config, "num_iterations", 1) or 1) * int(
        getattr(config, "steps_per_generation", 1) or 1
    )
    if step <= 0 or cycle <= 1 or step % cycle == 0:
        return None
    return (
        f"rlhf: note: step {step} is inside a generation cycle of {cycle} steps (num_iterations x "
        "steps_per_generation): its batch is generated again, so the run goes on unlike an "
        f"uninterrupted one; --save-steps a multiple of {cycle} resumes exactly"
    )


def _grpo_value(overrides: dict[str, Any], key: str) -> Any:
    """What GRPOConfig runs `key` with: the --grpo-arg value, else its default (none of these
    keys does rewardforge set). A setting given as its default value is no change."""
    from trl import GRPOConfig

    if key in overrides:
        value = overrides[key]
    else:
        field_ = next((f for f in dataclasses.fields(GRPOConfig) if f.name == key), None)
        if field_ is None:
            return None
        value = field_.default if field_.default is not dataclasses.MISSING else None
        if field_.default_factory is not dataclasses.MISSING:
            value = field_.default_factory()
    value = getattr(value, "value", value)  # an enum (SchedulerType.LINEAR) as its text
    return {} if key.endswith("_kwargs") and value is None else value


def _place(spec: Any) -> Any:
    """A path that exists, resolved (as the file it names from here); anything else (a URL, a Hub
    id, standard input) as given."""
    if isinstance(spec, str) and spec != "-" and os.path.exists(spec):
        return os.path.realpath(spec)
    return spec


def prompts_fingerprint(records: list[dict[str, Any]]) -> str:
    """What the prompt records hold (a resume must train on the same ones, in the same order)."""
    text = json.dumps(records, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _check_same_prompts(out: Path, records: list[dict[str, Any]], source: str) -> None:
    """--resume: the prompt records are the ones the run began with (an edited file, or other
    text on standard input, changed what later steps train on without a word)."""
    try:
        recorded = json.loads((out / "run_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    before = recorded.get("prompts_fingerprint") if isinstance(recorded, dict) else None
    if before is not None and before != prompts_fingerprint(records):
        raise UsageError(
            f"--resume: the prompts in {source} are not the ones the run began with "
            f"({recorded.get('prompts')} prompt(s) then, {len(records)} now): give the same prompts, "
            "or start a new run"
        )


def _finished_at(out: Path) -> int | None:
    """The step the run in `out` finished at (its summary.json, written after the policy)."""
    try:
        step = json.loads((out / "summary.json").read_text(encoding="utf-8")).get("global_step")
    except (OSError, ValueError, AttributeError):
        return None
    return step if isinstance(step, int) else None


def _clear_unstarted_run(out: Path) -> None:
    """The logs (and unfinished checkpoints) of a run killed before its first checkpoint was
    whole, which --resume starts again."""
    for pattern in (*RUN_LOGS, "run_config.json"):
        for path in out.glob(pattern):
            path.unlink(missing_ok=True)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)


def _run_train_loss(
    log_history: list[dict[str, Any]], global_step: int, session_loss: float, resumed: bool
) -> float | None:
    """The mean loss over every step of the run. The Trainer's own figure forgets the steps
    before a resume; the log history (carried by each checkpoint) has each step's loss when
    every step is logged (logging_steps=1, our default). With coarser logging a resumed run's
    windows do not line up with its steps, so its mean is unknown: None, not a wrong figure."""
    losses = {
        e["step"]: float(e["loss"]) for e in log_history if "loss" in e and isinstance(e.get("step"), int)
    }
    if global_step > 0 and all(step in losses for step in range(1, global_step + 1)):
        return sum(losses[step] for step in range(1, global_step + 1)) / global_step
    return None if resumed or math.isnan(session_loss) else session_loss


def _check_no_run(out: Path) -> None:
    """A new run must not mix its logs with another's, nor overwrite a user's files of the same
    names: a folder with checkpoints or run logs is refused (--resume continues a run)."""
    ckpt_dir = out / "checkpoints"
    if ckpt_dir.is_dir() and any(ckpt_dir.iterdir()):
        raise UsageError(
            f"{out} already holds a run (checkpoints/); pass --resume or choose another --output"
        )
    found = [path.name for pattern in RUN_LOGS for path in sorted(out.glob(pattern))] if out.is_dir() else []
    ours = _is_rlhf_output(out)
    if not ours and (out / "run_config.json").exists():
        found.insert(0, "run_config.json")
    if found:
        raise UsageError(
            f"--output {out} already holds {', '.join(found)}"
            + (" of a run with no checkpoint to resume" if ours else "")
            + ": choose another --output, or remove them"
        )


def _checkpoint_step(checkpoint: str) -> int:
    """The step a checkpoint was saved at: its state's, else its name's (checkpoint-N)."""
    from rewardforge.training.output import checkpoint_state

    try:
        return int(checkpoint_state(checkpoint)["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return int(Path(checkpoint).name.rpartition("-")[2])


def _drop_logged_steps_after(out: Path, step: int) -> None:
    """Keep the log lines of steps up to `step` (a resumed run logs the later ones again)."""
    for pattern in ("train_log.jsonl", "rollouts*.jsonl"):
        for path in sorted(out.glob(pattern)):
            # records end with "\n" only (a text may hold U+2028); a last one without it was cut
            # short by the kill, and the resumed run's first line would be glued onto it
            text = path.read_text(encoding="utf-8")
            lines = text.split("\n")
            whole, cut = lines[:-1], lines[-1]
            kept = [line for line in whole if _logged_step(line) <= step]
            if len(kept) != len(whole) or cut:
                atomic_write_text(path, "".join(line + "\n" for line in kept))


def _logged_step(line: str) -> float:
    try:
        value = json.loads(line).get("step")
    except (ValueError, AttributeError):
        return -math.inf  # not a record of ours: kept
    return value if isinstance(value, int | float) and not isinstance(value, bool) else -math.inf


def _is_rlhf_output(out: Path) -> bool:
    """True if `out` was written by `run_rlhf` (its run_config.json), not by `rewardforge train`
    (which writes rewardforge.json and a run_config.json of its own) or anything else."""
    if (out / "rewardforge.json").exists():
        return False
    try:
        config = json.loads((out / "run_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "grpo_config" in config and "options" in config


def _check_output(out: Path, opts: RLHFOptions) -> None:
    """Refuse an --output that would overwrite a model the run did not write (the RM, the policy,
    any other model folder) or that cannot be written; before any work."""
    from rewardforge.commands.checks import check_output_dir, same_path
    from rewardforge.rlhf.remote import is_url

    for option, value in (("--rm", opts.rm), ("--policy", opts.policy)):
        if isinstance(value, str | Path) and not is_url(str(value)) and same_path(out, value):
            raise UsageError(
                f"--output {out} is the {option} model; the run would overwrite it: choose another --output"
            )
    if out.is_dir() and not _is_rlhf_output(out):
        found = _model_file_in(out)
        if found is not None:
            raise UsageError(
                f"--output {out} already holds a model ({found.name}) that `rewardforge rlhf` did not "
                "write; the run would overwrite it: choose another --output"
            )
    check_output_dir(out, "--output")


def run_rlhf(opts: RLHFOptions, printer=print) -> dict[str, Any]:
    """Run the workflow; returns the summary (also written to OUT/summary.json)."""
    from rewardforge.commands.checks import held_output_dir

    opts.validate()
    out = Path(opts.output)
    _check_output(out, opts)
    # a refused run leaves no empty folder; two runs at once into one folder never mix
    with held_output_dir(out):
        started: list[bool] = []  # set once this run wrote its run_config.json into a fresh folder
        try:
            return _run_rlhf(opts, out, printer, started)
        except BaseException:
            if started and _no_step_done(out):  # (its first step failed: a reward function raised,
                _clear_unstarted_run(out)  # a server refused the key) nothing to keep or resume
            raise


def _no_step_done(out: Path) -> bool:
    """No step logged (with --grpo-arg logging_steps above 1, only its rollouts say one was),
    and no checkpoint."""
    logged = [p for pattern in ("train_log.jsonl", "rollouts*.jsonl") for p in out.glob(pattern)]
    return not any(p.stat().st_size for p in logged) and not any((out / "checkpoints").glob("checkpoint-*"))


def _run_rlhf(opts: RLHFOptions, out: Path, printer, started: list[bool]) -> dict[str, Any]:
    import torch

    from rewardforge import __version__
    from rewardforge.rlhf.env_rewards import load_env_reward, missing_column_problem
    from rewardforge.rlhf.policy import check_chat_template, check_prompt_room, load_policy, save_policy
    from rewardforge.rlhf.prompts import prompts_dataset, read_prompts
    from rewardforge.rlhf.recipes import make_grpo_with_rm, make_scalerl_with_rm
    from rewardforge.rlhf.remote import is_url
    from rewardforge.rlhf.summary import summarise

    ckpt_dir = out / "checkpoints"
    resume_from, resumed_at, finishing = None, 0, False
    if opts.resume:
        resume_from, resumed_at, finishing = _check_resume(out, opts)
        if resume_from is None:
            printer(f"rlhf: --resume: no checkpoint in {ckpt_dir} yet; starting the run", flush=True)
            _clear_unstarted_run(out)
    else:
        _check_no_run(out)
    env_funcs = [load_env_reward(spec) for spec in opts.env_rewards]
    records = read_prompts(opts.prompts, limit=opts.max_prompts)
    if len(records) < opts.prompts_per_step:  # the trainer would run 0 steps and exit 0
        raise UsageError(
            f"--prompts-per-step {opts.prompts_per_step} needs at least that many prompts; "
            f"{opts.prompts} gives {len(records)}"
            + (f" (--max-prompts {opts.max_prompts})" if opts.max_prompts is not None else "")
        )
    problem = missing_column_problem(opts.env_rewards, records, opts.prompts, opts.max_prompts)
    if problem:
        raise UsageError(problem)
    if resume_from is not None:
        _check_same_prompts(out, records, opts.prompts)
    dataset = prompts_dataset(records)
    out.mkdir(parents=True, exist_ok=True)
    if resume_from is not None:  # steps after the checkpoint are done again: their lines go
        _drop_logged_steps_after(out, resumed_at)

    use_cpu = (not torch.cuda.is_available()) if opts.use_cpu is None else opts.use_cpu
    use_cpu = bool(opts.grpo_overrides.get("use_cpu", use_cpu))  # --grpo-arg use_cpu=... wins
    learning_rate = resolved_learning_rate(opts.learning_rate, opts.lora)
    common = dict(
        group_size=opts.group_size,
        rm_mode=opts.mode,
        rm_coeff=opts.rm_coeff,
        env_rewards=env_funcs,
        prompts_per_step=opts.prompts_per_step,
        rm_batch_size=opts.rm_batch_size,
        rollouts_path=out / "rollouts.jsonl",
        api_key=opts.api_key,
        output_dir=str(ckpt_dir),
        max_steps=opts.steps,
        max_completion_length=opts.max_completion_length,
        temperature=opts.temperature,
        learning_rate=learning_rate,
        save_steps=opts.save_steps,
        seed=opts.seed,
        bf16=opts.bf16,
        use_cpu=use_cpu,
        use_vllm=opts.use_vllm,
        disable_tqdm=True,
    )
    common.update(opts.grpo_overrides)  # validate() refused the keys set above from an option
    if opts.kl_coeff is not None:
        common["kl_coeff"] = opts.kl_coeff
    printer(f"rlhf: loading the reward model {opts.rm}", flush=True)
    if opts.algo == "scalerl":
        setup = make_scalerl_with_rm(opts.rm, epsilon_max=opts.epsilon_max, **common)
    else:
        setup = make_grpo_with_rm(opts.rm, **common)
    if is_url(opts.rm):
        info = setup.rm.health()
        printer(f"rlhf: reward server {setup.rm.url} serves {info.get('model')!r}", flush=True)

    note = mid_cycle_note(resumed_at if resume_from and not finishing else 0, setup.config)
    if note:
        printer(note, flush=True)
    printer(f"rlhf: loading the policy {opts.policy}", flush=True)
    model, tokenizer = load_policy(opts.policy, dtype="bf16" if opts.bf16 and not use_cpu else "fp32")
    if setup.config.disable_dropout:  # TRL's zeroes dropout layers only, not Llama's attention_dropout
        from rewardforge.modeling import disable_dropout

        disable_dropout(model)
    check_chat_template(tokenizer, opts.policy)
    check_prompt_room(
        tokenizer, model, records, opts.max_completion_length, opts.prompts, "--max-completion-length"
    )
    # written once both models loaded and the prompts fit: a run refused before leaves no config
    atomic_write_text(
        out / "run_config.json",
        json.dumps(
            {
                "rewardforge_version": __version__,
                "options": opts.public(),
                "setup": setup.describe(),
                "grpo_config": {
                    k: v
                    for k, v in setup.config.to_dict().items()
                    if not k.startswith(("push_to_hub", "hub_"))
                },
                "prompts": len(records),
                "prompts_fingerprint": prompts_fingerprint(records),
                "places": {key: _place(getattr(opts, key)) for key in ("policy", "rm", "prompts")},
            },
            indent=2,
            default=str,
        )
        + "\n",
    )
    if resume_from is None:
        started.append(True)
    peft_config = None
    if opts.lora and not hasattr(model, "peft_config"):
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=opts.lora_r,
            lora_alpha=opts.lora_alpha,
            lora_dropout=0.0,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
    progress = ProgressPrinter(out / "train_log.jsonl", setup.env_reward_names, printer=printer)
    trainer = setup.trainer(
        model, dataset, processing_class=tokenizer, peft_config=peft_config, callbacks=[progress]
    )
    # our one-line progress replaces the Trainer's dump of every log dict (kept in train_log.jsonl)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    n_gen = setup.config.generation_batch_size
    printer(
        f"rlhf: {opts.algo}, mode {opts.mode}, {opts.steps} steps of {n_gen // opts.group_size} prompts x "
        f"{opts.group_size} rollouts (max {opts.max_completion_length} tokens), reward weights "
        f"{setup.weights_by_name()}, kl {setup.kl_coeff}"
        + (f"; resuming from {resume_from}" if resume_from else ""),
        flush=True,
    )
    started = time.monotonic()
    if finishing:  # the last step's checkpoint is there: the run only lacks its policy and summary
        from transformers import TrainerState

        printer(f"rlhf: {Path(resume_from).name} is the run's last step: finishing from it", flush=True)
        trainer._load_from_checkpoint(resume_from)
        trainer.state = TrainerState.load_from_json(str(Path(resume_from) / "trainer_state.json"))
        session_loss = math.nan
    else:
        session_loss = trainer.train(resume_from_checkpoint=resume_from).training_loss
    elapsed = time.monotonic() - started

    main_process = trainer.accelerator.is_main_process
    if main_process:
        save_policy(trainer.model, tokenizer, out, adapter_only=opts.save_adapter)
    summary = summarise(
        trainer.state.log_history,
        setup.env_reward_names,
        algo=opts.algo,
        mode=opts.mode,
        reward_weights=setup.weights_by_name(),
        kl_coeff=setup.kl_coeff,
        global_step=trainer.state.global_step,
        train_seconds_this_session=round(elapsed, 1),
        resumed_from=resume_from,
        train_loss=_run_train_loss(
            trainer.state.log_history, trainer.state.global_step, session_loss, resume_from is not None
        ),
        policy_saved_to=str(out),
        adapter_only=opts.save_adapter,
    )
    if main_process:
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    rm_first, rm_last = summary["rm_score_mean"]["first"], summary["rm_score_mean"]["last"]
    printer(
        f"rlhf: done, {trainer.state.global_step} steps; mean RM score first step {_fmt(rm_first)}, "
        f"last step {_fmt(rm_last)}; policy and summary.json in {out}",
        flush=True,
    )
    return summary


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"
