"""The output folder of `rewardforge train`: no run may destroy a model or an earlier run it was
not asked to replace, --overwrite leaves nothing of the replaced run for a scorer to load, a
resume continues only the run it belongs to, and run_config.json is the config that ran.

Each case came from fuzzing the train command (helper round 23): before, `--output` equal to
`--model` overwrote the base model, `--overwrite` deleted the old run before a typo in `--data`
was found and left its adapter beside the new merged model, a resume with other data or another
learning rate went through silently, and a killed final save left a whole model copy behind.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from _rows import jsonl
from safetensors.torch import load_file

from rewardforge.cli import main

ROWS = [{"prompt": f"q{i}", "chosen": f"good answer {i}", "rejected": f"bad {i}"} for i in range(8)]
# held-out pairs of the same kind (eval data that is all in the training data is refused)
DEV_ROWS = [
    {"prompt": f"held-out q{i}", "chosen": f"good answer {i}", "rejected": f"bad {i}"} for i in range(8)
]


@pytest.fixture
def data(tmp_path):
    return Path(jsonl(tmp_path, ROWS))


def train(model, data, out, *extra) -> int:
    argv = [
        "train",
        "--model",
        model,
        "--data",
        data,
        "--output",
        out,
        "--max-steps",
        "2",
        "--batch-size",
        "4",
    ]
    return main([*map(str, argv), "--disable_tqdm", "true", *map(str, extra)])


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_output_that_is_the_model_folder_is_refused(tmp_path, data, capsys, tiny_bert_dir):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_bert_dir, model)
    before = digest(model / "model.safetensors")
    assert train(model, data, model) == 2
    assert "is the --model folder" in capsys.readouterr().err
    assert digest(model / "model.safetensors") == before


def test_a_folder_holding_a_model_is_not_written_into_without_overwrite(
    tmp_path, data, capsys, tiny_bert_dir
):
    import shutil

    other = tmp_path / "other_model"
    shutil.copytree(tiny_bert_dir, other)
    assert train(tiny_bert_dir, data, other) == 2
    assert "already holds a run or a model" in capsys.readouterr().err


def test_overwrite_keeps_the_old_run_until_data_and_model_have_loaded(tmp_path, data, capsys, tiny_bert_dir):
    out = tmp_path / "run"
    assert train(tiny_bert_dir, data, out, "--save_steps", "1") == 0
    kept = sorted(p.name for p in out.iterdir())
    assert train(tiny_bert_dir, tmp_path / "typo.jsonl", out, "--overwrite") == 2
    assert sorted(p.name for p in out.iterdir()) == kept  # a typo costs nothing
    capsys.readouterr()
    assert train(out / "checkpoint-2", data, out, "--overwrite") == 2
    assert "--overwrite would delete --model" in capsys.readouterr().err
    assert (out / "checkpoint-2").is_dir()


def test_overwrite_keeps_the_old_run_until_the_new_model_is_saved(
    tmp_path, data, capsys, monkeypatch, tiny_bert_dir
):
    """helper 63: a run that failed after --overwrite had deleted the old one left neither. The
    old run is set aside in the folder and dropped only once the new model is saved."""
    from rewardforge.training.trainer import RewardTrainer

    out = tmp_path / "run"
    assert train(tiny_bert_dir, data, out, "--save_steps", "1") == 0
    old = {p.name: digest(p) for p in out.iterdir() if p.is_file()}
    old_checkpoints = sorted(p.name for p in out.glob("checkpoint-*"))

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(RewardTrainer, "train", interrupted)
        assert train(tiny_bert_dir, data, out, "--overwrite", "--learning-rate", "1e-3") == 130
    (aside,) = out.glob(".replaced-*")
    assert f"kept in {aside}" in capsys.readouterr().out
    kept = {name: digest(aside / name) for name in old if (aside / name).is_file()}
    assert kept == {name: d for name, d in old.items() if name in kept}
    assert {"model.safetensors", "rewardforge.json", "metrics.json"} <= set(kept)
    assert sorted(p.name for p in aside.glob("checkpoint-*")) == old_checkpoints
    assert not (out / "model.safetensors").exists()  # nothing of it is mistaken for the new run

    assert train(tiny_bert_dir, data, out, "--overwrite", "--learning-rate", "1e-3") == 0
    assert f"{aside} holds a run that an --overwrite replaced" in capsys.readouterr().out
    assert not list(out.glob(".replaced-*"))  # the new model is saved: the replaced runs go
    assert digest(out / "model.safetensors") != old["model.safetensors"]


def test_overwrite_leaves_no_adapter_of_the_replaced_run(tmp_path, data, tiny_llama_dir):
    from rewardforge import RewardModel

    out = tmp_path / "run"
    assert train(tiny_llama_dir, data, out, "--lora", "--save-adapter", "--save_strategy", "no") == 0
    assert (out / "adapter_config.json").is_file()
    card = out / "README.md"
    assert "library_name: peft" in card.read_text()  # PEFT's model card of the adapter
    assert (
        train(tiny_llama_dir, data, out, "--overwrite", "--save_strategy", "no", "--learning-rate", "1e-3")
        == 0
    )
    assert not list(out.glob("adapter_*"))
    assert not card.exists() or "library_name: peft" not in card.read_text()  # it described the adapter
    saved = load_file(str(out / "model.safetensors"))
    rm = RewardModel.from_pretrained(str(out))
    weight = rm.model.score.weight.detach()
    assert weight.equal(saved["score.weight"])  # the new run's own model is what loads


def test_leftovers_of_a_killed_final_save_are_removed(tmp_path, data, tiny_bert_dir):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".save-abc123").mkdir()
    (out / ".save-abc123" / "model.safetensors").write_bytes(b"x" * 100)
    assert train(tiny_bert_dir, data, out, "--save_steps", "1") == 0
    assert not list(out.glob(".save-*")) and not (out / ".staging").exists()


def test_resume_refuses_other_settings_and_continues_with_the_same(tmp_path, data, capsys, tiny_bert_dir):
    out = tmp_path / "run"
    assert train(tiny_bert_dir, data, out, "--save_steps", "1", "--max-steps", "1") == 0
    (out / "model.safetensors").unlink()  # as if killed after its checkpoint
    other = tmp_path / "other.jsonl"
    other.write_text(data.read_text().replace("good", "fine"))
    assert train(tiny_bert_dir, other, out, "--resume", "--max-steps", "2") == 2
    assert "train_data" in capsys.readouterr().err
    assert train(tiny_bert_dir, data, out, "--resume", "--max-steps", "2", "--learning-rate", "0.1") == 2
    assert "learning_rate 5e-05 -> 0.1" in capsys.readouterr().err
    assert train(tiny_bert_dir, data, out, "--resume", "--max-steps", "2", "--lora") == 2
    assert train(tiny_bert_dir, data, out, "--resume", "--max-steps", "2") == 0  # more steps: allowed


def test_run_config_is_the_resolved_config_and_reproduces_the_run(tmp_path, data, tiny_bert_dir):
    first, second = tmp_path / "a", tmp_path / "b"
    assert train(tiny_bert_dir, data, first, "--save_strategy", "no") == 0
    config = json.loads((first / "run_config.json").read_text())
    resolved = config["training_arguments"]
    assert resolved["output_dir"] == str(first) and resolved["per_device_train_batch_size"] == 4
    assert main(["train", "--config", str(first / "run_config.json"), "--output", str(second)]) == 0
    a, b = load_file(str(first / "model.safetensors")), load_file(str(second / "model.safetensors"))
    assert all(a[k].equal(b[k]) for k in a)


def test_yaml_values_read_as_their_flags(tmp_path, data, capsys, tiny_bert_dir):
    config = tmp_path / "run.yaml"
    config.write_text(
        f"model: {tiny_bert_dir}\ndata: {data}\nmax_steps: 2\nbatch_size: 4\n"
        "lr_scheduler_type: cosine_with_min_lr\nlr_scheduler_kwargs: {min_lr: 1.0e-6}\n"
        "report_to: []\nsave_strategy: no\n"
    )
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--output", str(out)]) == 0
    resolved = json.loads((out / "run_config.json").read_text())["training_arguments"]
    assert resolved["lr_scheduler_kwargs"] == {"min_lr": 1e-6} and resolved["save_strategy"] == "no"
    assert not list(out.glob("checkpoint-*"))
    config.write_text(config.read_text() + "gradient_accumulation_steps: null\n")
    assert main(["train", "--config", str(config), "--output", str(tmp_path / "x")]) == 2
    assert "gradient_accumulation_steps: null is not a value here" in capsys.readouterr().err


def test_an_eval_split_holding_out_every_record_says_so(tmp_path, capsys, tiny_bert_dir):
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps(ROWS[0]) + "\n")
    assert train(tiny_bert_dir, one, tmp_path / "run", "--eval-split", "0.5") == 2
    assert "holds out every one of the 1 record(s)" in capsys.readouterr().err


def test_an_eval_split_names_the_datas_shape(tmp_path, capsys, tiny_bert_dir):
    """It printed "shape split", which no shape is, and rewardforge.json kept none."""
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS * 2))
    out = tmp_path / "run"
    assert train(tiny_bert_dir, data, out, "--eval-split", "0.5", "--save_strategy", "no") == 0
    printed = capsys.readouterr().out
    shape = json.loads((out / "rewardforge.json").read_text())["data"]["train"]["shape"]
    assert f"(eval split 0.5), shape {shape}," in printed and "shape split" not in printed
    assert json.loads((out / "rewardforge.json").read_text())["data"]["eval"]["shape"] == shape


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "class P(PreferenceProcessor):\n    def __init__(self, x): pass\n    def to_pair(self, r): return r\n",
            "could not be created",
        ),
        ("raise RuntimeError('boom')\n", "raised on import: RuntimeError: boom"),
        (
            "class P(PreferenceProcessor):\n    def to_pair(self, r): return r\n"
            "    def read(self, spec): raise OSError('disk gone')\n",
            "P.read() raised OSError: disk gone",
        ),
    ],
)
def test_processor_failures_are_clean_errors(tmp_path, data, capsys, tiny_bert_dir, body, message):
    proc = tmp_path / "proc.py"
    proc.write_text("from rewardforge.data import PreferenceProcessor\n" + body)
    code = train(tiny_bert_dir, data, tmp_path / "run", "--processor", f"{proc}:P")
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_resume_from_a_checkpoint_at_max_steps_trains_no_extra_step(tmp_path, data, tiny_bert_dir):
    """The Trainer ran one step past --max-steps when resumed from the last checkpoint."""
    out = tmp_path / "run"
    assert train(tiny_bert_dir, data, out, "--save_steps", "1") == 0
    first = json.loads((out / "metrics.json").read_text())["train"]
    (out / "model.safetensors").unlink()  # killed in the final save
    assert train(tiny_bert_dir, data, out, "--resume") == 0
    again = json.loads((out / "metrics.json").read_text())["train"]
    assert not (out / "checkpoint-3").exists()
    assert again["total_pairs"] == first["total_pairs"] == 8
    assert again["train_loss"] == pytest.approx(first["train_loss"], abs=1e-6)
    logged = [json.loads(line) for line in (out / "train_metrics.jsonl").read_text().splitlines()]
    summaries = [r for r in logged if "train_loss" in r]  # the Trainer's end-of-training record
    assert len(summaries) == 1 and summaries[0]["train_loss"] == pytest.approx(first["train_loss"], abs=1e-6)


def test_resume_with_nothing_to_continue_does_not_replace_a_model(tmp_path, data, capsys, tiny_bert_dir):
    import shutil

    precious = tmp_path / "precious"
    shutil.copytree(tiny_bert_dir, precious)
    before = digest(precious / "model.safetensors")
    assert train(tiny_bert_dir, data, precious, "--resume") == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert digest(precious / "model.safetensors") == before


def scheduler_kwargs_from_config(model, data, out, tail: str) -> dict:
    """Train from a YAML config ending in `tail`; the scheduler arguments the run resolved."""
    config = out.with_suffix(".yaml")
    config.write_text(
        f"model: {model}\ndata: {data}\nmax_steps: 2\nbatch_size: 4\nsave_strategy: 'no'\n{tail}"
    )
    assert main(["train", "--config", str(config), "--output", str(out)]) == 0
    return json.loads((out / "run_config.json").read_text())["training_arguments"]["lr_scheduler_kwargs"]


def test_config_numbers_yaml_reads_as_text_and_json_configs(tmp_path, data, tiny_bert_dir):
    """YAML 1.1 reads 1e-6 as text: inside a dict no option type turns it back into a number."""
    tail = "lr_scheduler_type: cosine_with_min_lr\nlr_scheduler_kwargs: {min_lr: 1e-6}\nreport_to: null\n"
    out = tmp_path / "run"
    assert scheduler_kwargs_from_config(tiny_bert_dir, data, out, tail) == {"min_lr": 1e-6}
    assert main(["train", "--config", str(out / "run_config.json"), "--output", str(tmp_path / "again")]) == 0


def test_best_model_and_fractional_epochs_when_finishing_from_the_last_checkpoint(
    tmp_path, data, tiny_bert_dir
):
    """A run killed in its final save, resumed: the best checkpoint's weights (its path in the
    saved state named the staging folder, which the resume could not find), no extra step after
    a fractional --epochs, and the final evaluation logged once."""
    dev = jsonl(tmp_path, DEV_ROWS[:4], "dev.jsonl")
    out = tmp_path / "run"
    best = ["--eval-data", dev, "--eval_strategy", "steps", "--eval_steps", "1", "--save_steps", "1",
            "--load_best_model_at_end", "true", "--metric_for_best_model", "eval_loss",
            "--greater_is_better", "true", "--epochs", "1.5", "--max-steps", "-1", "--learning-rate", "1e-3"]  # fmt: skip
    assert train(tiny_bert_dir, data, out, *best) == 0
    states = [json.loads(p.read_text()) for p in out.glob("checkpoint-*/trainer_state.json")]
    assert states and all(".staging" not in (s.get("best_model_checkpoint") or "") for s in states)
    first = json.loads((out / "metrics.json").read_text())
    weights = load_file(str(out / "model.safetensors"))
    last = max(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    (out / "model.safetensors").unlink()  # killed in the final save
    assert train(tiny_bert_dir, data, out, *best, "--resume") == 0
    again = json.loads((out / "metrics.json").read_text())
    assert max(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*")) == last  # no extra step
    assert again["train"]["total_pairs"] == first["train"]["total_pairs"]
    assert set(first["train"]) <= set(again["train"])  # the same keys as the uninterrupted run
    assert again["eval"]["eval_loss"] == pytest.approx(first["eval"]["eval_loss"], abs=1e-7)
    resumed = load_file(str(out / "model.safetensors"))
    assert all(weights[k].equal(resumed[k]) for k in weights)
    logged = [json.loads(line) for line in (out / "train_metrics.jsonl").read_text().splitlines()]
    finals = [r for r in logged if r["step"] == last and "eval_loss" in r]
    assert len(finals) == 2  # the periodic evaluation at the last step and the final one, once each


def test_a_json_config_with_a_byte_order_mark(tmp_path, data, tiny_bert_dir):
    config = tmp_path / "run.json"
    config.write_bytes(b"\xef\xbb\xbf" + json.dumps({"max_steps": 1, "save_strategy": "no"}).encode())
    out = tmp_path / "run"
    argv = ["train", "--config", str(config), "--model", str(tiny_bert_dir), "--data", str(data)]
    assert main([*argv, "--output", str(out)]) == 0


# ---- helper round 28 --------------------------------------------------------------------------


def test_resume_from_another_runs_checkpoint_does_not_replace_the_output(
    tmp_path, data, capsys, tiny_bert_dir
):
    """--resume PATH from elsewhere wrote over a model folder given as --output, no --overwrite asked."""
    import shutil

    base = tmp_path / "base"
    assert train(tiny_bert_dir, data, base, "--save_steps", "1") == 0
    precious = tmp_path / "precious"
    shutil.copytree(tiny_bert_dir, precious)
    before = digest(precious / "model.safetensors")
    assert train(tiny_bert_dir, data, precious, "--max-steps", "3", "--resume", base / "checkpoint-1") == 2
    assert "is not a checkpoint of" in capsys.readouterr().err
    assert digest(precious / "model.safetensors") == before
    # into a fresh folder it continues that run, checked against that run's settings
    fresh = tmp_path / "fresh"
    assert train(tiny_bert_dir, data, fresh, "--max-steps", "3", "--resume", base / "checkpoint-1") == 0
    assert (
        train(
            tiny_bert_dir, data, tmp_path / "f2", "--learning-rate", "1e-3", "--resume", base / "checkpoint-1"
        )
        == 2
    )
    assert "learning_rate" in capsys.readouterr().err


def test_flags_override_config_values_set_under_the_other_name(tmp_path, data, tiny_bert_dir):
    """run_config.json holds `output`, `epochs` and `batch_size` beside TrainingArguments' names:
    --output_dir wrote into (and with --overwrite, replaced) the config's run instead."""
    first = tmp_path / "first"
    assert train(tiny_bert_dir, data, first, "--save_strategy", "no") == 0
    config = str(first / "run_config.json")
    second = tmp_path / "second"
    argv = ["train", "--config", config, "--output_dir", str(second), "--per_device_train_batch_size", "2",
            "--precision", "fp32", "--disable_tqdm", "true"]  # fmt: skip
    assert main(argv) == 0
    assert (second / "model.safetensors").is_file()
    meta = json.loads((second / "rewardforge.json").read_text())
    assert meta["precision"] == "fp32"
    assert json.loads((second / "metrics.json").read_text())["train"]["total_pairs"] == 4  # 2 steps of 2


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--lr_scheduler_kwargs", '{"min_lr": 1e-6}'], "unexpected keyword argument 'min_lr'"),
        (["--lr_scheduler_type", "cosine_with_min_lr"], "min_lr"),
        (["--optim", "adamw_bnb_8bit"], "bitsandbytes"),
        (["--optim_args", "foo"], "with --optim_args foo (key=value,...)"),  # it blamed --optim alone
        # helper 54: a bad metric name crashed after --overwrite had removed the old model; the
        # others left an empty output folder, or a traceback (--debug underflow_overflow)
        (["--metric_for_best_model", "eval_acc"], "--metric_for_best_model eval_acc: no evaluation gives it; choose one of loss, accuracy, margin_mean"),
        (["--eval-split", "1"], "--eval-split must be a fraction between 0 and 1, got 1.0"),
        (["--precision", "fp16"], "--precision must be auto, fp32 or bf16"),
        (["--dtype", "fp16"], "--dtype must be fp32 or bf16"),
        (["--debug", "underflow_overflow"], "--debug underflow_overflow cannot watch a reward model"),
    ],
)  # fmt: skip
def test_options_that_cannot_work_are_refused_before_overwrite_and_any_folder(
    tmp_path, data, capsys, tiny_bert_dir, extra, message
):
    """--overwrite removed the old run, then the Trainer failed on its optimizer: nothing left."""
    out = tmp_path / "run"
    assert train(tiny_bert_dir, data, out, "--save_strategy", "no") == 0
    before = digest(out / "model.safetensors")
    assert train(tiny_bert_dir, data, out, "--overwrite", *extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert digest(out / "model.safetensors") == before
    assert train(tiny_bert_dir, data, tmp_path / "new", *extra) == 2
    assert not (tmp_path / "new").exists()


def test_the_best_checkpoint_is_found_after_the_run_folder_moved(tmp_path, data, tiny_bert_dir):
    """The saved state names the best checkpoint by the path typed when it was saved: after a move
    (or from another working directory) a resume saved the last model, not the best."""
    dev = jsonl(tmp_path, DEV_ROWS[:4], "dev.jsonl")
    best = ["--eval-data", dev, "--eval_steps", "1", "--save_steps", "1", "--load_best_model_at_end", "true",
            "--metric_for_best_model", "eval_loss", "--greater_is_better", "true", "--max-steps", "4",
            "--learning-rate", "1e-3"]  # fmt: skip
    out = tmp_path / "run"
    assert train(tiny_bert_dir, data, out, *best) == 0  # eval_steps alone sets step evaluation
    weights = load_file(str(out / "model.safetensors"))
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["best_model_checkpoint"] != str(out / "checkpoint-4")  # the best is an earlier one
    (out / "model.safetensors").unlink()  # killed in the final save
    moved = tmp_path / "moved"
    out.rename(moved)
    assert train(tiny_bert_dir, data, moved, *best, "--resume") == 0
    resumed = load_file(str(moved / "model.safetensors"))
    assert all(weights[k].equal(resumed[k]) for k in weights)


def test_overwrite_keeps_files_that_only_look_like_a_runs(tmp_path, data, tiny_bert_dir):
    out = tmp_path / "run"
    assert train(tiny_bert_dir, data, out, "--save_steps", "1") == 0
    (out / "checkpoint-best-keep").mkdir()
    (out / "checkpoint-best-keep" / "notes.txt").write_text("mine")
    (out / "vocab.jsonl").write_text("mine")
    assert train(tiny_bert_dir, data, out, "--overwrite", "--save_strategy", "no") == 0
    assert (out / "checkpoint-best-keep" / "notes.txt").read_text() == "mine"
    assert (out / "vocab.jsonl").read_text() == "mine"
    assert not (out / "checkpoint-1").exists()


@pytest.mark.parametrize("damaged", ["model.safetensors", "scheduler.pt", "optimizer.pt"])
def test_a_damaged_newest_checkpoint_is_named_and_passed_over(tmp_path, data, capsys, tiny_bert_dir, damaged):
    out = tmp_path / "run"
    assert train(tiny_bert_dir, data, out, "--save_steps", "1") == 0
    first = json.loads((out / "metrics.json").read_text())["train"]
    path = out / "checkpoint-2" / damaged
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # a write cut short
    (out / "model.safetensors").unlink()
    assert train(tiny_bert_dir, data, out, "--resume") == 0
    assert f"skipping checkpoint-2: {damaged} is damaged" in capsys.readouterr().out
    again = json.loads((out / "metrics.json").read_text())["train"]
    assert again["train_loss"] == pytest.approx(first["train_loss"], abs=1e-6)


def test_a_resume_with_another_optimizer_is_refused(tmp_path, data, capsys, tiny_bert_dir):
    """The saved optimizer state does not fit another optimizer (sgd: KeyError 'momentum')."""
    out = tmp_path / "run"
    assert train(tiny_bert_dir, data, out, "--save_steps", "1") == 0
    (out / "model.safetensors").unlink()
    assert train(tiny_bert_dir, data, out, "--max-steps", "3", "--resume", "--optim", "sgd") == 2
    err = capsys.readouterr().err
    assert "optimizer" in err and "Traceback" not in err


def test_the_logged_train_loss_of_a_resumed_run_covers_the_whole_run(tmp_path, data, tiny_bert_dir):
    """train_metrics.jsonl's end record had the Trainer's loss over the steps after the resume."""
    out = tmp_path / "run"
    assert train(tiny_bert_dir, data, out, "--save_steps", "1", "--max-steps", "4") == 0
    whole = json.loads((out / "metrics.json").read_text())["train"]["train_loss"]
    import shutil

    shutil.rmtree(out / "checkpoint-4")  # killed after step 3's checkpoint
    assert train(tiny_bert_dir, data, out, "--save_steps", "1", "--max-steps", "4", "--resume") == 0
    logged = [json.loads(line) for line in (out / "train_metrics.jsonl").read_text().splitlines()]
    (summary,) = [r for r in logged if "train_runtime" in r]
    # exactly: the sum goes on from the saved one (it was added apart, and rounded apart: helper 56)
    assert summary["train_loss"] == whole
    assert json.loads((out / "metrics.json").read_text())["train"]["train_loss"] == whole


def test_empty_output_or_resume_is_refused(capsys):
    assert main(["train", "--output", ""]) == 2
    assert "--output is empty" in capsys.readouterr().err
    assert main(["train", "--resume", ""]) == 2
    assert "--resume is empty" in capsys.readouterr().err


# ---- helper round 33 (the check of round 28's fixes) -------------------------------------------


def test_empty_output_dir_and_a_nested_runs_checkpoint_are_refused(
    tmp_path, data, capsys, tiny_bert_dir, monkeypatch
):
    """--output_dir "" resolved to the working directory (with --overwrite it deleted the run
    there); a checkpoint of a run nested inside --output counted as the folder's own."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--output_dir", "", "--model", str(tiny_bert_dir), "--data", str(data)]) == 2
    assert "--output is empty" in capsys.readouterr().err
    outer = tmp_path / "outer"
    assert train(tiny_bert_dir, data, outer, "--save_strategy", "no") == 0
    assert train(tiny_bert_dir, data, outer / "inner", "--save_steps", "1") == 0
    before = digest(outer / "model.safetensors")
    assert (
        train(tiny_bert_dir, data, outer, "--max-steps", "3", "--resume", outer / "inner" / "checkpoint-1")
        == 2
    )
    assert "is not a checkpoint of" in capsys.readouterr().err
    assert digest(outer / "model.safetensors") == before


def test_a_copied_run_uses_its_own_best_checkpoint(tmp_path, data, tiny_bert_dir):
    """The copy's saved state named the original's best checkpoint: the copy's own was rotated
    away, and once the original was gone the best model was lost."""
    import shutil

    dev = jsonl(tmp_path, DEV_ROWS[:4], "dev.jsonl")
    best = ["--eval-data", dev, "--eval_steps", "1", "--save_steps", "1", "--load_best_model_at_end", "true",
            "--metric_for_best_model", "eval_loss", "--greater_is_better", "true", "--learning-rate", "1e-3",
            "--save_total_limit", "2"]  # fmt: skip
    original = tmp_path / "original"
    assert train(tiny_bert_dir, data, original, *best, "--max-steps", "3") == 0
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    assert train(tiny_bert_dir, data, copy, *best, "--max-steps", "4", "--resume") == 0
    named = json.loads((copy / "checkpoint-4" / "trainer_state.json").read_text())["best_model_checkpoint"]
    assert Path(named).parent.resolve() == copy.resolve() and Path(named).is_dir(), named


def test_a_run_started_from_another_runs_checkpoint_logs_each_step_once(tmp_path, data, tiny_bert_dir):
    base = tmp_path / "base"
    steps = ["--save_steps", "1", "--logging_steps", "1", "--save_total_limit", "5"]
    assert train(tiny_bert_dir, data, base, *steps, "--max-steps", "4") == 0
    fresh = tmp_path / "fresh"
    assert (
        train(tiny_bert_dir, data, fresh, *steps, "--max-steps", "4", "--resume", base / "checkpoint-2") == 0
    )
    import shutil

    shutil.rmtree(fresh / "checkpoint-4")  # killed before its last checkpoint
    (fresh / "model.safetensors").unlink()
    assert train(tiny_bert_dir, data, fresh, *steps, "--max-steps", "4", "--resume") == 0
    logged = [json.loads(line) for line in (fresh / "train_metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "loss" in r] == [1, 2, 3, 4]  # the source run's steps, then its own


def test_a_failed_resume_does_not_change_the_runs_recorded_settings(tmp_path, data, capsys, tiny_bert_dir):
    """A run recorded before the optimizer was part of its identity: a resume with another one
    crashed, but first wrote its own identity, so the right optimizer was refused next time."""
    out = tmp_path / "run"
    assert train(tiny_bert_dir, data, out, "--save_steps", "1") == 0
    config = json.loads((out / "run_config.json").read_text())
    del config["identity"]["optimizer"]
    (out / "run_config.json").write_text(json.dumps(config))
    (out / "model.safetensors").unlink()
    with pytest.raises(KeyError):  # the Trainer's own failure, as before the optimizer was recorded
        train(tiny_bert_dir, data, out, "--max-steps", "3", "--resume", "--optim", "sgd")
    assert "optimizer" not in json.loads((out / "run_config.json").read_text())["identity"]
    assert train(tiny_bert_dir, data, out, "--max-steps", "3", "--resume") == 0


def test_overwrite_keeps_user_files_named_like_weights(tmp_path, data, tiny_bert_dir):
    out = tmp_path / "run"
    assert train(tiny_bert_dir, data, out, "--save_strategy", "no") == 0
    for name in ("model_backup.safetensors", "adapter_model_notes.md", "pytorch_model_old.bin"):
        (out / name).write_text("mine")
    assert train(tiny_bert_dir, data, out, "--overwrite", "--save_strategy", "no") == 0
    assert all(
        (out / n).read_text() == "mine"
        for n in ("model_backup.safetensors", "adapter_model_notes.md", "pytorch_model_old.bin")
    )


def test_a_damaged_only_checkpoint_is_named_in_the_refusal(tmp_path, data, capsys, tiny_bert_dir):
    out = tmp_path / "run"
    assert train(tiny_bert_dir, data, out, "--save_steps", "2") == 0
    path = out / "checkpoint-2" / "optimizer.pt"
    path.write_bytes(path.read_bytes()[:100])
    assert train(tiny_bert_dir, data, out, "--resume") == 2
    assert "checkpoint-2: optimizer.pt is damaged" in capsys.readouterr().err


# ---- helper round 37 --------------------------------------------------------------------------


def test_a_run_names_its_sources_from_any_working_directory(tmp_path, data, tiny_bert_dir, monkeypatch):
    """Relative --model/--data were saved as typed: `--config RUN/run_config.json` failed from
    another folder, and rewardforge.json's base model (for eval --untrained) could not be found."""
    import shutil

    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(tiny_bert_dir, work / "tiny")
    shutil.copy(data, work / "d.jsonl")
    monkeypatch.chdir(work)
    assert train("tiny", "d.jsonl", "run", "--max-steps", "1") == 0
    meta = json.loads((work / "run" / "rewardforge.json").read_text())
    assert meta["base_model"] == str(work / "tiny")
    options = json.loads((work / "run" / "run_config.json").read_text())["rewardforge"]
    assert (options["model"], options["data"]) == (str(work / "tiny"), str(work / "d.jsonl"))
    monkeypatch.chdir(tmp_path)
    again = ["train", "--config", str(work / "run" / "run_config.json"), "--output", str(tmp_path / "again")]
    assert main(again) == 0


def test_a_models_beta_is_its_preference_probability_everywhere(tmp_path, data, tiny_bert_dir):
    """--beta 10 trained sigmoid(10 * difference), but compare, /v1/compare, bt_log_loss and ECE
    all read sigmoid(difference)."""
    import math

    from rewardforge import RewardModel

    out = tmp_path / "run"
    dev = jsonl(tmp_path, DEV_ROWS, "dev.jsonl")
    assert train(tiny_bert_dir, data, out, "--eval-data", dev, "--beta", "10", "--max-steps", "10",
                 "--learning-rate", "5e-3", "--precision", "fp32") == 0  # fmt: skip
    final = json.loads((out / "metrics.json").read_text())["eval"]
    assert final["eval_bt_log_loss"] == pytest.approx(final["eval_loss"], abs=1e-4)
    rm = RewardModel.from_pretrained(str(out))
    r_a, r_b = rm.score_batch([("q0", "good answer 0"), ("q0", "bad 0")])
    assert abs(r_a - r_b) > 1e-3  # a difference to scale
    assert rm.compare("q0", "good answer 0", "bad 0") == pytest.approx(1 / (1 + math.exp(-10 * (r_a - r_b))))
    assert main(["eval", "--model", str(out), "--data", dev, "--output", str(tmp_path / "ev")]) == 0
    evaluated = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    found = json.dumps(evaluated)
    assert f"{final['eval_bt_log_loss']:.3f}"[:4] in found  # the same loss as training's own evaluation


def test_a_resume_with_another_precision_names_both_as_a_user_would(tmp_path, data, tiny_bert_dir, capsys):
    out = tmp_path / "run"
    assert train(tiny_bert_dir, data, out, "--max-steps", "2", "--save_steps", "1", "--save_strategy", "steps",
                 "--precision", "fp32") == 0  # fmt: skip
    (out / "model.safetensors").unlink()  # as if killed before the end
    code = train(tiny_bert_dir, data, out, "--max-steps", "2", "--save_steps", "1", "--save_strategy", "steps",
                 "--bf16", "--resume")  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "precision fp32 -> bf16 autocast" in err


def test_checkpoints_score_as_their_run_does_and_an_unfinished_run_names_them(
    tmp_path, data, tiny_bert_dir, capsys
):
    """A checkpoint was scored at max length 2048 with the default format (no rewardforge.json);
    a run killed before its model existed was 'not a model folder'."""
    from rewardforge import RewardModel

    out = tmp_path / "run"
    assert train(tiny_bert_dir, data, out, "--max-steps", "2", "--save_steps", "1", "--save_strategy", "steps",
                 "--max-length", "96", "--beta", "2") == 0  # fmt: skip
    checkpoint = RewardModel.from_pretrained(str(out / "checkpoint-2"))
    assert (checkpoint.max_length, checkpoint.beta) == (96, 2.0)
    assert checkpoint.score("q0", "good answer 0") == pytest.approx(
        RewardModel.from_pretrained(str(out)).score("q0", "good answer 0"), abs=1e-5
    )
    for name in ("model.safetensors", "config.json"):
        (out / name).unlink()  # killed before the model was saved
    items = tmp_path / "items.jsonl"
    items.write_text('{"prompt": "q0", "response": "good answer 0"}\n')
    assert (
        main(["score", "--model", str(out), "--input", str(items), "--output", str(tmp_path / "s.jsonl")])
        == 2
    )
    err = capsys.readouterr().err
    assert "--resume" in err and "checkpoint-2" in err


def test_a_resume_that_plans_more_steps_takes_the_new_plans_learning_rate(tmp_path, data, tiny_bert_dir):
    """The first step after the resume ran at the old plan's end rate, 0 on a linear schedule."""
    out, fresh = tmp_path / "run", tmp_path / "fresh"
    assert train(tiny_bert_dir, data, out, "--save_steps", "2", "--logging_steps", "1") == 0
    (out / "model.safetensors").unlink()  # as if killed after its checkpoint
    assert train(tiny_bert_dir, data, out, "--resume", "--max-steps", "4", "--logging_steps", "1") == 0
    assert (
        train(tiny_bert_dir, data, fresh, "--max-steps", "4", "--logging_steps", "1", "--save_strategy", "no")
        == 0
    )

    def rates(run):
        rows = [json.loads(line) for line in (run / "train_metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r["learning_rate"] for r in rows if "learning_rate" in r}

    resumed = rates(out)
    assert resumed[3] > 0 and resumed[3] == pytest.approx(rates(fresh)[3])


def test_a_resume_past_the_planned_steps_is_refused(tmp_path, data, capsys, tiny_bert_dir):
    """--max-steps 1 from checkpoint-2 'finished' and recorded a 2-step model as a 1-step run."""
    out = tmp_path / "run"
    assert train(tiny_bert_dir, data, out, "--save_steps", "2") == 0
    (out / "model.safetensors").unlink()
    before = {name: (out / name).read_bytes() for name in ("train_metrics.jsonl", "run_config.json")}
    assert train(tiny_bert_dir, data, out, "--resume", "--max-steps", "1") == 2
    assert "checkpoint-2 is at step 2, past the end of this run's plan (1 step:" in capsys.readouterr().err
    assert before == {name: (out / name).read_bytes() for name in before}  # the refusal changed nothing


@pytest.mark.parametrize(
    ("option", "value", "key"),
    [("--warmup_steps", "3", "warmup_steps 0 -> 3"), ("--max_grad_norm", "0.5", "max_grad_norm 1.0 -> 0.5"), ("--keep-dropout", None, "dropout 'off' -> 'kept'"), ("--data_seed", "5", "data_seed None -> 5")],
)  # fmt: skip
def test_a_resume_keeps_the_schedule_dropout_and_data_order(
    tmp_path, data, capsys, tiny_bert_dir, option, value, key
):
    """These were accepted on --resume, and changed what the remaining steps did."""
    out = tmp_path / "run"
    assert train(tiny_bert_dir, data, out, "--save_steps", "1", "--max-steps", "1") == 0
    (out / "model.safetensors").unlink()
    assert train(tiny_bert_dir, data, out, "--resume", option, *([value] if value else [])) == 2
    assert key in capsys.readouterr().err  # each named as the option it is


def test_scheduler_arguments_in_another_order_are_the_same_on_resume(tmp_path, data, tiny_bert_dir):
    """Another key order, or 1.0 for 1, was refused as a changed schedule."""
    out = tmp_path / "run"
    wsd = ["--lr_scheduler_type", "warmup_stable_decay", "--save_steps", "1"]
    kwargs = '{"num_decay_steps": 1, "min_lr_ratio": 0.1}'
    assert train(tiny_bert_dir, data, out, *wsd, "--lr_scheduler_kwargs", kwargs, "--max-steps", "1") == 0
    (out / "model.safetensors").unlink()
    again = '{"min_lr_ratio": 0.1, "num_decay_steps": 1.0}'
    assert (
        train(tiny_bert_dir, data, out, *wsd, "--lr_scheduler_kwargs", again, "--resume", "--max-steps", "2")
        == 0
    )


def test_resume_after_a_kill_before_the_first_checkpoint_starts_again(tmp_path, data, capsys, tiny_bert_dir):
    """The folder held only run_config.json, and every later --resume was refused."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "run_config.json").write_text("{}")
    (out / "train_metrics.jsonl").write_text('{"step": 1, "loss": 0.7}\n')
    assert train(tiny_bert_dir, data, out, "--resume") == 0
    assert "no checkpoint in" in capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "train_metrics.jsonl").read_text().splitlines()]
    assert {"step": 1, "loss": 0.7} not in rows and (
        out / "model.safetensors"
    ).exists()  # the dead run's log went


@pytest.mark.parametrize("targets", ["query,nonexist", "query,"])
def test_a_lora_target_that_matches_nothing_is_refused(tmp_path, data, capsys, tiny_bert_dir, targets):
    """A typo beside a real name was dropped by PEFT without a word (and recorded as a target)."""
    assert train(tiny_bert_dir, data, tmp_path / "run", "--lora", "--lora-target-modules", targets) == 2
    err = capsys.readouterr().err
    missing = targets.split(",")[1]
    assert f"LoRA target module {missing!r} matches no module of BertForSequenceClassification" in err
    assert "its linear layers: dense, key, query, value" in err


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("run.yaml", "batch_size: 2\nlearning_rate: 1.0e-4\nbatch-size: 4\n", "option 'batch-size' is given twice (line 3)"),
        ("run.json", '{"batch_size": 2, "batch_size": 4}', "option 'batch_size' is given twice"),
    ],
)  # fmt: skip
def test_a_config_option_given_twice_is_refused(tmp_path, data, capsys, tiny_bert_dir, name, text, where):
    """The later value silently won."""
    config = tmp_path / name
    config.write_text(text)
    assert main(["train", "--config", str(config), "--output", str(tmp_path / "run")]) == 2
    assert where in capsys.readouterr().err


def test_a_saved_adapter_loads_with_plain_peft_and_scores_as_rewardforge_does(tmp_path, data, tiny_llama_dir):
    """What the README tells a PEFT user (num_labels=1: PEFT builds the base with transformers'
    default of 2 labels, which the saved score head does not fit)."""
    import torch
    from peft import AutoPeftModelForSequenceClassification

    from rewardforge import RewardModel

    out = tmp_path / "run"
    assert train(tiny_llama_dir, data, out, "--lora", "--save-adapter", "--save_strategy", "no") == 0
    rm = RewardModel.from_pretrained(str(out))
    peft_model = AutoPeftModelForSequenceClassification.from_pretrained(str(out), num_labels=1).eval()
    ids = rm.encode("q1", "good answer 1")
    with torch.no_grad():
        plain = peft_model(input_ids=torch.tensor([ids])).logits[0, 0].item()
    assert plain == pytest.approx(rm.score("q1", "good answer 1"), abs=1e-5)


def test_standard_input_is_read_once(tmp_path, data, capsys, tiny_bert_dir):
    """`--data - --eval-data -`: the second found standard input read already."""
    assert main(["train", "--data", "-", "--eval-data", "-", "--output", str(tmp_path / "run")]) == 2
    assert "standard input can be read once" in capsys.readouterr().err
    argv = [
        "eval",
        "--model",
        str(tiny_bert_dir),
        "--data",
        "-",
        "--data",
        "x=-",
        "--output",
        str(tmp_path / "ev"),
    ]
    assert main(argv) == 2
    assert "standard input can be read once" in capsys.readouterr().err


def test_resume_after_a_kill_while_the_first_checkpoint_was_written_starts_again(
    tmp_path, data, tiny_bert_dir
):
    """A checkpoint left in .staging (killed while it was written) made every --resume refused."""
    out = tmp_path / "run"
    (out / ".staging" / "checkpoint-2").mkdir(parents=True)
    (out / "run_config.json").write_text("{}")
    assert train(tiny_bert_dir, data, out, "--resume") == 0
    assert (out / "model.safetensors").exists()


def test_every_logged_eval_metric_has_a_known_side():
    """EVAL_METRICS must name every number an evaluation logs (the check of
    --metric_for_best_model reads it)."""
    from rewardforge.evaluation.metrics import pair_metrics
    from rewardforge.training.run import EVAL_METRICS, flat_metrics

    sample = pair_metrics(
        [1.0, 0.0], [0.0, 1.0], categories=["a", "b"], len_chosen=[1, 2], len_rejected=[2, 1]
    )
    assert set(EVAL_METRICS) == {"loss", *flat_metrics(sample)}


def test_the_best_checkpoint_by_ece_is_the_lowest(tmp_path, data, capsys, tiny_bert_dir):
    """The Trainer took higher as better for any name not ending in "loss": by ece it kept the
    worst checkpoint. A figure with no better side (pairs) cannot pick one."""
    out, held = tmp_path / "run", tmp_path / "held.jsonl"
    held.write_text(data.read_text().replace("good", "fine"))
    best = ["--eval-data", held, "--eval_steps", "1", "--save_steps", "1", "--load_best_model_at_end"]
    assert (
        train(tiny_bert_dir, data, out, *best, "--metric_for_best_model", "ece", "--learning-rate", "1e-3")
        == 0
    )
    state = json.loads(sorted(out.glob("checkpoint-*"))[-1].joinpath("trainer_state.json").read_text())
    eces = {r["step"]: r["eval_ece"] for r in state["log_history"] if "eval_ece" in r}
    assert state["best_metric"] == min(eces.values())
    assert (
        json.loads((out / "run_config.json").read_text())["training_arguments"]["greater_is_better"] is False
    )
    config = tmp_path / "best.yaml"  # a config's null is no choice either (it kept True)
    config.write_text("metric_for_best_model: ece\ngreater_is_better: null\n")
    again = tmp_path / "again"
    assert train(tiny_bert_dir, data, again, *best, "--config", config) == 0
    assert (
        json.loads((again / "run_config.json").read_text())["training_arguments"]["greater_is_better"]
        is False
    )
    assert train(tiny_bert_dir, data, tmp_path / "p", *best, "--metric_for_best_model", "pairs") == 2
    assert "neither a higher nor a lower value is a better model" in capsys.readouterr().err
    assert (
        train(
            tiny_bert_dir,
            data,
            tmp_path / "c",
            *best,
            "--metric_for_best_model",
            "category_weighted_accuracy",
        )
        == 2
    )
    assert "needs categories in the held-out pairs" in capsys.readouterr().err


def test_yaml_merge_keys_still_work_in_configs(tmp_path, data, tiny_bert_dir):
    """The duplicate-key check made `<<:` invalid YAML; a merged key its mapping overrides is fine."""
    tail = "lr_scheduler_type: cosine_with_restarts\nlr_scheduler_kwargs:\n  <<: {num_cycles: 3}\n  num_cycles: 2\n"
    assert scheduler_kwargs_from_config(tiny_bert_dir, data, tmp_path / "run", tail) == {"num_cycles": 2}


def test_the_recorded_precision_names_the_weights_dtype(tmp_path, data, tiny_bert_dir):
    """With --dtype bf16, rewardforge.json said "bf16 autocast (fp32 weights)" over bf16 weights
    (helper round 61)."""
    out = tmp_path / "bf16"
    assert (
        train(tiny_bert_dir, data, out, "--save_strategy", "no", "--dtype", "bf16", "--precision", "bf16")
        == 0
    )
    assert json.loads((out / "rewardforge.json").read_text())["precision"] == "bf16 autocast (bf16 weights)"
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"


def test_a_second_run_into_a_folder_in_use_is_refused(tmp_path, data, capsys, tiny_bert_dir):
    """helper 70: two runs started together into one --output both passed the "already holds a
    run" check, exited 0 and mixed their logs. The folder is held (flock) while a run writes."""
    import subprocess
    import sys

    from rewardforge import cli
    from rewardforge.rlhf import arithmetic_prompts

    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom rewardforge.commands.checks import held_output_dir\n"
         f"with held_output_dir({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert train(tiny_bert_dir, data, out) == 2
        assert f"--output {out} is in use: another run is writing into it now" in capsys.readouterr().err
        prompts = tmp_path / "p.jsonl"
        arithmetic_prompts(4, prompts)
        argv = ["rlhf", "--policy", "x", "--rm", "y", "--prompts", str(prompts), "--output", str(out)]
        assert cli.main(argv) == 2
        assert "is in use" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert train(tiny_bert_dir, data, out, "--save_strategy", "no") == 0  # released with its process


def test_inputs_inside_a_set_aside_run_are_refused(tmp_path, data, capsys, monkeypatch, tiny_bert_dir):
    """helper 72: after a failed --overwrite, `--model OUT/.replaced-X` trained, and the run then
    deleted that folder (its own base model) once its model was saved."""
    from rewardforge.training.trainer import RewardTrainer

    out = tmp_path / "run"
    assert train(tiny_bert_dir, data, out, "--save_strategy", "no") == 0

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(RewardTrainer, "train", interrupted)
        assert train(tiny_bert_dir, data, out, "--overwrite") == 130
    (aside,) = out.glob(".replaced-*")
    capsys.readouterr()
    for extra in ([], ["--overwrite"]):
        assert train(aside, data, out, *extra) == 2
        assert f"--model {aside} is in a run that an --overwrite set aside" in capsys.readouterr().err
    (aside / "data.jsonl").write_text(data.read_text())
    assert train(tiny_bert_dir, aside / "data.jsonl", out, "--overwrite") == 2
    assert "--data" in capsys.readouterr().err and aside.is_dir()


def test_a_run_refused_or_failed_keeps_folders_it_did_not_make(
    tmp_path, data, capsys, monkeypatch, tiny_bert_dir
):
    """helper 72: `--output zz/../yy` removed the user's empty yy; a run refused by the lock
    removed the folder the holder had just made."""
    import fcntl
    import os

    from rewardforge.commands.checks import held_output_dir

    (tmp_path / "yy").mkdir()
    monkeypatch.chdir(tmp_path)
    assert train(tiny_bert_dir, tmp_path / "typo.jsonl", "zz/../yy") == 2
    assert (tmp_path / "yy").is_dir()
    assert not (tmp_path / "zz").exists()  # made to pass through: left behind before session 20
    assert train(tiny_bert_dir, tmp_path / "typo.jsonl", "a/b/../c/d") == 2
    assert not (tmp_path / "a").exists()

    def busy(fd, op):
        raise BlockingIOError

    monkeypatch.setattr(fcntl, "flock", busy)
    fresh = tmp_path / "fresh" / "run"  # made here, but another run holds it: not ours to remove
    with pytest.raises(Exception, match="is in use"):
        with held_output_dir(fresh):
            pass
    assert fresh.is_dir()
    monkeypatch.undo()
    link = tmp_path / "dangling"
    os.symlink(tmp_path / "missing", link)
    capsys.readouterr()
    assert train(tiny_bert_dir, data, link) == 2
    assert "is a symlink to a missing folder" in capsys.readouterr().err


def test_overwrite_refuses_data_given_as_path_and_split_inside_the_old_run(
    tmp_path, data, capsys, tiny_bert_dir
):
    """helper 74: `--data RUN/checkpoint-2/split.json:train` with --overwrite was accepted, and the
    file deleted with the run it sat in (the plain path was refused)."""
    out = tmp_path / "run"
    assert train(tiny_bert_dir, data, out, "--save_steps", "2") == 0
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    split = out / "checkpoint-2" / "split.json"
    split.write_text(json.dumps({"train": rows, "test": rows[:2]}))
    assert train(tiny_bert_dir, f"{split}:train", out, "--overwrite") == 2
    assert "--overwrite would delete --data" in capsys.readouterr().err and split.is_file()


def test_a_full_disk_while_a_checkpoint_is_written_is_one_line_and_leaves_no_half_checkpoint(
    tmp_path, data, capsys, monkeypatch, tiny_bert_dir
):
    """Helper 90: safetensors reports a full disk as its own SafetensorError, which is no
    OSError: the run ended in a traceback and left .staging/checkpoint-1 with a config only."""
    import safetensors
    import transformers.modeling_utils

    def full_disk(*args, **kwargs):
        raise safetensors.SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        )

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", full_disk)
    out = tmp_path / "run"
    out.mkdir()  # (the user's folder: it stays)
    assert train(tiny_bert_dir, data, out, "--save_strategy", "steps", "--save_steps", "1") == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "error: writing the model's files: " in err and "No space left on device" in err
    assert not (out / ".staging").exists() and not list(out.glob("checkpoint-*"))


@pytest.mark.parametrize("moment", ["reading data", "training"])
def test_sigterm_stops_a_training_run_as_ctrl_c_does(
    tmp_path, data, capsys, monkeypatch, tiny_bert_dir, moment
):
    """Helper 90: SIGTERM (what schedulers and `docker stop` send) killed `train` without a word,
    and while the data was read it left the folder the run had just made; Ctrl-C prints a line,
    removes that folder, and keeps a run that has begun for --resume."""
    import signal

    import rewardforge.data
    from rewardforge.training.trainer import RewardTrainer

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the run")

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    if moment == "training":
        monkeypatch.setattr(RewardTrainer, "train", terminated)
    else:
        monkeypatch.setattr(rewardforge.data, "load_pairs", terminated)

    class Unhandled(Exception):
        pass

    def unhandled(*_):  # (SIGTERM's default action would end the test session)
        raise Unhandled

    before = signal.signal(signal.SIGTERM, unhandled)
    out = tmp_path / "new" / "run"
    try:
        assert train(tiny_bert_dir, data, out) == 128 + signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) is unhandled
    finally:
        signal.signal(signal.SIGTERM, before)
    err = capsys.readouterr().err
    assert "rewardforge: terminated; the same command with --resume continues" in err
    assert "Traceback" not in err and "AssertionError" not in err
    if moment == "training":
        assert (out / "run_config.json").is_file()  # as after Ctrl-C: --resume takes it
    else:
        assert not (tmp_path / "new").exists()


def test_overwrite_of_an_eval_folder_leaves_none_of_its_files(tmp_path, data, capsys, tiny_bert_dir):
    """Helper 90: `train --overwrite` into an eval folder replaced its metrics.json but left its
    scores.jsonl, report.html and eval_config.json (another model's) beside the new model."""
    out = tmp_path / "ev"
    assert (
        main(["eval", "--model", str(tiny_bert_dir), "--data", str(data), "--output", str(out), "--quiet"])
        == 0
    )
    eval_files = {"scores.jsonl", "metrics.json", "report.html", "eval_config.json"}
    assert eval_files <= {p.name for p in out.iterdir()}
    assert train(tiny_bert_dir, data, out, "--save_strategy", "no") == 2  # refused without --overwrite
    assert train(tiny_bert_dir, data, out, "--save_strategy", "no", "--overwrite") == 0
    left = {p.name for p in out.iterdir()}
    assert not (eval_files - {"metrics.json"}) & left and "model.safetensors" in left
    assert "train" in json.loads((out / "metrics.json").read_text())  # the run's own, not eval's


def test_a_sigterm_python_swallows_inside_a_destructor_still_stops_the_run(
    tmp_path, data, capsys, monkeypatch, tiny_bert_dir
):
    """Helper 93: an exception raised inside `__del__` is swallowed (regex's objects run many
    while transformers imports), so a SIGTERM landing there was lost and the run finished with
    exit 0. It is sent again, to land in ordinary code."""
    import signal
    import time

    from rewardforge.training.trainer import RewardTrainer

    class Collected:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs here, inside the destructor
                pass

    def train_on(self, *args, **kwargs):
        Collected()  # (dropped at once: its __del__ runs now)
        for _ in range(300):
            time.sleep(0.01)
        raise AssertionError("the SIGTERM was lost")

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setattr(RewardTrainer, "train", train_on)
    before = signal.signal(signal.SIGTERM, signal.SIG_IGN)  # (restored by main to this, not default)
    try:
        assert train(tiny_bert_dir, data, tmp_path / "run") == 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, before)
    assert "rewardforge: terminated" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (Exception("No space left on device (os error 28)"), "writing the model's files: No space left"),
        (RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 9664 vs 9556"), "is the disk full?"),
        (RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed"), "is the disk full?"),
        (OSError(28, "No space left on device"), "No space left on device"),
        (RuntimeError("shapes do not match"), None),
        (Exception("No such file or directory (os error 2)"), None),  # not the disk's refusal
    ],
)  # fmt: skip
def test_a_full_disk_is_recognised_in_each_writers_words(error, said):
    """Helper 93: torch.save's short write (a RuntimeError) and the tokenizers library's
    `Exception(... (os error 28))` still ended in tracebacks on a full disk."""
    from rewardforge.cli import write_failure

    wrapped = RuntimeError("saving failed")
    wrapped.__cause__ = error
    for e in (error, wrapped):
        found = write_failure(e)
        assert (found is None) if said is None else (said in found), (e, found)
