"""End-to-end training through the CLI on tiny models: files, config, seeds, LoRA, pipeline, errors."""

import json

import pytest
import torch

from rewardforge.cli import main


def train_args(model, data, out, *extra):
    return [
        "train",
        "--model",
        str(model),
        "--data",
        str(data[0]),
        "--eval-data",
        str(data[1]),
        "--output",
        str(out),
        "--max-steps",
        "6",
        "--batch-size",
        "4",
        "--learning-rate",
        "1e-3",
        "--max-length",
        "96",
        "--logging-steps",
        "2",
        "--save-steps",
        "3",
        "--disable_tqdm",
        "true",
        *extra,
    ]


def test_train_writes_model_metadata_metrics_and_config(tiny_bert_dir, small_data, tmp_path):
    out = tmp_path / "run"
    assert main(train_args(tiny_bert_dir, small_data, out, "--eval-steps", "3")) == 0
    for name in [
        "config.json",
        "model.safetensors",
        "rewardforge.json",
        "train_metrics.jsonl",
        "run_config.json",
        "metrics.json",
    ]:
        assert (out / name).is_file(), name
    meta = json.loads((out / "rewardforge.json").read_text())
    assert meta["format"]["kind"] == "plain" and meta["max_length"] == 96
    assert meta["data"]["train"]["pairs"] == 48 and meta["data"]["train"]["fingerprint"]
    assert meta["tokenization"]["train"]["used"] == 48
    ev = meta["metrics"]["eval"]
    assert ev["eval_pairs"] == 24 and 0.0 <= ev["eval_accuracy"] <= 1.0 and "eval_auroc" in ev
    logs = [json.loads(line) for line in (out / "train_metrics.jsonl").read_text().splitlines()]
    train_logs = [r for r in logs if "loss" in r]
    assert train_logs, logs
    for key in [
        "loss",
        "accuracy",
        "margin",
        "reward_chosen",
        "reward_rejected",
        "grad_norm",
        "learning_rate",
        "pairs_per_second",
        "tokens_per_second",
    ]:
        assert key in train_logs[-1], key
    evals = [r for r in logs if "eval_accuracy" in r]
    assert [r["step"] for r in evals][:2] == [3, 6]  # evaluated during training, with the shared metric code
    cfg = json.loads((out / "run_config.json").read_text())
    assert cfg["training_arguments"]["max_steps"] == 6 and cfg["rewardforge"]["max_length"] == 96
    assert (out / "checkpoint-6").is_dir() and not (out / ".staging" / "checkpoint-6").exists()


def test_yaml_config_and_flag_override(tiny_bert_dir, small_data, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"model: {tiny_bert_dir}\ndata: {small_data[0]}\nmax_length: 64\nlearning_rate: 0.5\nmax_steps: 2\n"
        f"per_device_train_batch_size: 4\nsave_strategy: 'no'\n"
    )
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--learning-rate", "1e-4", "--output", str(out)]) == 0
    resolved = json.loads((out / "run_config.json").read_text())
    assert resolved["training_arguments"]["learning_rate"] == 1e-4  # the flag wins
    assert resolved["rewardforge"]["max_length"] == 64  # the file gives the rest


def test_unknown_yaml_key_is_a_clear_error(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("learning_rat: 0.1\n")
    assert main(["train", "--config", str(cfg)]) == 2
    assert "unknown option(s): learning_rat" in capsys.readouterr().err


def _scores(out, texts):
    from rewardforge import RewardModel

    rm = RewardModel.from_pretrained(str(out))
    return rm, rm.score_batch(texts)


def test_same_seed_same_model_different_seed_different(tiny_bert_dir, small_data, tmp_path):
    items = [("How do I bake bread?", "Mix, rise, bake."), ("Hi", "Go away.")]
    runs = {}
    for name, seed in [("a", "7"), ("b", "7"), ("c", "8")]:
        out = tmp_path / name
        assert main(train_args(tiny_bert_dir, small_data, out, "--seed", seed, "--save_strategy", "no")) == 0
        runs[name] = _scores(out, items)[1]
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


def test_lora_decoder_reloads_with_plain_transformers(tiny_llama_dir, small_data, tmp_path):
    """The LoRA run's head is trained and saved: a plain pipeline gives rewardforge's scores."""
    import warnings

    from transformers import pipeline

    out = tmp_path / "lora"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert (
            main(
                train_args(
                    tiny_llama_dir, small_data, out, "--lora", "--lora-r", "4", "--save_strategy", "no"
                )
            )
            == 0
        )
    # helper 92: PEFT's deprecated-property warning on every `train --lora`
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]
    items = [("How do I bake bread?", "Mix flour and water, let it rise, then bake."), ("Hi", "Go away.")]
    rm, scores = _scores(out, items)
    pipe = pipeline("text-classification", model=str(out))
    piped = [r["score"] for r in pipe([rm.format_text(p, r) for p, r in items])]
    assert piped == pytest.approx(scores, abs=1e-5)
    meta = json.loads((out / "rewardforge.json").read_text())
    assert meta["format"]["kind"] == "chat_template" and meta["lora"]["rank"] == 4
    # the score head changed from its seeded initialisation: it was trained
    from safetensors.torch import load_file

    trained = load_file(str(out / "model.safetensors"))["score.weight"]
    from rewardforge.modeling import load_reward_model

    fresh = load_reward_model(str(tiny_llama_dir), seed=42).model.score.weight
    assert not torch.allclose(trained, fresh)


def test_save_adapter_keeps_peft_adapter(tiny_llama_dir, small_data, tmp_path):
    out = tmp_path / "adapter"
    assert (
        main(train_args(tiny_llama_dir, small_data, out, "--lora", "--save-adapter", "--save_strategy", "no"))
        == 0
    )
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    from rewardforge import RewardModel

    merged = tmp_path / "merged"  # the same run, saved merged
    assert main(train_args(tiny_llama_dir, small_data, merged, "--lora", "--save_strategy", "no")) == 0
    items = [("What is 2+2?", "4"), ("Hi", "Go away.")]
    scores = RewardModel.from_pretrained(str(out)).score_batch(items)  # the adapter folder scores too
    assert scores == pytest.approx(RewardModel.from_pretrained(str(merged)).score_batch(items), abs=1e-4)


def test_batch_scores_equal_single_scores(tiny_llama_dir):
    from rewardforge import RewardModel

    rm = RewardModel.from_pretrained(str(tiny_llama_dir))
    items = [
        ("q", "short"),
        ("a much longer question " * 5, "and a much longer answer " * 8),
        ("mid", "medium answer here"),
    ]
    batched = rm.score_batch(items, batch_size=3)
    single = [rm.score(p, r) for p, r in items]
    assert batched == pytest.approx(single, abs=1e-5)


def test_seeded_head_initialisation(tiny_llama_dir, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from rewardforge.modeling import load_reward_model

    base = tmp_path / "base"  # the policy alone: no saved score head
    shutil.copytree(tiny_llama_dir, base)
    weights = load_file(base / "model.safetensors")
    del weights["score.weight"]
    save_file(weights, base / "model.safetensors", metadata={"format": "pt"})
    a, b, c = (load_reward_model(str(base), seed=seed) for seed in (3, 3, 4))
    assert a.fresh_head and torch.equal(a.model.score.weight, b.model.score.weight)
    assert not torch.equal(a.model.score.weight, c.model.score.weight)
    assert a.model.score.weight.shape[0] == 1  # one output, never two
    assert not load_reward_model(str(tiny_llama_dir)).fresh_head


def test_non_finite_loss_stops_with_exit_3_and_keeps_checkpoint(
    tiny_bert_dir, small_data, tmp_path, monkeypatch, capsys
):
    from rewardforge.training.trainer import RewardTrainer

    original = RewardTrainer.pair_rewards

    def poisoned(self, model, inputs):
        rc, rr = original(self, model, inputs)
        if self.state.global_step >= 4:
            rc = rc * float("nan")
        return rc, rr

    monkeypatch.setattr(RewardTrainer, "pair_rewards", poisoned)
    out = tmp_path / "nan"
    code = main(train_args(tiny_bert_dir, small_data, out, "--save-steps", "2"))
    assert code == 3
    assert "non-finite loss" in capsys.readouterr().err
    assert (out / "checkpoint-4" / "model.safetensors").is_file()


def test_builtin_default_run_beats_chance(tmp_path, minilm_dir):
    """The README's main job: no --data, the real MiniLM, built-in pairs, held-out accuracy."""
    out = tmp_path / "default"
    assert main(["train", "--output", str(out), "--disable_tqdm", "true", "--save_strategy", "no"]) == 0
    meta = json.loads((out / "rewardforge.json").read_text())
    assert meta["metrics"]["eval"]["eval_accuracy"] >= 0.8
    assert meta["data"]["train"]["source"] == "builtin:train"
    from transformers import pipeline

    items = [
        ("How do I boil an egg?", "Put it in cold water, boil, then simmer for nine minutes."),
        ("Hi", "No."),
    ]
    rm, scores = _scores(out, items)
    pipe = pipeline("text-classification", model=str(out))
    assert [r["score"] for r in pipe([rm.format_text(p, r) for p, r in items])] == pytest.approx(
        scores, abs=1e-5
    )


def test_gguf_file_is_converted_once_and_cached(smollm2_gguf, smollm2_dir):
    from rewardforge.modeling import load_reward_model, resolve_model_path

    assert resolve_model_path(str(smollm2_gguf)) == str(smollm2_dir)  # cached: no second conversion
    loaded = load_reward_model(str(smollm2_gguf), seed=0)
    assert loaded.is_decoder and loaded.text_format.kind == "chat_template"
    assert loaded.model.config.num_labels == 1 and not getattr(loaded.model, "is_quantized", False)


def test_pairs_made_identical_by_truncation_are_reported_not_trained(tiny_bert_dir, tmp_path):
    same = "word " * 200
    rows = [{"prompt": f"q{i}", "chosen": f"good answer {i}", "rejected": f"bad {i}"} for i in range(6)]
    rows += [{"prompt": "q", "chosen": same + "A", "rejected": same + "B"}]  # differs only past max_length
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "o"
    assert (
        main(
            [
                "train",
                "--model",
                str(tiny_bert_dir),
                "--data",
                str(path),
                "--output",
                str(out),
                "--max-length",
                "32",
                "--max-steps",
                "1",
                "--batch-size",
                "2",
                "--save_strategy",
                "no",
                "--disable_tqdm",
                "true",
            ]
        )
        == 0
    )
    counts = json.loads((out / "rewardforge.json").read_text())["tokenization"]["train"]
    assert counts == {
        "pairs": 7,
        "prompt_truncated": 1,
        "response_truncated": 1,
        "identical_after_truncation": 1,
        "template_refused": 0,
        "used": 6,
    }


def test_batches_pad_to_the_batch_not_to_max_length():
    from rewardforge.training.collator import PairCollator

    feats = [
        {
            "index": i,
            "chosen_ids": list(range(n)),
            "rejected_ids": list(range(n + 1)),
            "prefix_len": 0,
            "margin": None,
        }
        for i, n in enumerate([3, 5, 4])
    ]
    batch = PairCollator(0, max_tokens_per_batch=None)(feats)
    assert [tuple(c["input_ids"].shape) for c in batch["chunks"]] == [(6, 6)]
    # in bf16 the width is rounded up to a multiple of 32 (fewer oneDNN kernels), still not to --max-length
    batch = PairCollator(0, max_tokens_per_batch=None, pad_to_multiple_of=32)(feats)
    assert [tuple(c["input_ids"].shape) for c in batch["chunks"]] == [(6, 32)]


@pytest.mark.parametrize("save", [[], ["--save-adapter"]])
def test_final_eval_of_a_bf16_lora_run_describes_the_merged_model_it_saves(
    tiny_llama_dir, small_data, tmp_path, save
):
    """Helper 92: with --lora --dtype bf16 the final evaluation scored the adapter before it was
    merged into bf16 weights (which rounds them), so metrics.json did not describe the saved
    model, though the README says `eval --dtype bf16` gives the final evaluation's figures."""
    out = tmp_path / "run"
    args = train_args(tiny_llama_dir, small_data, out, "--lora", "--lora-r", "8", "--dtype", "bf16",
                      "--learning-rate", "5e-2", "--save_strategy", "no", *save)  # fmt: skip
    assert main(args) == 0
    assert (out / "adapter_config.json").is_file() == bool(
        save
    )  # (helper 93: an adapter is loaded merged too)
    train_eval = json.loads((out / "metrics.json").read_text())["eval"]
    ev = tmp_path / "eval"
    assert main(["eval", "--model", str(out), "--data", str(small_data[1]), "--max-length", "96", "--dtype",
                 "bf16", "--output", str(ev), "--no-report", "--quiet"]) == 0  # fmt: skip
    (per_data,) = json.loads((ev / "metrics.json").read_text())["results"].values()
    (expected,) = per_data.values()
    assert train_eval["eval_margin_mean"] == pytest.approx(expected["margin_mean"], rel=1e-3, abs=1e-4)
    assert train_eval["eval_accuracy"] == expected["accuracy"]


def test_final_eval_after_bf16_autocast_matches_the_saved_model_in_fp32(tiny_llama_dir, small_data, tmp_path):
    """metrics.json describes the saved (fp32) model: `rewardforge eval` reproduces its figures."""
    out = tmp_path / "run"
    args = train_args(tiny_llama_dir, small_data, out, "--precision", "bf16", "--save_strategy", "no")
    assert main(args) == 0
    train_eval = json.loads((out / "metrics.json").read_text())["eval"]
    assert train_eval["eval_precision"] == "float32"
    ev = tmp_path / "eval"
    assert main(["eval", "--model", str(out), "--data", str(small_data[1]), "--max-length", "96",
                 "--output", str(ev), "--no-report", "--quiet"]) == 0  # fmt: skip
    (per_data,) = json.loads((ev / "metrics.json").read_text())["results"].values()
    (expected,) = per_data.values()
    assert train_eval["eval_margin_mean"] == pytest.approx(expected["margin_mean"], rel=1e-5, abs=1e-6)
    assert train_eval["eval_accuracy"] == expected["accuracy"]
