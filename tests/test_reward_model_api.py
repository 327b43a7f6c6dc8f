"""The Python API refuses wrong arguments with a clear TypeError/ValueError (helper round 39:
`rank("p", "abc")` ranked the letters, `score_batch(batch_size=0)` ran, `score("Hi", 5)` was
"'int' object is not iterable", a lone surrogate was the tokenizer's TypeError)."""

from __future__ import annotations

import re

import pytest
import torch

from rewardforge import RewardModel


@pytest.fixture(scope="module")
def rm(tiny_bert_dir):
    return RewardModel.from_pretrained(str(tiny_bert_dir))


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda rm: rm.rank("p", "abc"), TypeError, "list of responses"),
        (lambda rm: rm.score_batch([("p", "r")], batch_size=0), ValueError, "batch_size"),
        (lambda rm: rm.score_batch([("p", "r")], batch_size=1.5), ValueError, "batch_size"),
        (lambda rm: rm.score_batch([("p", "r")], batch_size=True), ValueError, "batch_size"),
        (lambda rm: rm.score_batch("ab"), TypeError, "list of items"),
        (lambda rm: rm.score_batch([None]), TypeError, "(prompt, response) pair"),
        (lambda rm: rm.score("Hi", 5), TypeError, "a response is a string or a list of messages"),
        (lambda rm: rm.score("Hi", b"bytes"), TypeError, "got bytes"),
        (lambda rm: rm.score("Hi", "bad \ud800 text"), ValueError, "lone surrogate"),
        # helper round 60: which item, which field; keys the API does not read; None; strings
        (lambda rm: rm.score_batch([("p", "r")] * 3 + [("p", 5)]), TypeError, "item 3: a response is"),
        (
            lambda rm: rm.score_batch([("p", [{"role": "bot", "content": "x"}])]),
            ValueError,
            "item 0: field 'response[0].role': unknown chat role",
        ),
        (
            lambda rm: rm.score_batch([{"Prompt": "p", "response": "r"}]),
            ValueError,
            "unknown key(s) 'Prompt'",
        ),
        (
            lambda rm: rm.score_batch([{"prompt": "p", "response": "r", "system": "S"}]),
            ValueError,
            "'system'",
        ),
        (
            lambda rm: rm.score("Hi", None),
            TypeError,
            "a response is a string or a list of messages, got None",
        ),
        (lambda rm: rm.rank("p", ["a", None]), TypeError, "response 1: a response is"),
        (lambda rm: rm.score_texts("abc"), TypeError, "list of texts"),
        (lambda rm: rm.score_token_ids([[5], []]), ValueError, "sequence 1 has no tokens"),
        # helper 76: torch's IndexError, a shape error in the embeddings, the tokenizer's own error
        (
            lambda rm: rm.score_token_ids([[5, 10**6]]),
            ValueError,
            "sequence 0 holds token id 1000000, outside",
        ),
        (lambda rm: rm.score_token_ids([[5], [-1]]), ValueError, "sequence 1 holds token id -1"),
        (lambda rm: rm.score_token_ids([[5, 1.5]]), TypeError, "sequence 0 holds 1.5, not a token id"),
        (lambda rm: rm.score_token_ids([[5] * 5000]), ValueError, "sequence 0 has 5000 tokens, more than"),
        (lambda rm: rm.score_token_ids(["abc"]), TypeError, "sequence 0 is str"),
        (lambda rm: rm.score_texts(["ok", 5]), TypeError, "text 1 is int, not a string"),
        (lambda rm: RewardModel.ensemble("rm"), TypeError, "list of models"),
        (lambda rm: RewardModel.from_pretrained(5), TypeError, "got int"),
        (
            lambda rm: RewardModel.from_pretrained("rm", dtype="auto"),
            ValueError,
            "dtype must be 'fp32' or 'bf16'",
        ),
    ],
)
def test_wrong_arguments_are_clear_errors(rm, call, error, words):
    with pytest.raises(error, match=re.escape(words)):
        call(rm)


@pytest.mark.parametrize("max_length", [0, 2.5, -1])
def test_a_bad_max_length_is_refused_not_replaced(tiny_bert_dir, max_length):
    with pytest.raises(ValueError, match="max_length"):
        RewardModel.from_pretrained(str(tiny_bert_dir), max_length=max_length)


def test_good_calls_still_work(rm):
    assert len(rm.rank("p", ["a", "b", "c"])) == 3
    assert rm.score_batch((("p", "r") for _ in range(2)), batch_size=1)[0] == rm.score("p", "r")


def test_a_model_trained_elsewhere_says_which_format_it_is_scored_in(tiny_bert_dir, tmp_path, capsys):
    """A TRL-trained encoder was scored in our plain format without a word (helper round 37)."""
    RewardModel.from_pretrained(str(tiny_bert_dir))
    assert "has no rewardforge.json, so it is scored in rewardforge's plain format" in capsys.readouterr().err
    (tmp_path / "rewardforge.json").write_text('{"format": {"kind": "plain"}, "max_length": 64}')
    import shutil

    shutil.copytree(tiny_bert_dir, tmp_path / "ours")
    shutil.copy(tmp_path / "rewardforge.json", tmp_path / "ours" / "rewardforge.json")
    RewardModel.from_pretrained(str(tmp_path / "ours"))
    assert "note:" not in capsys.readouterr().err


def test_a_path_object_and_a_torch_dtype_are_taken(tiny_bert_dir):
    import torch

    rm = RewardModel.from_pretrained(tiny_bert_dir, dtype=torch.float32)
    assert rm.score("p", "r") == RewardModel.from_pretrained(str(tiny_bert_dir)).score("p", "r")
    assert RewardModel.ensemble([tiny_bert_dir]).score("p", "r")[1] == 0.0


def test_a_length_beyond_the_positions_is_capped_with_a_warning(tiny_bert_dir):
    with pytest.warns(UserWarning, match="reads at most 512 tokens, not 5000"):
        rm = RewardModel.from_pretrained(tiny_bert_dir, max_length=5000)
    assert rm.max_length == 512


LONG_PROMPT = [
    {"role": "user", "content": "first question " * 6},
    {"role": "assistant", "content": "first answer " * 6},
    {"role": "user", "content": "second question " * 6},
    {"role": "assistant", "content": "second answer " * 6},
    {"role": "user", "content": "the question now"},
]
SHORT, LONG = "yes.", "a much longer reply that goes on and on about many things " * 2


@pytest.mark.parametrize("model", ["tiny_bert_dir", "tiny_llama_dir"])
def test_compare_and_rank_cut_the_prompt_once_as_training_and_eval_do(model, request):
    """compare/rank scored each response with its own prompt cut (helper round 60): a short reply
    kept more history than a long one, so P(a > b) was not the one eval's scores give."""
    from rewardforge.data.types import PreferencePair
    from rewardforge.evaluation.metrics import preference_probability
    from rewardforge.tokenization import tokenize_pair

    rm = RewardModel.from_pretrained(request.getfixturevalue(model), max_length=64)
    pair = PreferencePair(
        LONG_PROMPT, [{"role": "assistant", "content": SHORT}], [{"role": "assistant", "content": LONG}]
    )
    tokens = tokenize_pair(rm.tokenizer, rm.text_format, pair, rm.max_length)
    assert tokens.prompt_truncated
    chosen, rejected = rm.score_token_ids([tokens.chosen_ids, tokens.rejected_ids])
    alone = rm.score_batch([(LONG_PROMPT, SHORT), (LONG_PROMPT, LONG)])
    assert alone[0] != pytest.approx(chosen, abs=1e-6)  # on its own the short reply keeps more prompt
    assert rm.compare(LONG_PROMPT, SHORT, LONG) == pytest.approx(
        preference_probability(chosen - rejected, rm.beta), abs=1e-6
    )
    ranked = dict(rm.rank(LONG_PROMPT, [SHORT, LONG]))
    assert ranked[0] == pytest.approx(chosen, abs=1e-5) and ranked[1] == pytest.approx(rejected, abs=1e-5)


def test_equal_items_score_exactly_alike(tiny_llama_dir):
    """Shared-prefix rows gave one text three scores 1e-8 apart, so rank put a later copy first
    and compare(p, x, x) was 0.4999999958 (helper round 60)."""
    rm = RewardModel.from_pretrained(tiny_llama_dir)
    assert rm.compare("hi", "x", "x") == 0.5
    scores = rm.score_batch([("hi", "x"), ("hi", "y"), ("hi", "x"), ("hi", "x")])
    assert scores[0] == scores[2] == scores[3]
    assert [i for i, _ in rm.rank("hi", ["x", "y", "x"]) if i != 1] == [0, 2]


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("missing_folder/", "no such model folder or file"),  # was "Repo id must use alphanumeric chars"
        ("{model}/config.json", "is a file, not a model folder"),
    ],
)
def test_a_path_that_is_no_model_folder_says_what_it_is(tiny_bert_dir, path, words):
    from rewardforge.modeling import ModelLoadError

    with pytest.raises(ModelLoadError, match=words):
        RewardModel.from_pretrained(path.format(model=tiny_bert_dir))


def test_an_adapter_whose_base_model_is_gone_says_it_is_an_adapter(tmp_path):
    from rewardforge.modeling import ModelLoadError

    (tmp_path / "adapter_config.json").write_text('{"base_model_name_or_path": "/gone/base"}')
    with pytest.raises(ModelLoadError, match=r"is a LoRA adapter, and its base model '/gone/base'"):
        RewardModel.from_pretrained(tmp_path)


def test_the_package_names_what_it_exports():
    import rewardforge
    from rewardforge import ModelLoadError, RewardEnsemble  # the error from_pretrained raises
    from rewardforge.modeling import ModelLoadError as raised

    assert ModelLoadError is raised and RewardEnsemble.__name__ == "RewardEnsemble"
    assert {"RewardModel", "ModelLoadError"} <= set(dir(rewardforge))
    with pytest.raises(AttributeError, match="has no attribute 'Foo'"):
        rewardforge.Foo  # noqa: B018


def test_a_long_whole_conversation_keeps_its_reply(tiny_bert_dir):
    """A response holding its whole conversation, past max_length, was cut at its end: the
    reply was lost and two different replies scored alike (helper round 64). Its earlier turns
    are the prompt, cut first, as when the prompt is given apart."""
    rm = RewardModel.from_pretrained(tiny_bert_dir, max_length=64)
    a, b = ([*LONG_PROMPT, {"role": "assistant", "content": reply}] for reply in (SHORT, "No."))
    whole = dict(rm.rank(None, [a, b]))
    apart = dict(rm.rank(LONG_PROMPT, [SHORT, "No."]))
    assert whole[0] != whole[1]
    assert whole == pytest.approx(apart, abs=1e-6)
    assert rm.score_batch([{"response": a}])[0] == pytest.approx(rm.score(LONG_PROMPT, SHORT), abs=1e-6)


def test_an_agents_tool_calls_are_cut_before_its_reply(tiny_llama_dir):
    """A response [tool call, tool result, reply] past max_length was cut at its end: the reply
    was lost and every reply scored alike (helper round 65)."""
    rm = RewardModel.from_pretrained(tiny_llama_dir, max_length=96)
    prompt = [{"role": "user", "content": "Search for soil pH and tell me."}]
    call = {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "search", "arguments": {"q": "pH"}}}]}  # fmt: skip
    result = {
        "role": "tool",
        "name": "search",
        "content": " ".join(f"result{i} about soil" for i in range(40)),
    }
    replies = ["Soil pH is best around 6.5.", "I refuse to help."]
    whole = [rm.score(prompt, [call, result, {"role": "assistant", "content": r}]) for r in replies]
    assert whole[0] != whole[1]
    assert whole == pytest.approx([rm.score([*prompt, call, result], r) for r in replies], abs=1e-6)


def test_a_whole_hh_transcript_as_the_response_is_read_as_its_turns(tiny_llama_dir):
    """`{"response": "\\n\\nHuman: ...\\n\\nAssistant: ..."}` was one literal reply, while `score`'s
    `text` field and training read the same transcript as turns (helper round 65)."""
    rm = RewardModel.from_pretrained(tiny_llama_dir)
    hh = "\n\nHuman: Hi\n\nAssistant: Hello! How can I help?\n\nHuman: Tell me a joke.\n\nAssistant: Why not?"
    turns = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
    ]
    assert rm.score(None, hh) == pytest.approx(rm.score(turns, "Why not?"), abs=1e-6)
    assert rm.score_batch([{"response": hh}])[0] == pytest.approx(rm.score(turns, "Why not?"), abs=1e-6)


def test_a_group_is_read_and_cut_as_eval_reads_and_cuts_a_pair(tiny_llama_dir, tmp_path):
    """score_group moved each response's own tool turns into the prompt, so a cut pair kept
    other context than eval's (which moves only the turns both share), and one response with
    turns of its own made every response of the group be cut alone (helper round 66)."""
    import json

    from rewardforge.data import load_pairs
    from rewardforge.tokenization import tokenize_pair

    rm = RewardModel.from_pretrained(tiny_llama_dir, max_length=64)
    prompt = "Please look this up carefully for me. " * 6 + "What is the weather?"

    def trajectory(city, weather, reply):
        call = {"type": "function", "function": {"name": "weather", "arguments": {"city": city}}}
        return [
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "name": "weather", "content": f"{weather} in {city} today " * 2},
            {"role": "assistant", "content": reply},
        ]

    rows = [
        {"prompt": prompt, "chosen": trajectory("Paris", "Sunny", "It is sunny."),
         "rejected": trajectory("Rome", "Rainy", "It rains.")},
        {"prompt": prompt, "chosen": [{"role": "assistant", "content": "Part one " * 8}, {"role": "assistant", "content": "Yes."}],
         "rejected": [{"role": "assistant", "content": "Part one " * 8}, {"role": "assistant", "content": "No."}]},
    ]  # fmt: skip
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for pair, row in zip(load_pairs(str(tmp_path / "p.jsonl")).pairs, rows):
        tokens = tokenize_pair(rm.tokenizer, rm.text_format, pair, rm.max_length)
        assert tokens.prompt_truncated
        want = rm.score_token_ids([tokens.chosen_ids, tokens.rejected_ids])
        assert rm.score_group(prompt, [row["chosen"], row["rejected"]]) == pytest.approx(want, abs=1e-5)
    plain = ["ok", "a much longer answer that goes on and on about the weather and more"]
    ids = rm.encode_group(prompt, [rows[0]["chosen"], *plain])
    assert ids[0][:20] == ids[1][:20] == ids[2][:20]  # one cut for all three


def test_groups_are_checked_and_scored_apart(tiny_bert_dir):
    from rewardforge.rlhf.rewards import score_groups_with

    rm = RewardModel.from_pretrained(tiny_bert_dir, max_length=48)
    long = "Tell me a long story about dragons and knights. " * 4
    groups = [(long, ["ok", "a longer answer about dragons"]), (long, ["a reply " * 8, "no"])]
    flat = score_groups_with(rm, groups)
    apart = [s for p, rs in groups for s in rm.score_group(p, rs)]  # bon: one group per record
    assert flat == pytest.approx(apart, abs=1e-6)
    with pytest.raises(TypeError, match="group 0: a group is a"):
        rm.score_groups([("p",)])
    with pytest.raises(TypeError, match="responses are a list, got str"):
        rm.score_groups([("p", "abc")])


def test_conversations_with_other_histories_keep_their_replies_in_a_group(tiny_llama_dir, tmp_path):
    """Whole conversations with different histories, grouped, were cut at their ends (their
    replies lost), and an HH transcript beside its own prompt was one raw reply while eval reads
    it as turns (helper round 67)."""
    import json

    from rewardforge.data import load_pairs
    from rewardforge.tokenization import tokenize_pair

    rm = RewardModel.from_pretrained(tiny_llama_dir, max_length=64)
    history = "I have been thinking about travelling around Europe next summer with my family. " * 2

    def conversation(first, reply):
        return [{"role": "user", "content": history + first}, {"role": "assistant", "content": "Sure."},
                {"role": "user", "content": "What is the capital of France?"}, {"role": "assistant", "content": reply}]  # fmt: skip

    good, bad = conversation("First question.", "Paris."), conversation("Second one!", "Lyon, I think.")
    alone = [rm.score(None, good), rm.score(None, bad)]
    assert rm.score_group(None, [good, bad]) == pytest.approx(alone, abs=1e-5)
    assert rm.score_group(None, [good, "Paris."])[0] == pytest.approx(alone[0], abs=1e-5)
    hh = "\n\nHuman: What is the capital of France?\n\nAssistant:"
    row = {"prompt": hh, "chosen": hh + " Paris.", "rejected": hh + " Lyon."}
    (tmp_path / "hh.jsonl").write_text(json.dumps(row) + "\n")
    (pair,) = load_pairs(str(tmp_path / "hh.jsonl")).pairs
    tokens = tokenize_pair(rm.tokenizer, rm.text_format, pair, rm.max_length)
    want = rm.score_token_ids([tokens.chosen_ids, tokens.rejected_ids])
    assert rm.score_group(hh, [row["chosen"], row["rejected"]]) == pytest.approx(want, abs=1e-5)


def test_loading_leaves_the_callers_random_state_alone(tiny_bert_dir):
    """helper 76: from_pretrained seeded torch, numpy and random with 0, so a notebook's own
    seed set before loading was lost (two seeds gave the same best-of-n candidates)."""
    import random

    import numpy as np
    import torch

    def draws() -> tuple[float, float, float]:
        return torch.rand(1).item(), float(np.random.rand()), random.random()

    def seeded(seed: int) -> None:
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)

    seeded(123)
    expected = draws()
    seeded(123)
    RewardModel.from_pretrained(str(tiny_bert_dir))
    assert draws() == expected


def test_token_ids_as_tensors_and_arrays_score_as_lists(rm):
    import numpy as np
    import torch

    ids = rm.encode("Hi", "Hello!")
    want = rm.score_token_ids([ids])
    assert rm.score_token_ids([torch.tensor(ids)]) == want
    assert rm.score_token_ids([np.array(ids)]) == want
    assert rm.score_token_ids([[np.int64(t) for t in ids]]) == want
    assert rm.score_token_ids([list(torch.tensor(ids))]) == want  # helper 79: 0-d tensors


def test_a_numpy_batch_size_and_a_path_source_are_taken(rm, tmp_path):
    """helper 76: np.int64(4) was "batch_size must be a whole number"; iter_records(Path) an
    AttributeError, where load_pairs takes a Path."""
    import json

    import numpy as np

    from rewardforge.data import iter_records

    assert rm.score_batch([("p", "r")], batch_size=np.int64(4)) == rm.score_batch([("p", "r")])
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
    assert [r for _, r in iter_records(path)] == [{"prompt": "p", "chosen": "a", "rejected": "b"}]


@pytest.mark.parametrize("model_fixture", ["tiny_bert_dir", "tiny_llama_dir"])
def test_bf16_weights_score_with_the_head_in_fp32(model_fixture, request):
    """Helper 89: with bf16 weights the head's bf16 output held about three significant digits, so
    close rewards of different responses came out equal (eval counted them as ties). Scoring runs
    the head in fp32 on the bf16 body's features: scores are not rounded to bf16 values, and they
    stay within bf16's error of the fp32 model's."""
    folder = str(request.getfixturevalue(model_fixture))
    items = [("Which answer is best?", f"answer number {i}, with some words") for i in range(16)]
    bf16 = RewardModel.from_pretrained(folder, dtype="bf16").score_batch(items)
    fp32 = RewardModel.from_pretrained(folder).score_batch(items)
    rounded = [torch.tensor(s).bfloat16().float().item() for s in bf16]
    assert sum(r != s for r, s in zip(rounded, bf16)) >= len(items) // 2
    assert max(abs(a - b) for a, b in zip(bf16, fp32)) < 0.05 * max(abs(s) for s in fp32) + 1e-3


def test_a_policys_decoded_output_with_padding_scores_as_the_formatted_text(tiny_llama_dir, tiny_bert_dir):
    """Helper 92: OpenRLHF decodes rollouts with skip_special_tokens=False and sends them to
    /get_reward: left pads, the reply, its end-of-turn token and right pads. The reward was read
    at "<|im_end|>" or at a pad (+0.93 against -0.99 for the trained text); padding now goes from
    both ends and the turn ends as the format ends it."""
    rm = RewardModel.from_pretrained(str(tiny_llama_dir))
    prompt, reply = "How do I boil an egg?", "Put it in boiling water for nine minutes."
    text = rm.format_text(prompt, reply)
    pad, eos = rm.tokenizer.pad_token, rm.tokenizer.eos_token
    assert text.endswith(eos + "\n")  # ChatML: the reward is read after "<|im_end|>\n"
    generated = text.removesuffix("\n")  # where generation stops
    variants = [text, generated, generated + pad * 3, pad * 2 + text, pad * 2 + generated + eos + pad]
    assert rm.score_texts(variants) == pytest.approx([rm.score(prompt, reply)] * len(variants), abs=1e-5)
    assert rm.score_texts([text + "x"]) != pytest.approx(
        rm.score_texts([text]), abs=1e-5
    )  # other text: as is

    bert = RewardModel.from_pretrained(str(tiny_bert_dir))
    plain = bert.format_text(prompt, reply)
    padded = bert.tokenizer.pad_token * 2 + plain + bert.tokenizer.pad_token * 4
    assert bert.score_texts([padded]) == pytest.approx([bert.score(prompt, reply)], abs=1e-5)


def test_an_adapter_trained_from_a_gguf_loads_after_its_converted_copy_is_gone(
    tiny_llama_dir, tmp_path, monkeypatch
):
    """Helper 92: a `--save-adapter` run from a GGUF names the GGUF's converted copy in the cache
    as its base; with the cache cleared (or the run on another machine) it no longer loaded,
    though rewardforge.json records the GGUF it can be converted from again."""
    import json
    import shutil

    from rewardforge import modeling
    from rewardforge.cli import main

    base = tmp_path / "cache" / "converted"
    shutil.copytree(tiny_llama_dir, base)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"}) + "\n"
                            for i in range(8)))  # fmt: skip
    run = tmp_path / "run"
    assert main(["train", "--model", str(base), "--data", str(data), "--output", str(run), "--max-steps", "1",
                 "--lora", "--save-adapter", "--save_strategy", "no", "--disable_tqdm", "true"]) == 0  # fmt: skip
    items = [("q1", "good 1"), ("q2", "bad 2")]
    before = RewardModel.from_pretrained(str(run)).score_batch(items)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    meta = json.loads((run / "rewardforge.json").read_text())
    (run / "rewardforge.json").write_text(json.dumps({**meta, "base_model": str(gguf)}))
    shutil.rmtree(tmp_path / "cache")
    converted = []
    monkeypatch.setattr(modeling, "convert_gguf", lambda p: converted.append(p) or tiny_llama_dir)
    assert RewardModel.from_pretrained(str(run)).score_batch(items) == pytest.approx(before, abs=1e-6)
    assert converted == [str(gguf)]


@pytest.mark.parametrize(
    ("tail", "markers", "formatted", "decoded"),
    [
        # ChatML (SmolLM2, Qwen): pad = eos = <|im_end|>, the turn ends "<|im_end|>\n"
        ("<|im_end|>\n", ("<|im_end|>",), "<|im_start|>assistant\nA<|im_end|>\n",
         ["<|im_start|>assistant\nA<|im_end|>", "<|im_end|><|im_start|>assistant\nA<|im_end|><|im_end|>",
          "<|im_start|>assistant\nA<|im_end|>\n<|im_end|>"]),
        # Llama 2: the turn ends " </s>" (a space before it), pad <unk>
        (" </s>", ("</s>", "<unk>"), "<s>[INST] q [/INST] A </s>",
         ["<s>[INST] q [/INST] A</s>", "<s>[INST] q [/INST] A </s><unk><unk>", "<s>[INST] q [/INST] A </s></s>"]),
        # Llama 3: the turn ends "<|eot_id|>", its own pad token
        ("<|eot_id|>", ("<|finetune_right_pad_id|>", "<|eot_id|>"), "<|begin_of_text|>A<|eot_id|>",
         ["<|begin_of_text|>A<|eot_id|><|finetune_right_pad_id|>", "<|finetune_right_pad_id|><|begin_of_text|>A<|eot_id|>"]),
        # a plain format (BERT): nothing after the reply, [PAD] around it
        ("", ("[PAD]",), "User: q\n\nAssistant: A", ["[PAD][PAD]User: q\n\nAssistant: A[PAD]"]),
    ],
)  # fmt: skip
def test_padding_comes_off_raw_texts_in_each_templates_way(tail, markers, formatted, decoded):
    """The rule behind the test above, on the turn ends of other templates: each decoded form
    becomes the formatted text, which itself is left as it is."""
    from types import SimpleNamespace

    rm = object.__new__(RewardModel)  # only the format's tail and the tokenizer's markers matter
    rm.__dict__.update(_padding=(tail, markers, False), text_format=SimpleNamespace(strip_bos=None))
    assert rm._without_padding(formatted) == formatted
    assert [rm._without_padding(t) for t in decoded] == [formatted] * len(decoded)
    with pytest.raises(ValueError, match="only padding"):
        rm._without_padding(markers[0] * 3)


def test_a_bos_is_never_padding_and_spaces_between_pads_go_too():
    """Helper 94: with no unk token rewardforge's pad can be the BOS, which a Llama-3-style
    template opens with; as a "pad" it turned left stripping off, and rollouts kept their left
    padding. BERT decodes pads with spaces between them ("[PAD] [PAD]")."""
    from types import SimpleNamespace

    def render(tokenizer, messages):
        return "<B>" + "".join(f"<h>{m['role']}\n{m['content']}<e>" for m in messages)

    rm = object.__new__(RewardModel)
    rm.__dict__.update(
        text_format=SimpleNamespace(strip_bos=None, render=render),
        tokenizer=SimpleNamespace(pad_token="<B>", eos_token="<e>", bos_token="<B>"),
    )
    formatted = render(None, [{"role": "user", "content": "q"}, {"role": "assistant", "content": "A"}])
    assert rm._padding == ("<e>", ("<e>",), False)
    assert rm._without_padding("<e><e>" + formatted + "<e><e>") == formatted
    plain = object.__new__(RewardModel)
    plain.__dict__.update(_padding=("", ("[PAD]",), False), text_format=SimpleNamespace(strip_bos=None))
    assert plain._without_padding("[PAD] [PAD] User: q\n\nAssistant: A [PAD] [PAD]").strip() == (
        "User: q\n\nAssistant: A"
    )


def test_the_fp32_copy_of_a_bf16_head_follows_its_weights(tiny_bert_dir):
    """The fp32 copy of a half-precision head is kept between calls; weights changed in place
    (an optimizer step between evaluations) are copied again."""
    from rewardforge.rewards import find_head

    rm = RewardModel.from_pretrained(str(tiny_bert_dir), dtype="bf16")
    items = [("Which answer is best?", f"answer number {i}") for i in range(4)]
    before = rm.score_batch(items)
    assert rm.score_batch(items) == before
    with torch.no_grad():
        find_head(rm.model).bias.add_(1.0)
    after = rm.score_batch(items)
    assert after == pytest.approx([s + 1.0 for s in before], abs=1e-2)
