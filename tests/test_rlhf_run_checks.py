"""`rewardforge rlhf` and `bon` refuse, before any model is loaded, what would crash or mix runs
(helper 51's findings). No model is loaded here: each refusal comes first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from rewardforge import cli
from rewardforge.rlhf import arithmetic_prompts


def rlhf(tmp_path, *extra: str, out: str = "o", n_prompts: int = 4) -> list[str]:
    prompts = tmp_path / "p.jsonl"
    arithmetic_prompts(n_prompts, prompts)
    policy, rm = str(tmp_path / "no-policy"), str(tmp_path / "no-rm")  # never loaded
    return [
        "rlhf",
        "--policy",
        policy,
        "--rm",
        rm,
        "--prompts",
        str(prompts),
        "--output",
        str(tmp_path / out),
        *extra,
    ]


def test_more_prompts_per_step_than_prompts_is_refused(tmp_path, capsys):
    """It trained 0 steps, exited 0 and saved the untrained policy."""
    assert cli.main(rlhf(tmp_path, "--prompts-per-step", "8")) == 2
    err = capsys.readouterr().err
    assert "--prompts-per-step 8 needs at least that many prompts" in err and "gives 4" in err
    assert not (tmp_path / "o").exists()  # refused before the run folder is made


@pytest.mark.parametrize("coeff", ["0", "-1"])
def test_bonus_mode_needs_a_positive_rm_coefficient(tmp_path, capsys, coeff):
    """--rm-coeff -1 had the policy lower the RM score."""
    argv = rlhf(tmp_path, "--mode", "bonus", "--env-reward", "exact_match", "--rm-coeff", coeff)
    assert cli.main(argv) == 2
    assert "--rm-coeff must be a finite number > 0" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["train_log.jsonl", "rollouts.jsonl", "summary.json"])
def test_a_new_run_does_not_mix_with_files_already_there(tmp_path, capsys, name):
    """A failed run's logs were appended to, and a user's own summary.json replaced."""
    out = tmp_path / "o"
    out.mkdir()
    (out / name).write_text('{"my": "own"}\n')
    assert cli.main(rlhf(tmp_path)) == 2
    assert f"already holds {name}: choose another --output" in capsys.readouterr().err
    assert (out / name).read_text() == '{"my": "own"}\n'


def fake_run(tmp_path, env_rewards: list[str], step: int = 2):
    """A folder as an rlhf run leaves it, with a checkpoint at `step` and logs of 4 steps."""
    out = tmp_path / "o"
    ckpt = out / "checkpoints" / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    save_file({"w": torch.zeros(1)}, str(ckpt / "model.safetensors"))  # a checkpoint that reads back
    for name in ("optimizer.pt", "scheduler.pt"):
        torch.save({}, ckpt / name)
    options = {
        "policy": str(tmp_path / "no-policy"),
        "rm": str(tmp_path / "no-rm"),
        "prompts": str(tmp_path / "p.jsonl"),
    }
    options.update(
        mode="bonus", env_rewards=env_rewards, algo="grpo", rm_coeff=0.5, kl_coeff=None, group_size=4
    )
    options.update(lora=False, prompts_per_step=2, max_completion_length=128, temperature=1.0)
    (out / "run_config.json").write_text(json.dumps({"options": options, "grpo_config": {}}))
    for name in ("train_log.jsonl", "rollouts.jsonl"):
        (out / name).write_text("".join(json.dumps({"step": s, "x": 1}) + "\n" for s in (1, 2, 3, 4)))
    return out


def test_resume_with_other_env_rewards_is_refused(tmp_path, capsys):
    """A resumed run changed its reward and the record of the earlier steps was lost."""
    fake_run(tmp_path, ["contains_answer"])
    argv = rlhf(tmp_path, "--resume", "--mode", "bonus", "--env-reward", "exact_match")
    assert cli.main(argv) == 2
    assert "env_rewards ['contains_answer'] -> ['exact_match']" in capsys.readouterr().err


def test_resume_drops_the_logged_steps_it_does_again(tmp_path):
    """After a kill at step 4 and a resume from checkpoint-2, steps 3 and 4 were logged twice."""
    from rewardforge.rlhf.run import _drop_logged_steps_after

    out = fake_run(tmp_path, ["exact_match"])
    with open(out / "rollouts.jsonl", "a") as f:
        f.write("not json\n")  # not ours: kept
    _drop_logged_steps_after(out, 2)
    assert [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()] == [1, 2]
    assert (out / "rollouts.jsonl").read_text().splitlines()[-1] == "not json"
    assert len((out / "rollouts.jsonl").read_text().splitlines()) == 3


def test_a_step_with_no_env_reward_value_prints_n_a(tmp_path):
    """TRL logs None as the mean of an env reward no rollout of the step had a value for (no
    `answer`): the progress line raised TypeError and the run was lost."""
    from types import SimpleNamespace

    from rewardforge.rlhf.run import ProgressPrinter

    lines: list[str] = []
    printer = ProgressPrinter(
        tmp_path / "log.jsonl", ["exact_match"], printer=lambda text, **_: lines.append(text)
    )
    state = SimpleNamespace(is_world_process_zero=True, global_step=1, max_steps=2)
    logs = {"rm_score/mean": 0.5, "rm_score/std": None, "rewards/exact_match/mean": None, "kl": None}
    printer.on_log(None, state, None, logs=logs)
    assert "exact_match n/a" in lines[0] and "rm 0.500 (sd n/a" in lines[0] and "kl n/a" in lines[0]


@pytest.mark.parametrize("command", ["rlhf", "bon"])
@pytest.mark.parametrize(
    ("module", "expect"), [("nosuchmod:f", "ModuleNotFoundError"), ("bad.py:f", "SyntaxError")]
)
def test_an_env_reward_that_cannot_be_imported_is_one_line(
    tmp_path, capsys, monkeypatch, command, module, expect
):
    """A missing module or a syntax error was a traceback (exit 1)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.py").write_text("this is not python(\n")
    argv = rlhf(tmp_path, "--env-reward", module)
    if command == "bon":
        argv = ["bon", *argv[1:-2], "--output", str(tmp_path / "o.jsonl"), "--env-reward", module]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"--env-reward '{module}': cannot import" in err and expect in err and "Traceback" not in err


def test_env_reward_values_are_checked_and_name_the_function():
    """bon failed with IndexError (too few values) or TypeError (strings) after all its generation."""
    from rewardforge.rlhf.env_rewards import EnvRewardError, checked

    completions = [[{"role": "assistant", "content": c}] for c in ("a", "b")]

    def short(prompts, completions, **kw):
        return [1.0]

    def words(prompts, completions, **kw):
        return ["yes" for _ in completions]

    def maybe(prompts, completions, **kw):
        return [float("nan"), 2]

    with pytest.raises(EnvRewardError, match="env reward 'short' returned 1 values for 2 completions"):
        checked(short)(["p", "p"], completions)
    with pytest.raises(
        EnvRewardError, match="env reward 'words' returned str 'yes'; expected a number or None"
    ):
        checked(words)(["p", "p"], completions)
    assert checked(maybe)(["p", "p"], completions) == [None, 2.0]  # NaN: no value, as TRL reads it
    assert checked(maybe).__name__ == "maybe"  # TRL logs a reward under its function's name


def test_bon_refuses_an_env_reward_given_twice(tmp_path, capsys):
    """It was silently collapsed to one."""
    argv = rlhf(tmp_path, "--env-reward", "exact_match", "--env-reward", "exact_match")
    argv = ["bon", *argv[1:-6], "--output", str(tmp_path / "o.jsonl"), *argv[-4:]]
    assert cli.main(argv) == 2
    assert "each needs its own function name, got exact_match, exact_match" in capsys.readouterr().err


def test_a_nan_score_is_a_broken_reward_model_not_a_best_of_n(tiny_llama_dir):
    """A NaN first candidate was kept as the best (every comparison with NaN is false), and the
    means and the results file held NaN (no JSON)."""
    import torch

    from rewardforge.rlhf.bon import best_of_n
    from rewardforge.rlhf.policy import load_policy

    class NanFirst:
        def score_batch(self, items, batch_size=16):
            return [float("nan"), 0.1, 0.5] * (len(items) // 3)

    torch.manual_seed(0)
    model, tokenizer = load_policy(str(tiny_llama_dir))
    from rewardforge.modeling import ModelLoadError

    prompts = [{"prompt": [{"role": "user", "content": "Hi"}]}]
    with pytest.raises(ModelLoadError, match=r"non-finite score \(nan\) to a candidate of prompt 0"):
        best_of_n(model, tokenizer, NanFirst(), prompts, 3, max_new_tokens=2)


def test_resume_of_a_finished_run_is_refused(tmp_path, capsys):
    """Each --resume of a finished run trained one more step past --steps."""
    out = fake_run(tmp_path, ["exact_match"], step=2)
    (out / "summary.json").write_text(json.dumps({"global_step": 2}))  # it finished at step 2
    argv = rlhf(tmp_path, "--resume", "--mode", "bonus", "--env-reward", "exact_match", "--steps", "2")
    assert cli.main(argv) == 2
    assert "checkpoint-2 is at step 2 and --steps is 2: nothing is left to train" in capsys.readouterr().err
    assert (out / "train_log.jsonl").read_text().count("\n") == 4  # untouched


def test_resume_drops_a_cut_last_line_and_keeps_texts_with_line_separators(tmp_path):
    """str.splitlines cut records holding U+2028 into pieces that were kept (steps doubled), and a
    line cut short by the kill was kept, with the next run's first line glued onto it."""
    from rewardforge.rlhf.run import _drop_logged_steps_after

    out = tmp_path / "o"
    out.mkdir()
    rows = [json.dumps({"step": s, "text": "one\u2028two"}, ensure_ascii=False) for s in (1, 2, 3)]
    (out / "rollouts.jsonl").write_text("\n".join(rows) + '\n{"step": 4, "lo', encoding="utf-8")
    _drop_logged_steps_after(out, 2)
    kept = (out / "rollouts.jsonl").read_text(encoding="utf-8")
    assert kept.endswith("\n") and [json.loads(line)["step"] for line in kept.split("\n")[:-1]] == [1, 2]


def test_resume_keeps_the_prompts_and_the_seed(tmp_path, capsys):
    """--max-prompts and --seed change which prompts later steps see; they were accepted."""
    fake_run(tmp_path, ["exact_match"])
    config = json.loads((tmp_path / "o" / "run_config.json").read_text())
    config["options"].update(max_prompts=None, seed=42)
    (tmp_path / "o" / "run_config.json").write_text(json.dumps(config))
    base = ["--resume", "--mode", "bonus", "--env-reward", "exact_match"]
    assert cli.main(rlhf(tmp_path, *base, "--seed", "7")) == 2
    assert "seed 42 -> 7" in capsys.readouterr().err
    assert cli.main(rlhf(tmp_path, *base, "--max-prompts", "3", "--prompts-per-step", "2")) == 2
    assert "max_prompts None -> 3" in capsys.readouterr().err


def test_resume_with_another_schedule_or_optimizer_grpo_arg_is_refused(tmp_path, capsys):
    """The restored scheduler and optimizer went on with the old values while run_config.json
    recorded the new ones (the train command refuses the same)."""
    fake_run(tmp_path, ["exact_match"])
    config = json.loads((tmp_path / "o" / "run_config.json").read_text())
    config["options"]["grpo_overrides"] = {"lr_scheduler_type": "cosine", "top_p": 0.9}
    (tmp_path / "o" / "run_config.json").write_text(json.dumps(config))
    base = ["--resume", "--mode", "bonus", "--env-reward", "exact_match"]
    assert cli.main(rlhf(tmp_path, *base, "--grpo-arg", "lr_scheduler_type=linear")) == 2
    assert "--grpo-arg lr_scheduler_type 'cosine' -> 'linear'" in capsys.readouterr().err
    assert cli.main(rlhf(tmp_path, *base, "--grpo-arg", "lr_scheduler_type=cosine",
                         "--grpo-arg", "warmup_steps=3")) == 2  # fmt: skip
    assert "--grpo-arg warmup_steps 0 -> 3" in capsys.readouterr().err
    # helper 88: the sampler's settings change the prompt order a resume goes on with
    assert cli.main(rlhf(tmp_path, *base, "--grpo-arg", "lr_scheduler_type=cosine",
                         "--grpo-arg", "num_iterations=2")) == 2  # fmt: skip
    assert "--grpo-arg num_iterations 1 -> 2" in capsys.readouterr().err
    # helper 88: TRL's default given by its value is no change
    cli.main(
        rlhf(tmp_path, *base, "--grpo-arg", "lr_scheduler_type=cosine", "--grpo-arg", "weight_decay=0.0")
    )
    assert "weight_decay" not in capsys.readouterr().err


def test_a_step_done_is_known_by_its_rollouts_when_no_log_line_was_written(tmp_path):
    """helper 88: with --grpo-arg logging_steps 5 a run failing at step 2 had no log line, and
    its folder, rollouts of step 1 included, was removed as a run that never started."""
    from rewardforge.rlhf.run import _no_step_done

    out = tmp_path / "o"
    out.mkdir()
    assert _no_step_done(out)
    (out / "rollouts.jsonl").write_text('{"step": 1}\n')
    assert not _no_step_done(out)


def test_a_column_of_numbers_and_texts_becomes_texts():
    """`answer` 4 in one row and "Paris" in the next: a pyarrow traceback (exit 1)."""
    from rewardforge.rlhf.prompts import prompts_dataset

    user = [{"role": "user", "content": "q"}]
    ds = prompts_dataset(
        [{"prompt": user, "answer": 4, "id": 1}, {"prompt": user, "answer": "Paris", "id": "b"}]
    )
    assert ds["answer"] == ["4", "Paris"] and ds["id"] == ["1", "b"]
    assert prompts_dataset([{"prompt": user, "answer": 4}, {"prompt": user, "answer": 5}])["answer"] == [4, 5]

    def column(*values):
        return prompts_dataset([{"prompt": user, "answer": v} for v in values])["answer"]

    # helper 58: 4 beside 2.5 became 4.0 (exact_match then scored "4" wrong), and deeper mixtures,
    # objects with other keys and integers past 64 bits were pyarrow tracebacks or added keys
    assert column(4, 2.5) == ["4", "2.5"]
    assert column([1, 2], ["x"]) == ["[1, 2]", '["x"]'] and column([1, "s"]) == ['[1, "s"]']
    assert column({"k": 1}, {"j": "s"}) == ['{"k": 1}', '{"j": "s"}']
    assert column(2**70, 1) == [str(2**70), "1"]
    assert column([], [1]) == [[], [1]] and column(None, 3) == [None, 3]  # what Arrow holds stays
    assert column({"x": None}, {"x": 1}) == [{"x": None}, {"x": 1}] and column([[]], [[1]]) == [[[]], [[1]]]
    assert column({}, {"a": 1}) == ["{}", '{"a": 1}']  # Arrow would give the first an "a": None


def test_env_rewards_of_every_callable_kind_and_number_kind():
    """A class instance was logged as 'call' (two were 'duplicates'); numpy and torch numbers were
    refused; an exception inside was a trainer's traceback."""
    import functools

    import numpy as np
    import torch

    from rewardforge.rlhf.env_rewards import EnvRewardError, checked

    class Length:
        def __call__(self, prompts, completions, **kw):
            return np.ones(len(completions), dtype=np.float32)

    def scaled(prompts, completions, factor=1.0, **kw):
        return torch.ones(len(completions)) * factor

    def boom(prompts, completions, **kw):
        raise KeyError("answer_missing")

    completions = [[{"role": "assistant", "content": "a"}]] * 2
    assert checked(Length()).__name__ == "Length" and checked(Length())(["p"] * 2, completions) == [1.0, 1.0]
    partial = checked(functools.partial(scaled, factor=2.0))
    assert partial.__name__ == "scaled" and partial(["p"] * 2, completions) == [2.0, 2.0]
    with pytest.raises(EnvRewardError, match="env reward 'boom' raised KeyError: 'answer_missing'"):
        checked(boom)(["p"] * 2, completions)

    def flags(prompts, completions, **kw):  # numpy's and torch's booleans are no reward either
        return torch.tensor([True] * len(completions))

    with pytest.raises(EnvRewardError, match="env reward 'flags' returned Tensor"):
        checked(flags)(["p"] * 2, completions)
    with pytest.raises(EnvRewardError, match="returned bool"):
        checked(lambda prompts, completions, **kw: [np.bool_(False)] * 2)(["p"] * 2, completions)
    for odd in (np.complex128(1 + 2j), bytearray(b"7"), np.array([1.5])):  # helper 59: 1.0, 7.0, refused
        with pytest.raises(EnvRewardError, match="expected a number or None"):
            checked(lambda prompts, completions, odd=odd, **kw: [odd] * 2)(["p"] * 2, completions)


def test_resume_passes_over_a_checkpoint_cut_short_and_refuses_when_none_is_whole(tmp_path, capsys):
    """helper 70: a kill while checkpoint-3 was saved left its folder, and --resume took it (a
    Trainer traceback), with a whole checkpoint-2 beside it."""
    from rewardforge.rlhf.run import RLHFOptions, _check_resume

    out = fake_run(tmp_path, ["exact_match"], step=2)
    (out / "checkpoints" / "checkpoint-3").mkdir()
    opts = RLHFOptions(
        policy=str(tmp_path / "no-policy"), rm=str(tmp_path / "no-rm"), prompts=str(tmp_path / "p.jsonl"),
        output=str(out), mode="bonus", env_rewards=["exact_match"], steps=4, resume=True,
    )  # fmt: skip
    last, step, finishing = _check_resume(out, opts)
    assert (Path(last).name, step, finishing) == ("checkpoint-2", 2, False)
    assert "skipping checkpoint-3: trainer_state.json is missing" in capsys.readouterr().out
    (out / "checkpoints" / "checkpoint-2" / "optimizer.pt").write_bytes(b"PK\x03\x04 cut")
    assert cli.main(rlhf(tmp_path, "--resume", "--mode", "bonus", "--env-reward", "exact_match")) == 2
    assert "no checkpoint in" in capsys.readouterr().err


def test_resume_of_a_run_killed_after_its_last_checkpoint_finishes_it(tmp_path):
    """helper 70: killed after the last step's checkpoint, before the policy and summary were
    saved, the run could not be finished ("nothing is left to train")."""
    from rewardforge.rlhf.run import RLHFOptions, _check_resume

    out = fake_run(tmp_path, ["exact_match"], step=4)
    opts = RLHFOptions(
        policy=str(tmp_path / "no-policy"), rm=str(tmp_path / "no-rm"), prompts=str(tmp_path / "p.jsonl"),
        output=str(out), mode="bonus", env_rewards=["exact_match"], steps=4, resume=True,
    )  # fmt: skip
    assert _check_resume(out, opts)[1:] == (4, True)
    (out / "summary.json").write_text(json.dumps({"global_step": 2}))  # an earlier, shorter run's
    assert _check_resume(out, opts)[1:] == (4, True)


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_it_again(tmp_path, capsys):
    """helper 70: a preemptible job passes --resume always; with only the logs of a run killed
    before its first checkpoint it was refused, and without --resume too."""
    out = fake_run(tmp_path, ["exact_match"])
    import shutil

    shutil.rmtree(out / "checkpoints")
    assert cli.main(rlhf(tmp_path, "--resume", "--mode", "bonus", "--env-reward", "exact_match")) == 2
    captured = capsys.readouterr()
    assert "no checkpoint in" in captured.out and "starting the run" in captured.out
    assert "no-rm" in captured.err  # it went on to load the models (none here)
    assert not (out / "train_log.jsonl").exists() and not (out / "rollouts.jsonl").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "train_log.jsonl").write_text('{"my": "own"}\n')
    assert cli.main(rlhf(tmp_path, "--resume", out="mine")) == 2  # not a run of ours: not replaced
    assert "already holds train_log.jsonl" in capsys.readouterr().err


def test_run_train_loss_covers_every_step_or_says_it_cannot():
    """helper 72: with logging_steps=2 the resumed figure was the session's, and NaN when a run
    was finished from its checkpoint (summary.json then held NaN); helper 74: logged windows do
    not line up with steps after a resume, so no weighting of them is right."""
    import math

    from rewardforge.rlhf.run import _run_train_loss

    every = [
        {"loss": 1.0, "step": 1},
        {"other": 0, "step": 1},
        {"loss": 4.0, "step": 2},
        {"loss": 1.0, "step": 3},
    ]
    assert _run_train_loss(every, 3, 9.0, resumed=True) == pytest.approx(2.0)
    assert _run_train_loss(every, 3, math.nan, resumed=True) == pytest.approx(
        2.0
    )  # finished from a checkpoint
    coarse = [{"loss": 1.0, "step": 2}, {"loss": 4.0, "step": 4}]
    assert _run_train_loss(coarse, 4, 9.0, resumed=False) == 9.0  # the Trainer's own mean is the run's
    assert _run_train_loss(coarse, 4, 9.0, resumed=True) is None
    assert _run_train_loss(coarse, 4, math.nan, resumed=False) is None


def test_resume_with_only_a_checkpoint_cut_short_starts_again(tmp_path, capsys):
    """helper 72: a kill while the first checkpoint was written left checkpoint-3 without its
    state: --resume said "no checkpoint to continue", a new run "pass --resume"."""
    out = fake_run(tmp_path, ["exact_match"], step=3)
    (out / "checkpoints" / "checkpoint-3" / "trainer_state.json").unlink()
    assert cli.main(rlhf(tmp_path, "--resume", "--mode", "bonus", "--env-reward", "exact_match")) == 2
    captured = capsys.readouterr()
    assert "starting the run" in captured.out and "no-rm" in captured.err
    assert not (out / "checkpoints").exists() and not (out / "train_log.jsonl").exists()


def test_resume_checks_what_a_run_recorded_before_the_options_kept_it(tmp_path, capsys):
    """helper 82: a GRPO run that recorded --epsilon-max (which GRPO never used) could not be
    resumed at all; one whose options predate learning_rate took a new rate without a word."""
    out = fake_run(tmp_path, ["exact_match"])
    config = json.loads((out / "run_config.json").read_text())
    config["options"]["epsilon_max"] = 3.0  # accepted by the code before, never used by GRPO
    config["grpo_config"]["learning_rate"] = 1e-5  # what it ran at; options had no learning_rate
    (out / "run_config.json").write_text(json.dumps(config))
    argv = rlhf(tmp_path, "--resume", "--mode", "bonus", "--env-reward", "exact_match", "--group-size", "4")
    argv += ["--prompts-per-step", "2", "--max-completion-length", "128"]
    assert cli.main([*argv, "--learning-rate", "2e-5"]) == 2
    assert "learning_rate 1e-05 -> 2e-05" in capsys.readouterr().err  # and not epsilon_max
    cli.main([*argv, "--learning-rate", "1e-5"])  # the rate it ran at: no change (the policy is missing)
    assert "different options" not in capsys.readouterr().err


def test_eval_holds_its_folder_whatever_rank_the_environment_says(tmp_path, monkeypatch, capsys):
    """helper 82: RANK=1 from a job script made eval skip its lock and leave the empty folders of
    a failed run."""
    monkeypatch.setenv("RANK", "1")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
    out = tmp_path / "new" / "eval"
    assert (
        cli.main(["eval", "--model", str(tmp_path / "nope"), "--data", str(data), "--output", str(out)]) == 2
    )
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("command", ["rlhf", "bon"])
def test_a_builtin_env_reward_whose_column_no_prompt_has_is_refused(tmp_path, capsys, command):
    """helper 85: exact_match on prompts with no `answer` anywhere scored None for every rollout,
    and the bonus run trained on the RM alone, saying only "exact_match n/a"."""
    prompts = tmp_path / "q.jsonl"
    # helper 88: blank and NaN answers are none too, and --max-prompts decides which records count
    prompts.write_text('{"prompt": "What is 2+2?", "answer": " "}\n{"prompt": "Say hi", "answer": NaN}\n'
                       '{"prompt": "And 3+3?", "answer": "6"}\n')  # fmt: skip
    if command == "rlhf":
        argv = rlhf(tmp_path, "--mode", "bonus", "--env-reward", "exact_match", "--prompts-per-step", "2",
                    "--max-prompts", "2")  # fmt: skip
        argv[argv.index("--prompts") + 1] = str(prompts)
    else:
        argv = ["bon", "--policy", "p", "--rm", "r", "--prompts", str(prompts), "--env-reward",
                "contains_answer", "--output", str(tmp_path / "b.jsonl"), "--max-prompts", "2"]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert (
        "compares each completion with its prompt's 'answer', and no record of" in err
        and "Traceback" not in err
    )
    assert not (tmp_path / "o").exists() and not (tmp_path / "b.jsonl").exists()
    assert "(--max-prompts 2)" in err


def test_resume_knows_the_policy_by_where_it_was_when_the_run_began(tmp_path, capsys, monkeypatch):
    """helper 88: paths recorded as typed ("pol") were resolved from the resuming folder: the same
    files by their whole path were refused, and another folder's "pol" was taken as the same."""
    out = fake_run(tmp_path, ["exact_match"])
    first, other = (tmp_path / "first").resolve(), (tmp_path / "other").resolve()
    for folder in (first, other):
        (folder / "pol").mkdir(parents=True)
    config = json.loads((out / "run_config.json").read_text())
    config["options"]["policy"] = "pol"  # as typed in `first`
    config["places"] = {"policy": str(first / "pol")}
    (out / "run_config.json").write_text(json.dumps(config))
    argv = rlhf(tmp_path, "--resume", "--mode", "bonus", "--env-reward", "exact_match")
    monkeypatch.chdir(other)
    argv[argv.index("--policy") + 1] = "pol"  # another folder's pol
    assert cli.main(argv) == 2
    assert f"policy '{first / 'pol'}' -> '{other / 'pol'}'" in capsys.readouterr().err
    argv[argv.index("--policy") + 1] = str(first / "pol")  # the run's own, by its whole path
    cli.main(argv)  # (goes on, and fails on the stand-in models)
    assert "policy '" not in capsys.readouterr().err


def test_a_resume_inside_a_generation_cycle_is_said():
    """helper 88: with num_iterations=2 a checkpoint at an odd step resumed by generating its
    batch again, and the run went on unlike an uninterrupted one without a word."""
    from types import SimpleNamespace

    from rewardforge.rlhf.run import mid_cycle_note

    config = SimpleNamespace(num_iterations=2, steps_per_generation=1)
    assert "inside a generation cycle of 2 steps" in mid_cycle_note(3, config)
    assert mid_cycle_note(4, config) is None and mid_cycle_note(0, config) is None
    assert mid_cycle_note(3, SimpleNamespace(num_iterations=1, steps_per_generation=1)) is None
