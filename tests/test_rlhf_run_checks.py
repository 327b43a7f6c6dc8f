"""`rewardforge rlhf` and `bon` refuse, before any model is loaded, what would crash or mix runs
(helper 51's findings). No model is loaded here: each refusal comes first."""

from __future__ import annotations

import json

import pytest

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


def test_a_nan_score_is_never_the_best_of_n(tiny_llama_dir):
    """A NaN first candidate was kept as the best (every comparison with NaN is false)."""
    import torch

    from rewardforge.rlhf.bon import best_of_n
    from rewardforge.rlhf.policy import load_policy

    class NanFirst:
        def score_batch(self, items, batch_size=16):
            return [float("nan"), 0.1, 0.5] * (len(items) // 3)

    torch.manual_seed(0)
    model, tokenizer = load_policy(str(tiny_llama_dir))
    (result,) = best_of_n(
        model, tokenizer, NanFirst(), [{"prompt": [{"role": "user", "content": "Hi"}]}], 3, max_new_tokens=2
    )
    assert result["best_index"] == 2 and result["best_score"] == 0.5
