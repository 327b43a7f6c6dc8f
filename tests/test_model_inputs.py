"""Model folders that are not quite what they should be (helper round 63): each is refused with
one line naming what is wrong, or read as it means, never scored as garbage."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest
from _rows import jsonl

from rewardforge import ModelLoadError, RewardModel
from rewardforge.cli import main
from rewardforge.modeling import load_reward_model, position_limit

ROWS = [
    {"prompt": f"Question {i}?", "chosen": f"A helpful answer {i}.", "rejected": "Go away."} for i in range(8)
]


def copy_of(folder, tmp_path, name="copy", skip=()):
    out = tmp_path / name
    shutil.copytree(folder, out, ignore=shutil.ignore_patterns(*skip))
    return out


def test_a_folder_without_tokenizer_files_is_refused(tiny_bert_dir, tmp_path):
    """BERT's tokenizer class built a five-token vocabulary: every word [UNK], one score for all."""
    bare = copy_of(tiny_bert_dir, tmp_path, skip=("tokenizer*", "vocab.txt", "special_tokens_map.json"))
    with pytest.raises(ModelLoadError, match="tokenizer files .* missing"):
        RewardModel.from_pretrained(bare)


def test_training_goes_on_from_a_saved_adapter(tiny_bert_dir, tmp_path, capsys):
    """`train --model ADAPTER` failed with "element 0 of tensors does not require grad": the
    merged model kept PEFT's frozen weights."""
    data = jsonl(tmp_path, ROWS)
    common = ["--data", data, "--max-steps", "1", "--batch-size", "2", "--save_strategy", "no"]
    adapter = tmp_path / "adapter"
    assert (
        main(
            [
                "train",
                "--model",
                str(tiny_bert_dir),
                "--output",
                str(adapter),
                "--lora",
                "--save-adapter",
                *common,
            ]
        )
        == 0
    )
    assert (adapter / "adapter_config.json").is_file()
    assert main(["train", "--model", str(adapter), "--output", str(tmp_path / "more"), *common]) == 0
    assert isinstance(RewardModel.from_pretrained(tmp_path / "more").score("q", "a"), float)
    loaded = load_reward_model(str(adapter))
    assert all(p.requires_grad for p in loaded.model.parameters())


@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory, minilm_dir):
    import torch
    from transformers import AutoTokenizer, RobertaConfig, RobertaForSequenceClassification

    out = tmp_path_factory.mktemp("tiny_roberta")
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=34,  # as roberta-base's 514: 2 numbers before the first position
        pad_token_id=1,
        num_labels=1,
    )
    RobertaForSequenceClassification(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(minilm_dir).save_pretrained(out)
    return out


def test_roberta_style_positions_leave_out_the_padding_offset(tiny_roberta):
    """RoBERTa numbers positions from pad + 1, so of its 34 positions 32 are usable; a text
    of 34 tokens failed with "index 34 is out of bounds" inside the embeddings."""
    rm = RewardModel.from_pretrained(tiny_roberta)
    assert position_limit(rm.model) == 32 and rm.max_length == 32
    assert isinstance(rm.score("q " * 30, "a long reply " * 20), float)


def test_bf16_chunks_never_pad_past_the_positions(tmp_path, minilm_dir):
    """Chunks were rounded up to 32 tokens in bf16, past a 16-position model."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from rewardforge.packing import pad_multiple

    assert pad_multiple(True, 16) == 16 and pad_multiple(True, 512) == 32 and pad_multiple(False, 16) == 1
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    config.max_position_embeddings, config.num_labels = 16, 1
    BertForSequenceClassification(config).save_pretrained(tmp_path / "short")
    AutoTokenizer.from_pretrained(minilm_dir).save_pretrained(tmp_path / "short")
    rm = RewardModel.from_pretrained(tmp_path / "short", dtype="bf16")
    assert len(rm.score_batch([("q", "a"), ("q", "a longer reply")])) == 2


def test_metadata_without_a_format_keeps_the_tokenizers_chat_template(tiny_llama_dir, tmp_path):
    """A rewardforge.json with no "format" scored a chat model in the plain format, silently."""
    plain = RewardModel.from_pretrained(tiny_llama_dir)
    noted = copy_of(tiny_llama_dir, tmp_path)
    (noted / "rewardforge.json").write_text(json.dumps({"max_length": 256}))
    rm = RewardModel.from_pretrained(noted)
    assert rm.text_format.kind == "chat_template"
    assert rm.score("hi", "hello") == plain.score("hi", "hello")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('{"format": {"kind": "plain"', "unreadable (JSONDecodeError"),
        ("", "unreadable (JSONDecodeError"),
        ("null", "expected a JSON object, got NoneType"),
        ('"hello"', "expected a JSON object, got str"),
        ('{"format": "plain"}', "'format' must be an object"),
        ('{"format": {"kind": "fancy"}}', "'format.kind' must be one of plain, chat_template"),
        ('{"max_length": -5}', "'max_length' must be a whole number of tokens >= 1, got -5"),
        ('{"max_length": true}', "'max_length' must be a whole number"),
        ('{"max_length": "128"}', "'max_length' must be a whole number"),
        ('{"loss": "bt"}', "'loss' must be an object"),
        ('{"base_model": 5}', "'base_model' must be a text"),
    ],
)
def test_a_damaged_rewardforge_json_is_named(tiny_bert_dir, tmp_path, content, words):
    folder = copy_of(tiny_bert_dir, tmp_path)
    (folder / "rewardforge.json").write_text(content)
    with pytest.raises(ModelLoadError, match="rewardforge.json: ") as info:
        load_reward_model(str(folder))
    assert words in str(info.value)


def test_torn_weights_are_a_load_error_in_training_and_evaluation(tiny_bert_dir, tmp_path, capsys):
    folder = copy_of(tiny_bert_dir, tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="SafetensorError"):
        load_reward_model(str(folder), fresh_head_ok=True)
    data = jsonl(tmp_path, ROWS)
    assert main(["eval", "--model", str(folder), "--data", data, "--output", str(tmp_path / "ev")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_an_adapter_that_names_no_base_model_is_refused(tmp_path):
    (tmp_path / "adapter_config.json").write_text('{"base_model_name_or_path": null}')
    with pytest.raises(ModelLoadError, match="names no base model"):
        load_reward_model(str(tmp_path))


def test_a_policy_whose_tokenizer_has_no_eos_is_refused(tiny_llama_dir, tmp_path):
    from rewardforge.rlhf.policy import load_policy

    folder = copy_of(tiny_llama_dir, tmp_path)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    eos = config["eos_token"]
    config["eos_token"] = config["pad_token"] = None
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    # the model's config still names it: that end token is taken (helper round 64)
    assert load_policy(str(folder))[1].eos_token == eos
    for name in ("config.json", "generation_config.json"):
        if (folder / name).is_file():
            model_config = json.loads((folder / name).read_text())
            model_config["eos_token_id"] = None  # absent, Llama's config would default to 2
            (folder / name).write_text(json.dumps(model_config))
    with pytest.raises(ModelLoadError, match="names an end-of-sequence token"):
        load_policy(str(folder))


def test_a_reward_models_adapter_is_no_policy(tmp_path):
    from rewardforge.rlhf.policy import load_policy

    (tmp_path / "adapter_config.json").write_text('{"task_type": "SEQ_CLS", "base_model_name_or_path": "x"}')
    with pytest.raises(ModelLoadError, match="reward model's LoRA adapter"):
        load_policy(str(tmp_path))


def test_conversions_killed_long_ago_are_cleared(tmp_path, monkeypatch):
    from rewardforge import gguf

    old, young = tmp_path / ".convert-old", tmp_path / ".convert-young"
    for folder in (old, young):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"x")
    past = time.time() - gguf.STALE_STAGING_SECONDS - 60
    os.utime(old, (past, past))
    gguf._remove_stale_staging(tmp_path)
    assert not old.exists() and young.exists()


def test_an_adapter_trained_on_an_adapter_loads_as_the_model_trained(tiny_llama_dir, tmp_path):
    """`train --model ADAPTER --lora --save-adapter` saved an adapter that named the first
    adapter's base: loaded, it lacked the first adapter's weights (helper round 64). Saved
    merged and as an adapter, the same run must score alike."""
    data = jsonl(tmp_path, ROWS)
    common = ["--data", data, "--max-steps", "1", "--batch-size", "2", "--save_strategy", "no", "--lora"]
    first = tmp_path / "first"
    assert (
        main(["train", "--model", str(tiny_llama_dir), "--output", str(first), "--save-adapter", *common])
        == 0
    )
    assert main(["train", "--model", str(first), "--output", str(tmp_path / "merged"), *common]) == 0
    assert (
        main(
            ["train", "--model", str(first), "--output", str(tmp_path / "adapter"), "--save-adapter", *common]
        )
        == 0
    )
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())[
        "base_model_name_or_path"
    ] == str(first)
    items = [("Question 1?", "A helpful answer."), ("Question 2?", "Go away.")]
    merged = RewardModel.from_pretrained(tmp_path / "merged").score_batch(items)
    assert RewardModel.from_pretrained(tmp_path / "adapter").score_batch(items) == pytest.approx(
        merged, abs=1e-5
    )


def test_a_small_vocabulary_of_its_own_is_no_missing_tokenizer(tmp_path):
    """The missing-tokenizer check refused a 2000-token tokenizer of its own beside a config
    with BERT's default vocab_size (helper round 64)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + [f"w{i}" for i in range(1996)]
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]")
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, num_labels=1
    )
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    assert isinstance(RewardModel.from_pretrained(tmp_path).score("w1 w2", "w3"), float)


@pytest.mark.parametrize("keep_dropout", [False, True])
def test_dropout_a_decoder_keeps_as_a_number_is_off_unless_kept(tiny_llama_dir, tmp_path, keep_dropout):
    """Llama-like decoders read `attention_dropout` as a float in training, not through a Dropout
    layer: zeroing only layers left a pair's two rewards from differently masked networks."""
    import torch

    folder = tmp_path / "llama"
    shutil.copytree(tiny_llama_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "attention_dropout": 0.5}))
    model = load_reward_model(str(folder), seed=0, keep_dropout=keep_dropout).model
    model.train()
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12]])
    torch.manual_seed(1)
    first = model(input_ids=ids).logits
    second = model(input_ids=ids).logits
    assert torch.equal(first, second) is not keep_dropout  # kept, the masks differ
    assert model.config.attention_dropout == 0.5  # the saved config keeps the user's rate
