"""Option mistakes stop `rewardforge train` with exit 2 and one line naming the option, before any
data or model is loaded; an existing run is never mixed with a new one.

Each case was found by fuzzing the CLI: before, these crashed deep in torch/peft/numpy, or
finished with exit 0 and a wrong model (NaN weights, 0 steps, a frozen LoRA, training-set
"held-out" accuracy, a second run appended to the first one's metrics).
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from rewardforge.cli import main

ROWS = [{"prompt": f"q{i}", "chosen": f"good answer {i}", "rejected": f"bad {i}"} for i in range(6)]


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def train(*argv) -> int:
    return main(["train", "--save_strategy", "no", "--disable_tqdm", "true", *map(str, argv)])


def one_step(model, data, out, *extra) -> int:
    """One training step of `model` on `data` into `out`."""
    return train("--model", model, "--data", data, "--output", out, "--max-steps", "1", *extra)


def _missing_tracker() -> str:
    """A tracker transformers knows but this machine lacks (the Trainer failed on it after loading)."""
    from transformers.integrations.integration_utils import (
        INTEGRATION_TO_CALLBACK,
        get_available_reporting_integrations,
    )

    missing = [n for n in INTEGRATION_TO_CALLBACK if n not in get_available_reporting_integrations()]
    if not missing:
        pytest.skip("every tracker is installed")
    return missing[0]


@pytest.mark.parametrize(
    "option, message",
    [
        (["--learning-rate", "inf"], "--learning-rate must be a positive number"),
        (["--learning-rate", "-1"], "--learning-rate must be a positive number"),
        # helper 78: argparse read -1e-3 as an option ("expected one argument")
        (["--learning-rate", "-1e-3"], "--learning-rate must be a positive number"),
        (["--beta", "-inf"], "--beta must be a positive number"),
        # helper 78: the first file was used and the last one recorded in run_config.json
        (["--config", "BOTH", "--config=BOTH"], "--config is given more than once"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be at least 1"),
        (["--epochs", "0", "--max-steps", "-1"], "--epochs must be more than 0"),
        (["--max-steps", "0"], "--max-steps must be at least 1"),
        # helper 78: trained by epochs, evaluated never, kept every checkpoint, without a word
        (["--max-steps", "-5"], "--max-steps must be at least 1 (or -1: train for --epochs), got -5"),
        (["--eval_steps", "1"], "--eval_steps needs held-out pairs to evaluate"),
        (["--eval_steps", "0", "--eval-data", "EVAL"], "--eval_steps must be more than 0"),
        (["--save_total_limit", "0"], "--save_total_limit must be at least 1 checkpoint"),
        (["--dtype", "bf16", "--precision", "fp32"], "--precision fp32 and --dtype bf16 ask for different"),
        (["--label_smoothing_factor", "0.1"], "use --loss-label-smoothing"),  # helper 79: did nothing
        (["--lora-r", "4"], "set the LoRA adapters: they need --lora"),  # helper 80: a full fine-tune ran
        (["--lora-target-modules", "query"], "set the LoRA adapters: they need --lora"),
        (["--max-length", "-1"], "--max-length must be a whole number >= 8"),
        (["--limit", "0"], "--limit must be at least 1 pair"),
        (["--beta", "nan"], "--beta must be a positive number"),
        (["--center-rewards", "-1"], "--center-rewards must be a number >= 0"),
        (["--loss-label-smoothing", "0.5"], "--loss-label-smoothing must be in [0, 0.5)"),
        (["--seed", "-1"], "--seed must be a whole number in [0, 2**32)"),
        (["--lora", "--lora-r", "0"], "--lora-r must be at least 1"),
        (["--lora", "--lora-alpha", "0"], "--lora-alpha must be more than 0"),
        (["--lora", "--lora-dropout", "1.5"], "--lora-dropout must be in [0, 1)"),
        (["--eval-split", "0.2", "--eval-data", "EVAL"], "give --eval-data or --eval-split, not both"),
        (["--eval-data", "DATA"], "--eval-data is the training file"),
        (["--max-length", "abc"], "invalid int value: 'abc'"),
        (["--epochs", "0"], "--epochs must be more than 0"),  # checked even beside --max-steps
        (["--epochs", "nan"], "--epochs must be more than 0"),
        (["--max-tokens-per-batch", "-2"], "--max-tokens-per-batch must be a whole number >= 0"),
        (["--warmup_steps", "-1"], "warmup_steps >= 0"),  # TrainingArguments' own checks
        (
            ["--load_best_model_at_end", "--eval_strategy", "steps", "--eval-data", "EVAL"],
            "save and eval strategy to match",
        ),
        (["--lr_scheduler_kwargs", "{bad"], "an option that takes JSON got invalid JSON"),
        # these failed only after loading, or at the final evaluation (no model saved)
        (["--per_device_eval_batch_size", "0"], "--per_device_eval_batch_size must be at least 1"),
        (["--weight_decay", "nan"], "--weight_decay must be a finite number"),
        (["--adam_beta1", "2"], "--adam_beta1 must be in [0, 1)"),
        (["--adam_epsilon", "-1"], "--adam_epsilon must be >= 0"),
        (["--report_to", "bogus"], "--report_to bogus: unknown"),
        (["--report_to", "MISSING"], ": not installed (pip install"),
        (["--save-adapter"], "--save-adapter keeps a LoRA adapter: it needs --lora"),
        # helper round 37: a traceback, silently ignored options, TRL's names
        (
            [
                "--eval_strategy",
                "steps",
                "--eval_steps",
                "1",
                "--load_best_model_at_end",
                "--save_strategy",
                "steps",
            ],
            "--load_best_model_at_end needs held-out pairs",
        ),
        (["--eval_strategy", "steps"], "--eval_strategy steps needs held-out pairs"),
        (["--precision", "fp32", "--bf16"], "ask for different precisions"),
        (["--precision", "fp32", "--fp16"], "ask for different precisions"),
        (["--load_best_model_at_end"], "--load_best_model_at_end needs held-out pairs"),
        (["--config", "BOTH"], "one thing: keep one of them"),
        (["--batch-size", "4", "--per_device_train_batch_size", "8"], "set one thing: give one of them"),
        (["--epochs", "1", "--num_train_epochs", "2"], "set one thing: give one of them"),
        (["--model_name_or_path", "m"], "TRL's --model_name_or_path is --model here"),
        (["--use_peft"], "TRL's --use_peft is --lora here"),
        (
            ["--lora", "--lora_target_modules", "q_proj", "v_proj"],
            "comma-separated: --lora_target_modules q_proj,v_proj",
        ),
        # session 20: set back to False without a word
        (["--remove_unused_columns", "true"], "--remove_unused_columns true would drop the columns"),
    ],
)
def test_a_bad_option_value_is_one_line_before_any_work(
    tmp_path, data, capsys, tiny_bert_dir, option, message
):
    other = tmp_path / "eval.jsonl"
    other.write_text(data.read_text())
    option = [str(data) if o == "DATA" else str(other) if o == "EVAL" else o for o in option]
    option = [_missing_tracker() if o == "MISSING" else o for o in option]
    both = tmp_path / "both.yaml"
    both.write_text("batch_size: 4\nper_device_train_batch_size: 8\n")
    option = [str(both) if o == "BOTH" else o for o in option]
    out = tmp_path / "out"
    code = one_step(tiny_bert_dir, data, out, *option)
    captured = capsys.readouterr()
    assert code == 2 and "Traceback" not in captured.err
    assert captured.err.startswith("rewardforge train: error:") and message in captured.err
    assert "train data:" not in captured.out and not (out / "model.safetensors").exists()


def test_an_existing_run_is_refused_replaced_with_overwrite_or_continued_with_resume(
    tmp_path, data, capsys, tiny_bert_dir
):
    out = tmp_path / "out"
    assert one_step(tiny_bert_dir, data, out, "--logging_steps", "1") == 0
    first = (out / "train_metrics.jsonl").read_text().splitlines()
    capsys.readouterr()
    assert one_step(tiny_bert_dir, data, out, "--logging_steps", "1") == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (out / "train_metrics.jsonl").read_text().splitlines() == first  # untouched
    assert one_step(tiny_bert_dir, data, out, "--logging_steps", "1", "--overwrite") == 0
    assert len((out / "train_metrics.jsonl").read_text().splitlines()) == len(first)  # replaced, not appended


def test_output_that_is_a_file_is_refused(tmp_path, data, capsys, tiny_bert_dir):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    assert train("--model", tiny_bert_dir, "--data", data, "--output", afile) == 2
    assert "exists and is not a folder" in capsys.readouterr().err and afile.read_text() == "keep me"


def test_config_file_given_as_config_equals_and_yaml_values_typed_like_flags(
    tmp_path, data, capsys, tiny_bert_dir
):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"model: {tiny_bert_dir}\ndata: {data}\nmax_length: 64\nlora: true\nlora_target_modules: [query, value]\n"
    )
    out = tmp_path / "out"
    assert train(f"--config={cfg}", "--output", out, "--max-steps", "1") == 0
    run = json.loads((out / "run_config.json").read_text())["rewardforge"]
    assert (run["max_length"], run["lora_target_modules"], run["data"]) == (64, "query,value", str(data))
    cfg.write_text(f"model: {tiny_bert_dir}\ndata: {data}\nmax_length: 2.5\n")
    capsys.readouterr()
    assert train("--config", cfg, "--output", tmp_path / "o2") == 2
    assert f"{cfg}: max_length: 2.5 is not a valid value" in capsys.readouterr().err
    cfg.write_text(f"model: {tiny_bert_dir}\ndata: [{data}, {data}]\n")  # helper 78: read as "a,b"
    assert train("--config", cfg, "--output", tmp_path / "o4") == 2
    assert f"{cfg}: data: a list is not a value here" in capsys.readouterr().err
    cfg.write_text(f"model: {tiny_bert_dir}\ndata: {data}\nbatch_size: [4]\n")  # was taken as 4
    assert train("--config", cfg, "--output", tmp_path / "o5") == 2
    assert f"{cfg}: batch_size: a list is not a value here" in capsys.readouterr().err
    cfg.write_text("config: other.yaml\n")
    assert train("--config", cfg, "--output", tmp_path / "o3") == 2
    assert "'config' cannot be set inside a config file" in capsys.readouterr().err


def test_model_mistakes_are_one_line(tmp_path, data, capsys):
    missing = tmp_path / "no_such_model"
    assert train("--model", missing, "--data", data, "--output", tmp_path / "o") == 2
    assert f"no such model folder or file: {missing}" in capsys.readouterr().err
    fake = tmp_path / "x.gguf"
    fake.write_bytes(b"not a gguf file at all")
    assert train("--model", fake, "--data", data, "--output", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "is not a GGUF model transformers can read" in err and "Traceback" not in err


def test_a_classifier_with_two_outputs_trains_a_new_one_output_head(tmp_path, data, capsys, tiny_bert_dir):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    two = tmp_path / "two_labels"
    config = AutoConfig.from_pretrained(tiny_bert_dir, num_labels=2)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(two)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(two)
    out = tmp_path / "out"
    assert one_step(two, data, out) == 0
    assert "a new one-output head is trained" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "reward"}


def test_max_length_beyond_the_position_embeddings_is_capped_with_a_note(
    tmp_path, data, capsys, tiny_bert_dir
):
    positions = json.loads((tiny_bert_dir / "config.json").read_text())["max_position_embeddings"]
    out = tmp_path / "out"
    assert one_step(tiny_bert_dir, data, out, "--max-length", positions + 100) == 0
    assert f"is more than the model's {positions} positions: using {positions}" in capsys.readouterr().out
    assert json.loads((out / "rewardforge.json").read_text())["max_length"] == positions


def test_resume_passes_over_a_damaged_newest_checkpoint_and_refuses_a_named_one(
    tmp_path, data, capsys, tiny_bert_dir
):
    out = tmp_path / "out"
    base = ["--model", tiny_bert_dir, "--data", data, "--output", out, "--batch-size", "2"]
    assert (
        main(["train", *map(str, base), "--max-steps", "2", "--save_steps", "1", "--disable_tqdm", "true"])
        == 0
    )
    (out / "checkpoint-2" / "optimizer.pt").unlink()
    capsys.readouterr()
    assert (
        main(
            [
                "train",
                *map(str, base),
                "--max-steps",
                "3",
                "--resume",
                "--save_strategy",
                "no",
                "--disable_tqdm",
                "true",
            ]
        )
        == 0
    )
    said = capsys.readouterr().out
    assert "skipping checkpoint-2: optimizer.pt missing" in said
    assert (
        json.loads((out / "metrics.json").read_text())["train"]["total_pairs"] == 6
    )  # the whole run: 3 steps of 2 pairs
    code = main(["train", *map(str, base), "--resume", str(out / "checkpoint-2"), "--disable_tqdm", "true"])
    assert code == 2 and "cannot resume from it: optimizer.pt missing" in capsys.readouterr().err


def test_written_files_are_readable_by_others_like_any_new_file(tmp_path, data, tiny_bert_dir):
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        assert one_step(tiny_bert_dir, data, out, "--save_strategy", "steps", "--save_steps", "1") == 0
    finally:
        os.umask(old)
    # the weights too, a checkpoint's as well: transformers writes them 0600, and a server run by
    # another user must read them
    names = ("rewardforge.json", "run_config.json", "metrics.json", "model.safetensors", "config.json")
    for name in (*names, "checkpoint-1/model.safetensors"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name


def test_limit_and_eval_split_keep_records_whole(tmp_path):
    """`--limit 4` trained on one Nectar record and a third of the next; `--eval-split` could put
    one record's pairs on both sides of the split."""
    from _rows import jsonl

    from rewardforge.training.arguments import RewardArguments
    from rewardforge.training.run import load_training_data

    def nectar(i: int) -> dict:
        answers = [{"answer": f"Answer {k} to {i}.", "rank": k + 1} for k in range(3)]
        return {"id": f"r{i}", "prompt": f"Question {i}?", "answers": answers}

    data = jsonl(tmp_path, [nectar(i) for i in range(10)])  # 3 pairs per record
    train, _, summary, _ = load_training_data(RewardArguments(data=data, limit=4), tmp_path)
    assert len(train) == 3 and summary["train"]["pairs"] == 3
    train, held, summary, _ = load_training_data(RewardArguments(data=data, eval_split=0.2), tmp_path)
    assert (len(train), len(held)) == (24, 6)
    assert not {p.source for p in train} & {p.source for p in held}
    # helper 75: rewardforge.json said 30 train pairs, the count before the split
    assert summary["train"]["pairs"] == 24 and summary["train"]["held_out_by_eval_split"] == 6
    assert summary["eval"]["pairs"] == 6
    from rewardforge.data.loader import fingerprint

    assert summary["eval"]["fingerprint"] == fingerprint(held)  # helper 78: the split had none


def test_records_a_processor_skips_are_counted_and_said(tmp_path, capsys):
    """helper 75: eval said how many records the processor skipped on purpose; train did not."""
    from _rows import jsonl

    from rewardforge.training.arguments import RewardArguments
    from rewardforge.training.run import load_training_data

    proc = tmp_path / "proc.py"
    proc.write_text(
        "from rewardforge.data import PreferenceProcessor\n"
        "class Odd(PreferenceProcessor):\n"
        "    def to_pair(self, r):\n"
        "        if r['n'] % 2: return None\n"
        "        return {'prompt': 'p', 'chosen': f\"a{r['n']}\", 'rejected': 'b'}\n"
    )
    data = jsonl(tmp_path, [{"n": i} for i in range(6)])
    dev = jsonl(tmp_path, [{"n": i} for i in range(6, 12)], "dev.jsonl")
    args = RewardArguments(data=data, eval_data=dev, processor=f"{proc}:Odd")
    train, held, summary, _ = load_training_data(args, tmp_path)
    assert len(train) == len(held) == 3
    assert summary["train"]["skipped_by_processor"] == summary["eval"]["skipped_by_processor"] == 3
    assert "3 pairs; 3 record(s) skipped by the processor (it returned None)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("option", "precision"),
    [(["--bf16"], "bf16 autocast"), (["--bf16", "false"], "fp32"), (["--config", "TRL"], "fp32")],
)
def test_bf16_as_trl_users_write_it(tmp_path, data, capsys, tiny_bert_dir, option, precision):
    """`--bf16` failed on a CPU ("doesn't support bf16/gpu") though the default runs bf16 there;
    `--bf16 false` and a TRL config's `bf16: false` still trained in bf16."""
    trl = tmp_path / "trl.yaml"
    trl.write_text("bf16: false\nlearning_rate: 1.0e-4\n")
    option = [str(trl) if o == "TRL" else o for o in option]
    assert one_step(tiny_bert_dir, data, tmp_path / "out", *option) == 0
    assert f"precision: {precision}" in capsys.readouterr().out


def test_load_best_model_at_end_with_held_out_pairs_evaluates_at_the_saves(tmp_path, data, tiny_bert_dir):
    """It needed --eval_strategy steps spelled out, or transformers refused the save strategy."""
    dev = tmp_path / "dev.jsonl"
    dev.write_text(data.read_text().replace('"q', '"held-out q'))  # all in the training data is refused
    out = tmp_path / "out"
    assert one_step(tiny_bert_dir, data, out, "--eval-data", dev, "--load_best_model_at_end", "--save_strategy",
                    "steps", "--save_steps", "1", "--max-steps", "2") == 0  # fmt: skip
    logged = [json.loads(line) for line in (out / "train_metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "eval_loss" in r][:2] == [1, 2]


def test_a_best_model_runs_config_takes_new_save_settings(tmp_path, data, tiny_bert_dir):
    """Reusing its run_config.json with --save_steps 1 was refused: the recorded eval steps (2)
    were taken as the user's own."""
    dev = tmp_path / "dev.jsonl"
    dev.write_text(data.read_text().replace('"q', '"held-out q'))  # all in the training data is refused
    first = tmp_path / "first"
    assert one_step(tiny_bert_dir, data, first, "--eval-data", dev, "--load_best_model_at_end", "--save_strategy",
                    "steps", "--save_steps", "2", "--max-steps", "4") == 0  # fmt: skip
    again = [
        "--config",
        first / "run_config.json",
        "--output",
        tmp_path / "again",
        "--save_strategy",
        "steps",
        "--save_steps",
        "1",
    ]
    assert train(*again) == 0


def test_an_explicit_eval_batch_size_is_kept_beside_batch_size():
    """--batch-size 4 --per_device_eval_batch_size 8 evaluated 4 pairs at a time: an eval batch
    of exactly 8 was taken for the transformers default and replaced."""
    from rewardforge.commands.train import parse
    from rewardforge.training.run import prepare_training_args

    for eval_batch in ("8", "16", "3"):
        args, targs = parse(["--batch-size", "4", "--per_device_eval_batch_size", eval_batch, "--data", "x"])
        resolved = prepare_training_args(targs, args, has_eval=True)
        assert (resolved.per_device_train_batch_size, resolved.per_device_eval_batch_size) == (
            4,
            int(eval_batch),
        )
        assert resolved.remove_unused_columns is False


def test_a_run_config_recorded_with_remove_unused_columns_true_is_still_a_config(tmp_path):
    """Runs before session 20 recorded the transformers default (true) in run_config.json; the
    option is now refused, but reusing such a record must still work."""
    from rewardforge.commands.train import parse

    record = tmp_path / "run_config.json"
    record.write_text(json.dumps({
        "rewardforge": {"data": "x", "max_length": 64},
        "training_arguments": {"remove_unused_columns": True, "learning_rate": 1e-4},
    }))  # fmt: skip
    args, targs = parse(["--config", str(record)])
    assert targs.remove_unused_columns is False and targs.learning_rate == 1e-4 and args.max_length == 64


def test_eval_data_that_is_all_in_the_training_data_is_refused_in_any_form(tmp_path, capsys):
    """helper 83: only the same file was refused; the same pairs as Parquet, or a saved dataset's
    train split named as PATH:train, trained and reported training accuracy as held-out."""
    import pandas as pd
    from _rows import jsonl
    from datasets import Dataset, DatasetDict

    from rewardforge.training.arguments import RewardArguments
    from rewardforge.training.run import UsageError, load_training_data

    data = jsonl(tmp_path, ROWS)
    as_parquet = tmp_path / "same.parquet"
    pd.DataFrame(ROWS).to_parquet(as_parquet)
    saved = tmp_path / "saved"
    DatasetDict({"train": Dataset.from_list(ROWS), "test": Dataset.from_list(ROWS[:2])}).save_to_disk(saved)
    for train_spec, eval_spec in ((data, str(as_parquet)), (f"{saved}:train", f"{saved}:train"),
                                  (str(saved), f"{saved}:train"), (data, f"{saved}:test")):  # fmt: skip
        with pytest.raises(UsageError, match="is in the training data: its accuracy would not be held-out"):
            load_training_data(RewardArguments(data=str(train_spec), eval_data=eval_spec), tmp_path)
    # some pairs of both: trained, and said
    dev = jsonl(tmp_path, [*ROWS[:2], {"prompt": "new", "chosen": "a", "rejected": "b"}], "dev.jsonl")
    _, held, summary, _ = load_training_data(RewardArguments(data=str(data), eval_data=dev), tmp_path)
    assert len(held) == 3 and summary["eval"]["also_in_train"] == 2
    assert "3 pairs (2 of them also in the training data)" in capsys.readouterr().out


def test_held_out_pairs_that_differ_from_training_ones_only_in_spacing_are_the_same_pairs(tmp_path):
    """helper 87: a trailing space on the prompt and a leading one on the reply made training
    pairs count as held out (the data layer already reads such texts as the same)."""
    from _rows import jsonl

    from rewardforge.training.arguments import RewardArguments
    from rewardforge.training.run import UsageError, load_training_data

    data = jsonl(tmp_path, ROWS)
    spaced = [{**r, "prompt": r["prompt"] + " ", "chosen": " " + r["chosen"]} for r in ROWS]
    dev = jsonl(tmp_path, spaced, "dev.jsonl")
    with pytest.raises(UsageError, match="is in the training data"):
        load_training_data(RewardArguments(data=str(data), eval_data=dev), tmp_path)
