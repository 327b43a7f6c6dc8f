"""End to end on a tiny random policy and RM (CPU, 1 thread): `rewardforge rlhf` for 2 steps,
resumed for a third, and `rewardforge bon`. Well under 2 minutes together."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rewardforge.rlhf import arithmetic_prompts


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_cli(*args: str) -> int:
    from rewardforge import cli

    return cli.main(list(args))


@pytest.mark.slow
def test_rlhf_cli_bonus_mode_then_resume(tmp_path, tiny_llama_dir, one_thread, capsys):
    prompts = tmp_path / "prompts.jsonl"
    arithmetic_prompts(8, prompts)
    out = tmp_path / "run"
    common = [
        "rlhf",
        "--policy", str(tiny_llama_dir),
        "--rm", str(tiny_llama_dir),  # the same tiny Llama, loaded as a sequence classifier
        "--prompts", str(prompts),
        "--output", str(out),
        "--mode", "bonus",
        "--env-reward", "exact_match",
        "--rm-coeff", "0.5",
        "--kl-coeff", "0.05",
        "--group-size", "2",
        "--prompts-per-step", "2",
        "--max-completion-length", "8",
        "--lora", "--lora-r", "4", "--lora-alpha", "8",
        "--save-steps", "1",
        "--learning-rate", "1e-3",
    ]  # fmt: skip
    assert run_cli(*common, "--steps", "2") == 0
    printed = capsys.readouterr().out
    assert "step 2/2 | rm " in printed and "exact_match" in printed and "kl " in printed

    summary = json.loads((out / "summary.json").read_text())
    assert summary["global_step"] == 2 and summary["steps_logged"] == 2
    assert summary["reward_weights"] == {"exact_match": 1.0, "rm_score": 0.5}
    for step in summary["per_step"]:
        for key in ("rm_score_mean", "rm_score_std", "rm_score_min", "rm_score_max", "env_reward", "kl"):
            assert step[key] is not None and math.isfinite(step[key]), key
        assert step["rm_score_min"] <= step["rm_score_mean"] <= step["rm_score_max"]
        # TRL's total is the weighted sum of its parts (means are linear)
        assert step["reward"] == pytest.approx(step["env_reward"] + 0.5 * step["rm_score_mean"], abs=1e-5)
    config = json.loads((out / "run_config.json").read_text())
    assert config["options"]["mode"] == "bonus" and config["grpo_config"]["beta"] == 0.05
    rollouts = [json.loads(line) for line in (out / "rollouts.jsonl").read_text().splitlines()]
    assert len(rollouts) == 2 * 4 and {r["step"] for r in rollouts} == {1, 2}
    for r in rollouts:
        assert r["reward"] == pytest.approx(r["env"]["exact_match"] + 0.5 * r["rm_score"], abs=1e-6)
    step1 = [r["rm_score"] for r in rollouts if r["step"] == 1]
    assert summary["per_step"][0]["rm_score_mean"] == pytest.approx(sum(step1) / 4, abs=1e-6)

    # the saved policy is a plain causal LM (LoRA merged)
    from transformers import AutoModelForCausalLM

    assert not (out / "adapter_config.json").exists()
    AutoModelForCausalLM.from_pretrained(out)

    # killed after its last checkpoint, before the policy and summary were saved: --resume
    # finishes from that checkpoint, with no step trained (helper 70: it was refused)
    (out / "summary.json").unlink()
    (out / "model.safetensors").unlink()
    assert run_cli(*common, "--steps", "2", "--resume") == 0
    assert "checkpoint-2 is the run's last step: finishing from it" in capsys.readouterr().out
    finished = json.loads((out / "summary.json").read_text())
    assert finished["global_step"] == 2 and finished["per_step"] == summary["per_step"]
    assert finished["train_loss"] == pytest.approx(summary["train_loss"], rel=1e-6)
    AutoModelForCausalLM.from_pretrained(out)

    # resume: the same options, one more step, from checkpoint-2; a checkpoint-3 that a kill cut
    # short is passed over (helper 70: the Trainer's traceback)
    (out / "checkpoints" / "checkpoint-3").mkdir()
    assert run_cli(*common, "--steps", "3", "--resume") == 0
    printed = capsys.readouterr().out
    assert "resuming from" in printed and "skipping checkpoint-3" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["global_step"] == 3 and [s["step"] for s in summary["per_step"]] == [1, 2, 3]
    assert summary["resumed_from"].endswith("checkpoint-2")
    # the run's loss covers all three steps, not only the one after the resume
    losses = [s["loss"] for s in summary["per_step"]]
    assert summary["train_loss"] == pytest.approx(sum(losses) / 3, rel=1e-6, abs=1e-12)
    rollouts = [json.loads(line) for line in (out / "rollouts.jsonl").read_text().splitlines()]
    assert {r["step"] for r in rollouts} == {1, 2, 3}
    # helper 80: the first step after a resume with more --steps ran at the old plan's end rate
    # (0 on the linear schedule); now this plan's rate at step 3 of 3
    logged = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    rates = {r["step"]: r["learning_rate"] for r in logged if "learning_rate" in r}
    assert rates[3] == pytest.approx(1e-3 * (1 - 2 / 3), rel=1e-6)

    # refusing to mix runs: a new run into a used folder, or a resume with other options
    assert run_cli(*common, "--steps", "2") == 2
    assert "already holds a run" in capsys.readouterr().err
    assert run_cli(*[a if a != "0.5" else "0.7" for a in common], "--steps", "4", "--resume") == 2
    assert "rm_coeff 0.5 -> 0.7" in capsys.readouterr().err
    # a new rate was recorded in run_config.json and never used (the optimizer's was restored)
    assert run_cli(*[a if a != "1e-3" else "2e-3" for a in common], "--steps", "4", "--resume") == 2
    assert "learning_rate 0.001 -> 0.002" in capsys.readouterr().err
    # helper 85: prompts edited since the run began were trained on without a word, while the
    # same file named by another path was refused as a change
    other_path = str(tmp_path / "." / "prompts.jsonl")
    moved = [other_path if a == str(prompts) else a for a in common]
    lines = prompts.read_text().splitlines()
    prompts.write_text("\n".join(lines[::-1]) + "\n")  # the same prompts in another order
    assert run_cli(*moved, "--steps", "4", "--resume") == 2
    err = capsys.readouterr().err
    assert "are not the ones the run began with (8 prompt(s) then, 8 now)" in err and "prompts '" not in err
    prompts.write_text("\n".join(lines) + "\n")
    assert run_cli(*moved, "--steps", "4", "--resume") == 0
    assert json.loads((out / "summary.json").read_text())["global_step"] == 4


@pytest.mark.slow
def test_scalerl_replace_mode_via_api(tmp_path, tiny_llama_dir, one_thread):
    from rewardforge.inference import RewardModel
    from rewardforge.rlhf import exact_match, make_scalerl_with_rm, prompts_dataset
    from rewardforge.rlhf.policy import load_policy

    rm = RewardModel.from_pretrained(str(tiny_llama_dir))
    setup = make_scalerl_with_rm(
        rm,
        group_size=2,
        rm_mode="replace",
        env_rewards=[exact_match],  # monitored only
        prompts_per_step=2,
        output_dir=str(tmp_path / "ckpt"),
        max_steps=2,
        max_completion_length=8,
        use_cpu=True,
        save_strategy="no",
    )
    model, tok = load_policy(str(tiny_llama_dir))
    trainer = setup.trainer(model, prompts_dataset(arithmetic_prompts(4)), processing_class=tok)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "rm_score/mean" in h]
    assert len(logs) == 2
    for h in logs:
        assert h["reward"] == pytest.approx(h["rewards/rm_score/mean"], abs=1e-6)  # replace: RM alone
        assert "rewards/exact_match/mean" in h and "kl" in h and "cispo_clip_ratio" in h
        assert h["scalerl/kept_prompt_frac"] == 1.0
    # TRL's advantages for the last batch: (r - its group's mean) / (batch std + 1e-4), r = RM score
    rewards = torch.tensor(list(trainer._logs["rewards"]["rm_score"])[-4:])
    group_means = rewards.view(2, 2).mean(dim=1).repeat_interleave(2)
    expected = (rewards - group_means) / (rewards.std() + 1e-4)
    assert list(trainer._logs["advantages"])[-4:] == pytest.approx(expected.tolist(), abs=1e-4)


@pytest.mark.slow
def test_bon_cli(tmp_path, tiny_llama_dir, one_thread, capsys):
    from rewardforge.inference import RewardModel

    prompts = tmp_path / "prompts.jsonl"
    arithmetic_prompts(3, prompts)
    out = tmp_path / "bon.jsonl"
    args = ["bon", "--policy", str(tiny_llama_dir), "--rm", str(tiny_llama_dir), "--prompts", str(prompts)]
    assert (
        run_cli(*args, "--n", "3", "--max-new-tokens", "6", "--output", str(out), "--prompts-per-batch", "2",
                "--env-reward", "contains_answer")
        == 0
    )  # fmt: skip
    assert "mean best" in capsys.readouterr().err  # stdout may be the results (--output -)
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["index"] for r in results] == [0, 1, 2] and all(r["id"].startswith("add-") for r in results)
    rm = RewardModel.from_pretrained(str(tiny_llama_dir))
    for r in results:
        assert len(r["candidates"]) == 3
        scores = [c["score"] for c in r["candidates"]]
        assert r["best_score"] == max(scores) and r["best"] == r["candidates"][r["best_index"]]["text"]
        again = rm.score_batch([(r["prompt"], c["text"]) for c in r["candidates"]])
        assert again == pytest.approx(scores, abs=1e-5)
        assert all(c["env"]["contains_answer"] in (0.0, 1.0) for c in r["candidates"])
    summary = json.loads((tmp_path / "bon.summary.json").read_text())
    assert summary["prompts"] == 3 and summary["candidates"] == 9
    assert summary["mean_best_score"] >= summary["mean_score"]
    assert set(summary["env"]["contains_answer"]) == {"mean", "mean_of_best"}
    # greedy: one response per prompt (the before/after check on held-out prompts)
    greedy = ("--greedy", "--max-new-tokens", "4", "--summary", str(tmp_path / "g-means.json"))
    assert run_cli(*args, *greedy, "--output", str(tmp_path / "g.jsonl")) == 0
    assert all(len(json.loads(x)["candidates"]) == 1 for x in (tmp_path / "g.jsonl").read_text().splitlines())
    assert json.loads((tmp_path / "g-means.json").read_text())["candidates"] == 3  # --summary names it
    assert not (tmp_path / "g.summary.json").exists()


def test_bon_to_stdout_is_only_jsonl_and_its_record_has_every_option(
    tmp_path, tiny_llama_dir, one_thread, capfd
):
    """helper 85: the closing line went to stdout, inside the JSONL stream of --output -; the
    record lacked options that decide the candidates (--top-p, --prompts-per-batch)."""
    prompts = tmp_path / "prompts.jsonl"
    arithmetic_prompts(3, prompts)
    summary = tmp_path / "s.json"
    args = ["bon", "--policy", str(tiny_llama_dir), "--rm", str(tiny_llama_dir), "--prompts", str(prompts),
            "--n", "2", "--max-new-tokens", "3", "--top-p", "0.5", "--output", "-", "--summary", str(summary)]  # fmt: skip
    assert run_cli(*args) == 0
    captured = capfd.readouterr()
    assert [json.loads(line)["index"] for line in captured.out.splitlines()] == [0, 1, 2]
    assert "mean best" in captured.err
    options = json.loads(summary.read_text())["options"]
    assert options["top_p"] == 0.5 and options["prompts_per_batch"] == 4 and options["env_reward"] == []


def test_rlhf_cli_bad_options_exit_2(tmp_path, capsys):
    prompts = tmp_path / "p.jsonl"
    arithmetic_prompts(2, prompts)
    base = ["rlhf", "--policy", "x", "--rm", "y", "--prompts", str(prompts), "--output", str(tmp_path / "o")]
    assert run_cli(*base, "--mode", "bonus") == 2
    assert "--env-reward" in capsys.readouterr().err
    assert run_cli(*base, "--group-size", "1") == 2
    assert "--group-size must be at least 2" in capsys.readouterr().err
    # a batch TRL cannot split into groups of 2 is refused before any model is loaded
    assert run_cli(*base, "--group-size", "2", "--grpo-arg", "per_device_train_batch_size=3") == 2
    assert "divisible by num_generations" in capsys.readouterr().err
    assert run_cli(*base, "--env-reward", "nonsense") == 2
    assert "built-in" in capsys.readouterr().err
    assert run_cli(*base, "--resume") == 2  # no run yet: it starts, and fails on the missing models
    assert "starting the run" in capsys.readouterr().out
    assert (
        run_cli(*base[:-4], "--prompts", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "o"))
        == 2
    )


@pytest.mark.slow
def test_policy_template_and_rm_format_differ(tmp_path, tiny_llama_dir, tiny_bert_dir, one_thread):
    """The policy (Llama, ChatML template) generates; the RM (BERT, plain format) scores its own text."""
    from rewardforge.inference import RewardModel
    from rewardforge.rlhf import make_grpo_with_rm, prompts_dataset
    from rewardforge.rlhf.policy import load_policy

    class Recording:
        def __init__(self, rm):
            self.rm = rm
            self.texts: list[str] = []

        def score_batch(self, items, batch_size=16):
            self.texts += [self.rm.format_text(p, r) for p, r in items]
            return self.rm.score_batch(items, batch_size=batch_size)

    rm = Recording(RewardModel.from_pretrained(str(tiny_bert_dir)))
    setup = make_grpo_with_rm(
        rm,
        group_size=2,
        output_dir=str(tmp_path / "ckpt"),
        max_steps=1,
        max_completion_length=6,
        use_cpu=True,
        save_strategy="no",
    )
    model, tok = load_policy(str(tiny_llama_dir))
    records = [{"prompt": [{"role": "user", "content": t}]} for t in ("Say hello.", "Name a fruit.")]
    trainer = setup.trainer(model, prompts_dataset(records), processing_class=tok)
    trainer.train()
    assert len(rm.texts) == 4
    for text in rm.texts:
        assert text.startswith("User: ") and "\n\nAssistant: " in text and "<|im_start|>" not in text
    # while the policy saw its own chat template
    assert "<|im_start|>user" in tok.apply_chat_template(records[0]["prompt"], tokenize=False)
    log = trainer.state.log_history[0]
    assert log["rm_score/mean"] == pytest.approx(log["rewards/rm_score/mean"])


def test_a_prompt_past_the_policys_positions_is_refused(tmp_path, tiny_llama_dir, capsys):
    """helper 73: bon and rlhf crashed in the embeddings (GPT-2: IndexError traceback) or
    generated past the positions a rotary model was trained on."""
    prompts = tmp_path / "long.jsonl"
    long = " ".join(["word"] * 2100)  # the tiny Llama has 2048 positions
    prompts.write_text(json.dumps({"prompt": "Short?"}) + "\n" + json.dumps({"prompt": long}) + "\n")
    bon = ["bon", "--policy", str(tiny_llama_dir), "--rm", str(tiny_llama_dir), "--prompts", str(prompts)]
    assert run_cli(*bon, "--n", "2", "--max-new-tokens", "4", "--output", str(tmp_path / "b.jsonl")) == 2
    err = capsys.readouterr().err
    assert (
        f"{prompts}: prompt 2 is" in err and "more than the policy's 2048" in err and "Traceback" not in err
    )
    out = tmp_path / "rl"
    rlhf = ["rlhf", "--policy", str(tiny_llama_dir), "--rm", str(tiny_llama_dir), "--prompts", str(prompts)]
    rlhf += ["--output", str(out), "--steps", "1", "--group-size", "2", "--prompts-per-step", "2"]
    assert run_cli(*rlhf, "--max-completion-length", "8") == 2
    assert "--max-completion-length 8" in capsys.readouterr().err
    assert not out.exists()  # refused before the run's config: nothing left to clear


def test_bon_takes_a_prompt_that_fills_the_positions_but_the_last(tmp_path, tiny_llama_dir, capsys):
    """Generation feeds every token but the last one back: a prompt of P tokens and N new tokens
    uses P + N - 1 positions, one fewer than a training step. bon refused a prompt that fit."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    policy = tmp_path / "gpt2"  # learned positions: one past them is an IndexError, not a warning
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=1, n_head=2)
    config.eos_token_id = config.bos_token_id = tok.eos_token_id
    GPT2LMHeadModel(config).save_pretrained(policy)
    tok.save_pretrained(policy)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "Say hello."}) + "\n")
    text = tok.apply_chat_template(
        [{"role": "user", "content": "Say hello."}], add_generation_prompt=True, tokenize=False
    )
    used = len(tok(text, add_special_tokens=False)["input_ids"])
    bon = ["bon", "--policy", str(policy), "--rm", str(tiny_llama_dir), "--prompts", str(prompts), "--n", "2"]
    fits = 64 - used + 1
    assert run_cli(*bon, "--max-new-tokens", str(fits), "--output", str(tmp_path / "a.jsonl")) == 0
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 1
    assert run_cli(*bon, "--max-new-tokens", str(fits + 1), "--output", str(tmp_path / "b.jsonl")) == 2
    assert "that is 65 positions, more than the policy's 64" in capsys.readouterr().err


@pytest.mark.slow
def test_a_run_resumed_in_a_later_epoch_sees_the_prompts_in_the_uninterrupted_order(
    tmp_path, tiny_llama_dir, one_thread
):
    """helper 85: TRL's sampler draws each epoch's order from one generator seeded once, so a
    resumed run replayed epoch 1's order in its current epoch, after skipping the steps done:
    one prompt trained twice, another never. 4 prompts, 2 a step: epoch 2 starts at step 3."""
    prompts = tmp_path / "prompts.jsonl"
    arithmetic_prompts(4, prompts)

    def run(out, steps, *extra):
        argv = [
            "rlhf", "--policy", str(tiny_llama_dir), "--rm", str(tiny_llama_dir), "--prompts", str(prompts),
            "--output", str(out), "--group-size", "2", "--prompts-per-step", "2",
            "--max-completion-length", "4", "--save-steps", "2", "--steps", str(steps), *extra,
        ]  # fmt: skip
        assert run_cli(*argv) == 0
        rows = [json.loads(line) for line in (out / "rollouts.jsonl").read_text().splitlines()]
        return {s: sorted({json.dumps(r["prompt"]) for r in rows if r["step"] == s}) for s in (1, 2, 3, 4)}

    whole = run(tmp_path / "whole", 4)
    assert run(tmp_path / "cut", 2) == {1: whole[1], 2: whole[2], 3: [], 4: []}
    resumed = run(tmp_path / "cut", 4, "--resume")
    assert resumed == whole
    assert sorted(whole[3] + whole[4]) == sorted(whole[1] + whole[2])  # each prompt once an epoch


@pytest.mark.slow
def test_a_run_whose_first_step_fails_leaves_no_folder(tmp_path, tiny_llama_dir, one_thread, capsys):
    """helper 85: an env reward that raised at step 1 exited 2 and left OUT with run_config.json
    and an empty checkpoints folder; the README says a run stopped by bad input leaves nothing."""
    prompts = tmp_path / "prompts.jsonl"
    arithmetic_prompts(2, prompts)
    rewards = tmp_path / "envs.py"
    rewards.write_text("def boom(prompts, completions, **kw):\n    raise KeyError('answer')\n")
    out = tmp_path / "run"
    argv = ["rlhf", "--policy", str(tiny_llama_dir), "--rm", str(tiny_llama_dir), "--prompts", str(prompts),
            "--output", str(out), "--mode", "bonus", "--env-reward", f"{rewards}:boom", "--group-size", "2",
            "--prompts-per-step", "2", "--max-completion-length", "4", "--steps", "1"]  # fmt: skip
    assert run_cli(*argv) == 2
    assert "env reward 'boom' raised KeyError" in capsys.readouterr().err
    assert not out.exists()


def test_rlhf_turns_off_the_dropout_a_policy_keeps_as_a_number(tmp_path, tiny_llama_dir, monkeypatch):
    """helper 98: TRL's disable_dropout zeroes dropout layers only; a Llama policy's
    attention_dropout (a float its attention reads in training) stayed on."""
    import shutil

    import rewardforge.rlhf.policy as rlhf_policy

    policy = tmp_path / "policy"
    shutil.copytree(tiny_llama_dir, policy)
    config = json.loads((policy / "config.json").read_text())
    (policy / "config.json").write_text(json.dumps({**config, "attention_dropout": 0.5}))
    prompts = tmp_path / "prompts.jsonl"
    arithmetic_prompts(2, prompts)
    seen = []

    class Loaded(Exception):
        pass

    def stop_after_loading(tokenizer, model, *args):
        seen.extend(float(v) for m in model.modules() for k, v in vars(m).items() if k == "attention_dropout")
        raise Loaded

    monkeypatch.setattr(rlhf_policy, "check_prompt_room", stop_after_loading)
    argv = ["rlhf", "--policy", str(policy), "--rm", str(tiny_llama_dir), "--prompts", str(prompts),
            "--output", str(tmp_path / "run"), "--group-size", "2", "--prompts-per-step", "2",
            "--max-completion-length", "4", "--steps", "1"]  # fmt: skip
    with pytest.raises(Loaded):
        run_cli(*argv)
    assert seen and set(seen) == {0.0}
