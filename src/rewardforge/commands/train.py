"""Command-line front of training: flags and YAML config -> RewardArguments + TrainingArguments."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Any

TRAIN_DEFAULTS: dict[str, Any] = {
    # TrainingArguments defaults that differ from the transformers ones, chosen for reward models.
    "output_dir": "runs/default",
    "per_device_train_batch_size": 8,
    "per_device_eval_batch_size": 16,
    "num_train_epochs": 1.0,
    "learning_rate": 5e-5,
    "logging_steps": 10,
    "save_steps": 200,
    "save_total_limit": 2,
    "report_to": "none",
    "seed": 42,
    "disable_tqdm": False,
    "remove_unused_columns": False,  # the pair batches' columns are no model inputs: True drops them
}

DESCRIPTION = """Train a Bradley-Terry reward model: loss = -log sigmoid(beta*(r_chosen - r_rejected) - margin).

Examples:
  rewardforge train                                   # built-in demo: MiniLM on built-in pairs
  rewardforge train --model path/or/hub-id --data prefs.jsonl --eval-data dev.jsonl --output runs/rm
  rewardforge train --model SmolLM2.gguf --data hh.jsonl.gz --lora --max-length 512 --precision bf16
  rewardforge train --config run.yaml --learning-rate 1e-5      # flags override the YAML

Every transformers TrainingArguments option is accepted too (e.g. --gradient_accumulation_steps,
--lr_scheduler_type, --eval_steps, --save_steps, --deepspeed, --fsdp, --report_to, --bf16).
For several GPUs or nodes run the same command under `accelerate launch` or `torchrun`.
"""


def build_parser():
    from transformers import HfArgumentParser, TrainingArguments

    from rewardforge.commands.checks import DefaultsHelpFormatter
    from rewardforge.training.arguments import RewardArguments

    parser = HfArgumentParser(
        (RewardArguments, TrainingArguments),
        prog="rewardforge train",
        description=DESCRIPTION,
        allow_abbrev=False,  # `--output_di` would set an option a config's other name then overrides
    )
    parser.formatter_class = DefaultsHelpFormatter
    for action in parser._actions:  # what HfArgumentParser derives from the fields, said right
        if action.dest == "resume":
            action.metavar = "[CHECKPOINT]"  # alone: 'last' (see _normalise_argv)
        elif "--no_prefix_sharing" in action.option_strings:
            action.help = "Turn prefix sharing off (see --prefix_sharing)."
        elif action.dest == "remove_unused_columns":
            action.help = "Always false here: a pair batch's columns are no model inputs (true is refused)."
    parser.set_defaults(**TRAIN_DEFAULTS)
    parser.error = _usage_error  # one line, not argparse's usage block of every TrainingArguments option
    return parser


def _usage_error(message: str):
    from rewardforge.training.run import UsageError

    raise UsageError(f"{message} (see rewardforge train --help)")


def _normalise_argv(argv: list[str]) -> list[str]:
    """`--resume` alone means the newest checkpoint in the output folder."""
    out: list[str] = []
    for i, a in enumerate(argv):
        out.append(a)
        if a == "--resume" and (i + 1 == len(argv) or argv[i + 1].startswith("--")):
            out.append("last")
    return out


def _config_from_yaml(path: str, parser) -> dict[str, Any]:
    import yaml

    from rewardforge.training.run import UsageError

    def once(pairs: list[tuple[Any, Any]], lines: list[int] | None = None) -> dict[Any, Any]:
        # an option given twice (batch_size, then batch-size): the later one silently won
        seen: dict[Any, Any] = {}
        for i, (key, value) in enumerate(pairs):
            if str(key).replace("-", "_") in {str(k).replace("-", "_") for k in seen}:
                where = f" (line {lines[i]})" if lines else ""
                raise UsageError(f"config {path}: option {key!r} is given twice{where}")
            seen[key] = value
        return seen

    class UniqueKeys(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            # the mapping's own keys (a merge key `<<:` brings others, which its own may override)
            own = [(k, v) for k, v in node.value if k.tag != "tag:yaml.org,2002:merge"]
            once(
                [(self.construct_object(k, deep=deep), v) for k, v in own],
                [k.start_mark.line + 1 for k, _ in own],
            )
            return super().construct_mapping(node, deep=deep)

    try:
        with open(path, encoding="utf-8-sig") as f:  # a BOM (Windows editors) is no content
            # JSON by its own parser: YAML 1.1 reads a JSON number such as 1e-06 as text
            cfg = (
                json.load(f, object_pairs_hook=once) if path.endswith(".json") else yaml.load(f, UniqueKeys)
            ) or {}
    except UsageError:
        raise
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read config {path}: {e}") from None
    except (yaml.YAMLError, ValueError) as e:
        raise UsageError(f"config {path} is not valid YAML or JSON: {' '.join(str(e).split())}") from None
    if not isinstance(cfg, dict):
        raise UsageError(f"{path}: a config file must be a mapping of option names to values")
    actions = {a.dest: a for a in parser._actions}
    if isinstance(cfg.get("rewardforge"), dict) and isinstance(cfg.get("training_arguments"), dict):
        # a run's run_config.json: its options as they were resolved (derived fields dropped)
        merged = {**cfg["training_arguments"], **cfg["rewardforge"]}
        cfg = {k: v for k, v in merged.items() if k in actions and k not in ("config", "resume", "overwrite")}
        cfg.pop("remove_unused_columns", None)  # runs before it defaulted to false here recorded true
    cfg = {str(k).replace("-", "_"): v for k, v in cfg.items()}
    unknown = sorted(set(cfg) - set(actions))
    if unknown:
        raise UsageError(f"{path}: unknown option(s): {', '.join(unknown)}")
    if "config" in cfg:
        raise UsageError(f"{path}: 'config' cannot be set inside a config file")
    return {key: _typed(path, key, value, actions[key]) for key, value in cfg.items()}


# options whose text is a comma-separated list, which a config may write as a YAML list
COMMA_LISTS = ("lora_target_modules", "columns")


def _typed(path: str, key: str, value: Any, action) -> Any:
    """A YAML value converted as the flag's own parser would (argparse leaves non-string
    defaults alone, so `max_length: 2.5` would reach the tokenizer as a float)."""
    from rewardforge.training.run import UsageError

    if key == "resume" and isinstance(value, bool):
        return "last" if value else None  # resume: true, as the bare flag
    if key == "report_to" and (value is None or isinstance(value, list)):
        return [str(v) for v in value or []] or "none"
    if value is None:
        if action.default is not None and action.type not in (None, str):
            raise UsageError(f"{path}: {key}: null is not a value here; leave the key out for the default")
        return value
    if action.type is None:
        return value
    if isinstance(value, bool) and not value and action.choices is not None and "no" in action.choices:
        value = "no"  # YAML reads `save_strategy: no` as false
    if key == "columns" and isinstance(value, dict):  # columns: {prompt: question, ignore: [a, b]}
        for field_name, column in value.items():
            names = column if isinstance(column, list) else [column]
            if not names or not all(isinstance(n, str) and n for n in names):
                raise UsageError(
                    f"{path}: columns: {field_name}: expected a column name or a list of them, got {column!r}"
                )
        value = ",".join(f"{k}={'+'.join(v) if isinstance(v, list) else v}" for k, v in value.items())
    if isinstance(value, list) and action.nargs is None:
        if key not in COMMA_LISTS:  # data: [a, b] was read as the file "a,b"; [4] as 4
            raise UsageError(f"{path}: {key}: a list is not a value here, got {value!r}")
        value = ",".join(map(str, value))  # lora_target_modules: [q_proj, v_proj]
    values = value if isinstance(value, list) else [value]
    try:
        out = [action.type(v if isinstance(v, str) else _flag_text(v)) for v in values]
    except (TypeError, ValueError, argparse.ArgumentTypeError) as e:
        raise UsageError(f"{path}: {key}: {value!r} is not a valid value ({e})") from None
    if action.choices is not None and any(v not in action.choices for v in out):
        raise UsageError(f"{path}: {key}: {value!r} is not one of {list(action.choices)}")
    return out if isinstance(value, list) else out[0]


def _flag_text(value: Any) -> str:
    # 2.0 for an int option is a whole number; 2.5 is not and int("2.5") refuses it.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict):  # lr_scheduler_kwargs: {min_lr: 1.0e-6}, as the flag's JSON
        return json.dumps({k: _yaml_number(v) for k, v in value.items()})
    return str(value)


def _yaml_number(value: Any) -> Any:
    """YAML 1.1 reads 1e-6 (no dot) as text; inside a dict no option type converts it back."""
    if isinstance(value, str):
        try:
            return float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "infinity") else value
        except ValueError:
            return value
    return value


# Options that set one thing under two names (ours and TrainingArguments'): a flag under either
# name overrides a config's value under both, as "flags override the config" promises.
SAME_SETTING = (
    {"output", "output_dir"},
    {"epochs", "num_train_epochs"},
    {"batch_size", "per_device_train_batch_size"},
    {"precision", "bf16", "fp16"},
)


# TRL's reward_modeling.py names, and what they are here (an unknown option names its match)
TRL_NAMES = {
    "--model_name_or_path": "--model",
    "--dataset_name": "--data hf:ORG/NAME (or a local path)",
    "--dataset_train_split": "--data PATH:SPLIT",
    "--dataset_test_split": "--eval-data PATH:SPLIT",
    "--use_peft": "--lora",
    "--center_rewards_coefficient": "--center-rewards",
    "--disable_dropout": "the default (--keep-dropout keeps it)",
    "--lora_task_type": "not needed (always sequence classification)",
}


def _hint(leftover: list[str]) -> str:
    names = [a.split("=", 1)[0] for a in leftover]
    hints = [f"TRL's {n} is {TRL_NAMES[n]} here" for n in names if n in TRL_NAMES]
    if not leftover[0].startswith("-"):  # a stray value, not an unknown option's own
        hints.append(
            "an option's several values go in one word, comma-separated: --lora_target_modules q_proj,v_proj"
        )
    return f" ({'; '.join(hints)})" if hints else ""


def _given(argv: list[str], parser) -> set[str]:
    """The options the command line names (by their dataclass field)."""
    flags = parser._option_string_actions
    return {flags[a.split("=", 1)[0]].dest for a in argv if a.split("=", 1)[0] in flags}


def _without_overridden(config: dict[str, Any], argv: list[str], parser) -> dict[str, Any]:
    given = _given(argv, parser)
    dropped = set().union(*(names for names in SAME_SETTING if names & given))
    return {k: v for k, v in config.items() if k not in dropped}


def _one_value_per_setting(args, targs, given: set[str], config: dict[str, Any]) -> None:
    """Both names of one setting on the command line must agree (one of them was dropped), and an
    explicit `--bf16 false` (or a TRL config's `bf16: false`) means fp32 here, where bf16 autocast
    is the default."""
    from rewardforge.training.run import UsageError

    for ours, theirs, same in (
        ("output", "output_dir", lambda a, b: os.path.abspath(a) == os.path.abspath(b)),  # "C/a/" is "./C/a"
        ("epochs", "num_train_epochs", lambda a, b: float(a) == float(b)),
        ("batch_size", "per_device_train_batch_size", lambda a, b: a == b),
    ):
        if {ours, theirs} <= given:
            a, b = getattr(args, ours), getattr(targs, theirs)
            problem = f"--{ours} {a} and --{theirs} {b} set one thing: give one of them"
        elif not {ours, theirs} & given and config.get(ours) is not None and config.get(theirs) is not None:
            a, b = config[ours], config[theirs]
            problem = f"the config sets {ours}: {a} and {theirs}: {b}, one thing: keep one of them"
        else:
            continue
        if not same(a, b):
            raise UsageError(problem)
    said_bf16 = "bf16" in given or ("bf16" in config and "precision" not in config)
    said_precision = "precision" in given or "precision" in config
    if targs.bf16 and said_precision and args.precision == "fp32":
        raise UsageError("--precision fp32 and --bf16 ask for different precisions: give one of them")
    if said_precision and args.precision == "fp32" and args.dtype == "bf16":  # bf16 weights compute in bf16
        raise UsageError(
            "--precision fp32 and --dtype bf16 ask for different precisions (bf16 weights compute in "
            "bf16): use --dtype fp32 for fp32, or leave --precision out"
        )
    if targs.fp16 and "precision" in given and args.precision in ("fp32", "bf16"):
        raise UsageError(
            f"--precision {args.precision} and --fp16 ask for different precisions: give one of them"
        )
    if said_bf16 and not (targs.bf16 or targs.fp16):
        if said_precision and args.precision == "bf16":
            raise UsageError(
                "--precision bf16 and --bf16 false ask for different precisions: give one of them"
            )
        args.precision = "fp32"


def _cpu_for_bf16(parser, seen: argparse.Namespace) -> None:
    """TrainingArguments refuses bf16 without a GPU unless use_cpu is set; the run sets it on a
    CPU anyway, so set it before the check (`--bf16`, as TRL configs have it, failed here)."""
    import torch

    if not torch.cuda.is_available() and not seen.use_cpu and seen.bf16:
        parser.set_defaults(use_cpu=True)


def _evaluate_when_asked(parser, seen: argparse.Namespace, given: set[str]) -> None:
    """Eval data with --eval_steps means step evaluation (training sets it later); set it before
    TrainingArguments checks --load_best_model_at_end, which refuses an evaluation strategy "no"."""
    from rewardforge.training.arguments import held_out
    from rewardforge.training.run import UsageError

    evaluates = held_out(seen)
    no_eval = str(seen.eval_strategy) in ("no", "IntervalStrategy.NO")
    best = str(seen.load_best_model_at_end).lower() in ("true", "1")
    if best and not evaluates:  # TrainingArguments would blame the save strategy
        raise UsageError("--load_best_model_at_end needs held-out pairs: give --eval-data or --eval-split")
    # new save settings on the command line (over a config's) take the evaluations along
    follows_saves = (
        best and {"save_steps", "save_strategy"} & given and not {"eval_steps", "eval_strategy"} & given
    )
    if evaluates and no_eval and seen.eval_steps and not follows_saves:
        parser.set_defaults(eval_strategy="steps")
    elif evaluates and best and (no_eval or follows_saves):  # the best model needs evaluations, at the saves
        save = str(getattr(seen.save_strategy, "value", seen.save_strategy))
        parser.set_defaults(
            eval_strategy=save if save in ("steps", "epoch") else "steps", eval_steps=seen.save_steps
        )


def _better_side_of_the_best_metric(parser, seen: argparse.Namespace, given: set[str], config: dict) -> None:
    """--greater_is_better by the metric (the Trainer takes higher unless the name ends in "loss",
    and kept the worst checkpoint by ece), unless it was given."""
    from rewardforge.training.run import EVAL_METRICS

    name = (seen.metric_for_best_model or "").removeprefix("eval_")
    if (
        EVAL_METRICS.get(name) is not None
        and "greater_is_better" not in given
        and config.get("greater_is_better") is None  # (a config's null is not given either)
    ):
        parser.set_defaults(greater_is_better=EVAL_METRICS[name])


def parse(argv: list[str]):
    from rewardforge.training.run import UsageError

    parser = build_parser()
    argv = _normalise_argv(argv)
    configs = [i for i, a in enumerate(argv) if a == "--config" or a.startswith("--config=")]
    if len(configs) > 1:  # which one argparse keeps is not which one a reader expects: say so
        raise UsageError("--config is given more than once; give one file (flags override it)")
    config = None
    if configs:
        i = configs[0]
        if argv[i].startswith("--config="):
            config = argv[i].split("=", 1)[1]
        elif i + 1 >= len(argv) or argv[i + 1].startswith("--"):
            raise UsageError("--config needs a file")
        else:
            config = argv[i + 1]
    settings: dict[str, Any] = {}
    if config is not None:
        settings = _without_overridden(_config_from_yaml(config, parser), argv, parser)
        parser.set_defaults(**settings)
    given = _given(argv, parser)
    try:  # the options as given, before TrainingArguments checks them
        seen, _ = parser.parse_known_args(argv)
    except Exception:  # noqa: BLE001 - the real parse reports it
        seen = None
    if seen is not None:
        _evaluate_when_asked(parser, seen, given)
        _cpu_for_bf16(parser, seen)
        _better_side_of_the_best_metric(parser, seen, given, settings)
    try:
        args, targs, *rest = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    except UsageError:
        raise
    except json.JSONDecodeError as e:  # --lr_scheduler_kwargs, --optim_args and kin take JSON
        raise UsageError(
            f"an option that takes JSON got invalid JSON ({e}) (see rewardforge train --help)"
        ) from None
    except ValueError as e:  # TrainingArguments' own checks of its options
        raise UsageError(f"{' '.join(str(e).split())} (see rewardforge train --help)") from None
    leftover = rest[0] if rest else []
    if leftover:
        raise UsageError(
            f"unknown option(s): {' '.join(leftover)}{_hint(leftover)} (see rewardforge train --help)"
        )
    _one_value_per_setting(args, targs, given, settings)
    if targs.remove_unused_columns:  # the run set it back to False without a word
        raise UsageError(
            "--remove_unused_columns true would drop the columns a pair batch is made of; a reward "
            "model needs them all (leave the option out)"
        )
    return args, targs


def resolved_config(args, targs) -> dict[str, Any]:
    from rewardforge.data.readers import absolute_source

    options = dataclasses.asdict(args)
    for key in ("model", "data", "eval_data", "processor", "config"):
        options[key] = absolute_source(options[key])  # `--config RUN/run_config.json` from anywhere
    cfg = {"rewardforge": options, "training_arguments": json.loads(targs.to_json_string())}
    cfg["command"] = "rewardforge train " + " ".join(sys.argv[2:])
    return cfg


def main(argv: list[str]) -> int:
    from rewardforge.training.run import train

    args, targs = parse(argv)
    meta = train(args, targs, resolved_config=resolved_config(args, targs))
    print_summary(meta)
    return 0


def print_summary(meta: dict[str, Any]) -> None:
    import os

    if os.environ.get("LOCAL_RANK", "0") != "0":
        return
    ev = (meta.get("metrics") or {}).get("eval") or {}
    tr = (meta.get("metrics") or {}).get("train") or {}
    print("\n[rewardforge] training finished")
    print(f"  base model          {meta['base_model']}")
    print(
        f"  train pairs         {meta['tokenization']['train']['used']} (of {meta['tokenization']['train']['pairs']})"
    )
    if tr:
        print(
            f"  train loss          {float('nan') if tr.get('train_loss') is None else tr['train_loss']:.4f}"
            f"  ({tr.get('train_runtime', 0):.0f} s)"
        )
    if ev:
        lo, hi = ev.get("eval_accuracy_ci95_lo"), ev.get("eval_accuracy_ci95_hi")
        ci = f"  [95% CI {lo:.3f}-{hi:.3f}]" if lo is not None and hi is not None else ""
        print(
            f"  held-out accuracy   {ev.get('eval_accuracy', float('nan')):.3f}{ci}  on {ev.get('eval_pairs', '?')} pairs"
        )
        print(f"  held-out margin     {ev.get('eval_margin_mean', float('nan')):.3f}")
    print(f"  saved to            {meta.get('output_dir', '')}")
