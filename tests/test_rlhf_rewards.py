"""Reward arithmetic of the RLHF setups against hand-computed values (a stub RM, no model)."""

from __future__ import annotations

import json
import math

import pytest

from rewardforge.rlhf import (
    RM_REWARD_NAME,
    contains_answer,
    exact_match,
    make_grpo_with_rm,
    make_scalerl_with_rm,
    weighted_total,
)

PROMPTS = [[{"role": "user", "content": "What is 2 + 2?"}]] * 2 + [
    [{"role": "user", "content": "What is 3 + 4?"}]
] * 2
COMPLETIONS = [[{"role": "assistant", "content": t}] for t in ["4", "five", "7.", "It is 7"]]
ANSWERS = ["4", "4", "7", "7"]
RM_SCORES = {"4": 2.0, "five": -1.0, "7.": 0.5, "It is 7": 3.0}


class StubRM:
    """Scores by response text; records every call so tests can see how it was batched."""

    def __init__(self, scores=RM_SCORES):
        self.scores = scores
        self.calls: list[list] = []

    def score_batch(self, items, batch_size=16):
        self.calls.append(list(items))
        return [self.scores[resp[-1]["content"]] for _, resp in items]


class Collector:
    def __init__(self):
        self.metrics: dict[str, float] = {}
        self.extra: dict[str, list] = {}

    def log_metric(self, name, value):
        self.metrics[name] = value

    def log_extra(self, column, values):
        self.extra[column] = list(values)


def call_all(setup, collector=None, step=0):
    """Call every reward function as TRL does; return {name: values}."""
    from types import SimpleNamespace

    c = collector or Collector()
    kwargs = dict(
        answer=ANSWERS,
        trainer_state=SimpleNamespace(global_step=step),
        log_metric=c.log_metric,
        log_extra=c.log_extra,
    )
    return {f.__name__: f(prompts=PROMPTS, completions=COMPLETIONS, **kwargs) for f in setup.reward_funcs}


def test_env_rewards_by_hand():
    assert exact_match(PROMPTS, COMPLETIONS, answer=ANSWERS) == [1.0, 0.0, 1.0, 0.0]
    assert contains_answer(PROMPTS, COMPLETIONS, answer=ANSWERS) == [1.0, 0.0, 1.0, 1.0]
    assert contains_answer(PROMPTS, ["17", "the answer is 7", "7.5", "x7"], answer=["7"] * 4) == [
        0.0,
        1.0,
        0.0,
        0.0,
    ]
    assert exact_match(PROMPTS, COMPLETIONS) == [None] * 4  # no answer column: no reward


def test_replace_mode_reward_is_the_rm_score(tmp_path):
    setup = make_grpo_with_rm(StubRM(), group_size=2, rm_mode="replace", output_dir=str(tmp_path))
    assert setup.reward_names == [RM_REWARD_NAME]
    assert setup.reward_weights == [1.0]
    per_func = call_all(setup)
    assert per_func[RM_REWARD_NAME] == [2.0, -1.0, 0.5, 3.0]
    assert weighted_total(per_func, setup.weights_by_name()) == [2.0, -1.0, 0.5, 3.0]


def test_replace_mode_env_rewards_are_monitored_with_weight_zero(tmp_path):
    setup = make_grpo_with_rm(
        StubRM(), group_size=2, rm_mode="replace", env_rewards=[exact_match], output_dir=str(tmp_path)
    )
    assert setup.reward_names == ["exact_match", RM_REWARD_NAME]
    assert setup.reward_weights == [0.0, 1.0]
    per_func = call_all(setup)
    assert per_func["exact_match"] == [1.0, 0.0, 1.0, 0.0]
    assert weighted_total(per_func, setup.weights_by_name()) == [2.0, -1.0, 0.5, 3.0]


@pytest.mark.parametrize("make", [make_grpo_with_rm, make_scalerl_with_rm])
def test_bonus_mode_by_hand(tmp_path, make):
    # reward = exact_match + 0.5 * rm:  1 + 1.0, 0 - 0.5, 1 + 0.25, 0 + 1.5
    setup = make(
        StubRM(),
        group_size=2,
        rm_mode="bonus",
        rm_coeff=0.5,
        env_rewards=[exact_match],
        output_dir=str(tmp_path),
    )
    assert setup.reward_weights == [1.0, 0.5]
    assert setup.config.reward_weights == [1.0, 0.5]  # TRL combines the functions with these
    per_func = call_all(setup)
    assert weighted_total(per_func, setup.weights_by_name()) == [2.0, -0.5, 1.25, 1.5]


def test_bonus_mode_two_env_rewards_and_missing_values(tmp_path):
    def format_ok(prompts, completions, **kw):
        return [1.0 if c[0]["content"][:1].isdigit() else None for c in completions]

    setup = make_grpo_with_rm(
        StubRM(),
        group_size=2,
        rm_mode="bonus",
        rm_coeff=-2.0,
        env_rewards=[exact_match, format_ok],
        output_dir=str(tmp_path),
    )
    assert setup.reward_names == ["exact_match", "format_ok", RM_REWARD_NAME]
    assert setup.reward_weights == [1.0, 1.0, -2.0]
    per_func = call_all(setup)
    # None (no reward from that function) is left out of the sum, as TRL's nansum does
    assert weighted_total(per_func, setup.weights_by_name()) == [1 + 1 - 4.0, 0 + 2.0, 1 + 1 - 1.0, 0 - 6.0]


def test_weighted_total_matches_trl_formula():
    import torch

    per_func = {"a": [1.0, None, 0.0], "rm_score": [0.5, 2.0, None]}
    weights = {"a": 1.0, "rm_score": 0.25}
    table = torch.tensor([[1.0, 0.5], [math.nan, 2.0], [0.0, math.nan]])
    trl = (table * torch.tensor([1.0, 0.25]).unsqueeze(0)).nansum(dim=1)  # GRPOTrainer's line
    assert weighted_total(per_func, weights) == pytest.approx(trl.tolist())
    assert math.isnan(weighted_total({"a": [None]}, {"a": 1.0})[0])  # nothing scored it


def test_rm_scores_whole_batch_in_one_call_and_logs_stats(tmp_path):
    rm = StubRM()
    log_path = tmp_path / "rollouts.jsonl"
    setup = make_grpo_with_rm(
        rm,
        group_size=2,
        rm_mode="bonus",
        rm_coeff=0.5,
        env_rewards=[exact_match],
        rollouts_path=log_path,
        output_dir=str(tmp_path),
    )
    c = Collector()
    call_all(setup, c, step=6)
    assert len(rm.calls) == 1 and len(rm.calls[0]) == 4  # each prompt's group in the same call
    # role/content messages, the raw prompt (no policy template): the RM formats it its own way
    assert rm.calls[0][0] == (PROMPTS[0], COMPLETIONS[0])
    scores = [2.0, -1.0, 0.5, 3.0]
    mean = sum(scores) / 4
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / 3)
    assert c.metrics == pytest.approx(
        {"rm_score/mean": mean, "rm_score/std": std, "rm_score/min": -1.0, "rm_score/max": 3.0}
    )
    assert c.extra == {"rm_score": scores}
    rows = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [r["rm_score"] for r in rows] == scores
    assert [r["env"]["exact_match"] for r in rows] == [1.0, 0.0, 1.0, 0.0]
    assert [r["reward"] for r in rows] == [2.0, -0.5, 1.25, 1.5]
    assert {r["step"] for r in rows} == {7}  # generated for the step the trainer is about to take
    assert rows[3]["prompt"] == PROMPTS[3] and rows[3]["completion"] == COMPLETIONS[3]


def test_setups_configure_trl(tmp_path):
    g = make_grpo_with_rm(StubRM(), group_size=4, kl_coeff=0.02, output_dir=str(tmp_path), max_steps=3)
    assert g.config.num_generations == 4
    assert g.config.beta == 0.02
    assert g.config.per_device_train_batch_size == 8  # 2 prompts per step x 4 rollouts
    assert g.config.max_steps == 3 and not g.config.bf16
    from trl import GRPOTrainer

    assert issubclass(g.trainer_cls, GRPOTrainer)  # with the schedule that follows a new plan on resume
    s = make_scalerl_with_rm(StubRM(), group_size=4, output_dir=str(tmp_path))
    assert s.config.loss_type == "cispo"
    assert s.config.epsilon_high == 5.0  # deliberate: TRL's unset value would cap the IS weight at 0.2
    assert s.config.scale_rewards == "batch"
    assert s.config.beta == 0.01
    assert s.trainer_cls.__name__ == "ScaleRLTrainer"
    assert s.trainer_kwargs == {"filter_zero_variance": True}
    assert "prompt-level loss averaging" in json.dumps(s.describe())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rm_mode": "bonus"}, "env_rewards"),
        ({"rm_mode": "mix"}, "rm_mode"),
        ({"group_size": 1}, "group_size"),
        ({"kl_coeff": -1.0}, "kl_coeff"),
        ({"rm_coeff": math.nan}, "rm_coeff"),
    ],
)
def test_bad_settings(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_grpo_with_rm(StubRM(), output_dir=str(tmp_path), **kwargs)


def test_env_reward_cannot_take_the_rm_name(tmp_path):
    def rm_score(prompts, completions, **kw):
        return [0.0] * len(completions)

    with pytest.raises(ValueError, match="rm_score"):
        make_grpo_with_rm(StubRM(), rm_mode="bonus", env_rewards=[rm_score], output_dir=str(tmp_path))


def test_complete_sentence_by_hand():
    from rewardforge.rlhf import complete_sentence

    completions = ["Sure, here it is.", "I think that", 'He said "stop!"', "Why? ", "", "ok (really?)"]
    assert complete_sentence(PROMPTS[:1] * 6, completions) == [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    messages = [[{"role": "assistant", "content": "Done."}], [{"role": "assistant", "content": "Not yet"}]]
    assert complete_sentence(PROMPTS[:1] * 2, messages) == [1.0, 0.0]


def test_a_blank_answer_is_no_answer_and_numbers_match_whole():
    """helper 73: an empty answer (a CSV's blank cell) gave every completion 1.0, and 5 was found
    in -5, 5,000 and 3/5."""
    from rewardforge.rlhf.env_rewards import exact_match

    def text(t):
        return [[{"role": "assistant", "content": t}]]

    assert contains_answer(None, text("anything at all"), answer=["  "]) == [None]
    assert exact_match(None, text(""), answer=[""]) == [None]
    found = {t: contains_answer(None, text(t), answer=["5"])[0] for t in
             ("The answer is -5.", "It costs 5,000", "3/5 of them", "5/8", "1,5", "It is 5.", "5, 6 and 7", "x=5", "(5)")}  # fmt: skip
    assert found == {
        "The answer is -5.": 0.0, "It costs 5,000": 0.0, "3/5 of them": 0.0, "5/8": 0.0, "1,5": 0.0,
        "It is 5.": 1.0, "5, 6 and 7": 1.0, "x=5": 1.0, "(5)": 1.0,
    }  # fmt: skip
    assert contains_answer(None, text("it is -5"), answer=["-5"]) == [1.0]


def test_numbers_are_compared_as_numbers_where_files_store_them_otherwise():
    """helper 74: a pandas answer column with a missing value stores 5 as 5.0 (Parquet) or
    "5.0" (CSV), and every correct "5" scored 0; a NaN answer scored 0, not None; the Unicode
    minus was not a minus."""

    def text(t):
        return [[{"role": "assistant", "content": t}]]

    for answer in (5.0, "5.0", "5"):
        assert contains_answer(None, text("It is 5."), answer=[answer]) == [1.0], answer
        assert contains_answer(None, text("It is 5.0"), answer=[answer]) == [1.0], answer
    assert contains_answer(None, text("It is 5.05"), answer=["5"]) == [0.0]
    assert contains_answer(None, text("x"), answer=[math.nan]) == [None]
    assert contains_answer(None, text("The answer is \u22125"), answer=["-5"]) == [1.0]
    assert contains_answer(None, text("The answer is \u22125"), answer=["5"]) == [0.0]
    # helper 85: trailing zeros were dropped after a whole number only ("2.50" was not 2.5)
    for answer in (2.5, "2.5", "2.50"):
        assert contains_answer(None, text("It is 2.50"), answer=[answer]) == [1.0], answer
        assert contains_answer(None, text("It is 2.5."), answer=[answer]) == [1.0], answer
        assert exact_match(None, text("2.500"), answer=[answer]) == [1.0], answer
    assert contains_answer(None, text("It is 2.55"), answer=["2.5"]) == [0.0]
    assert exact_match(None, text("25"), answer=["2.50"]) == [0.0]


def test_lists_of_other_lengths_are_refused_not_cut_short():
    """helper 76: zip dropped the rollouts past the shorter list (3 prompts, 2 completions gave
    2 scores; one answer for 2 completions gave 1 reward; answer="5" became ["5"]); a message
    without a role was a KeyError; ragged rewards an IndexError and a missing weight a KeyError."""
    from rewardforge.rlhf.rewards import RMReward

    with pytest.raises(ValueError, match="3 prompt"):
        RMReward(StubRM())(PROMPTS[:3], COMPLETIONS[:2])
    with pytest.raises(ValueError, match=r"1 answer\(s\) for 2 completion"):
        exact_match(None, COMPLETIONS[:2], answer=["4"])
    with pytest.raises(TypeError, match="one answer per completion"):
        contains_answer(None, COMPLETIONS[:2], answer="4")
    with pytest.raises(ValueError, match="chat messages with a role"):
        RMReward(StubRM())([[{"content": "Hi"}]], COMPLETIONS[:1])
    with pytest.raises(ValueError, match="one value per rollout"):
        weighted_total({"a": [1.0, 2.0], "b": [1.0]}, {"a": 1.0, "b": 1.0})
    with pytest.raises(ValueError, match=r"no weight for reward\(s\) \['b'\]"):
        weighted_total({"a": [1.0], "b": [1.0]}, {"a": 1.0})
