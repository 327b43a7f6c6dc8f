"""Architectures besides BERT and Llama: train, save, and score the same through our scorer and a
plain `transformers.pipeline`.

Each model is built from a tiny config (random weights) with a real tokenizer: MiniLM's
WordPiece for the encoders, SmolLM2's BPE and chat template for the decoders. RoBERTa-style
encoders number positions from the pad id and OPT offsets them, and ALiBi decoders (Falcon,
BLOOM; their configs say *ForCausalLM like any decoder's) ignore the positions we pass, so a
scorer that read their rewards our way would disagree with the pipeline here.
"""

from __future__ import annotations

import json

import pytest

SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
DECODER = {**SMALL, "num_key_value_heads": 1, "max_position_embeddings": 256}
ARCHITECTURES = {
    "roberta": ("RobertaConfig", "encoder", {**SMALL, "max_position_embeddings": 130}),
    "distilbert": (
        "DistilBertConfig",
        "encoder",
        {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64, "max_position_embeddings": 128},
    ),
    "deberta-v2": ("DebertaV2Config", "encoder", {**SMALL, "max_position_embeddings": 128}),
    "gpt2": ("GPT2Config", "decoder", {"n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 256}),
    "qwen2": ("Qwen2Config", "decoder", DECODER),
    "gemma": ("GemmaConfig", "decoder", {**DECODER, "head_dim": 16}),
    # a window shorter than the texts, and Gemma 2's logit softcapping: packed spans computed full
    # attention without them (helper 68), so these run the model's own attention
    "mistral-window": ("MistralConfig", "decoder", {**DECODER, "sliding_window": 8}),
    "gemma2": ("Gemma2Config", "decoder", {**DECODER, "head_dim": 16, "sliding_window": 8}),
    "gemma3": ("Gemma3TextConfig", "decoder", {**DECODER, "head_dim": 16, "sliding_window": 8}),
    # ALiBi decoders: their own forward and pooling (our last-token reading is wrong for them)
    "falcon": (
        "FalconConfig",
        "own pooling",
        {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2},
    ),
    "bloom": ("BloomConfig", "own pooling", {"hidden_size": 32, "n_layer": 2, "n_head": 2}),
    "opt": (
        "OPTConfig",
        "decoder",
        {
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "ffn_dim": 64,
            "word_embed_proj_dim": 32,
            "max_position_embeddings": 256,
        },
    ),
}
ITEMS = [
    ("What is 3 plus 3?", "It is 6."),
    ("What is 3 plus 3?", "No idea at all, maybe it is 3, or 33, or something else entirely."),
]


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    rows = [
        {"prompt": f"What is {i} plus {i}?", "chosen": f"It is {2 * i}.", "rejected": f"No idea, maybe {i}."}
        for i in range(16)
    ]
    path = tmp_path_factory.mktemp("arch_data") / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def build_base(name: str, folder, minilm_dir, smollm2_dir) -> str:
    """A tiny random model of this architecture, saved as its Hub checkpoints are: encoders as
    classifiers, decoders as *ForCausalLM (training gives them a fresh score head)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    config_name, kind, sizes = ARCHITECTURES[name]
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir if kind == "encoder" else smollm2_dir)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    config = getattr(transformers, config_name)(
        vocab_size=len(tokenizer), num_labels=1, pad_token_id=pad, **sizes
    )
    torch.manual_seed(0)
    auto = AutoModelForSequenceClassification if kind == "encoder" else AutoModelForCausalLM
    auto.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def train_briefly(base: str, data, out, *extra: str) -> int:
    from rewardforge import cli

    argv = ["train", "--model", base, "--data", str(data), "--max-steps", "2", "--batch-size", "4"]
    return cli.main([*argv, "--max-length", "64", "--output", str(out), "--disable_tqdm", "true", *extra])


def assert_scores_like_pipeline(out) -> None:
    from transformers import pipeline

    from rewardforge import RewardModel

    rm = RewardModel.from_pretrained(str(out))
    single = [rm.score(p, r) for p, r in ITEMS]
    batch = rm.score_batch([{"prompt": p, "response": r} for p, r in ITEMS])
    pipe = pipeline("text-classification", model=str(out), function_to_apply="none", device="cpu")
    plain = [pipe(rm.format_text(p, r))[0]["score"] for p, r in ITEMS]
    assert batch == pytest.approx(single, abs=1e-5)
    assert plain == pytest.approx(single, abs=1e-5)
    assert single[0] != pytest.approx(single[1], abs=1e-7)  # the two replies are told apart


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_train_save_and_score_like_pipeline(name, pairs_file, minilm_dir, smollm2_dir, tmp_path):
    from rewardforge import RewardModel

    base = build_base(name, tmp_path / "base", minilm_dir, smollm2_dir)
    out = tmp_path / "run"
    assert train_briefly(base, pairs_file, out) == 0
    rm = RewardModel.from_pretrained(str(out))
    trained_as = json.loads((out / "rewardforge.json").read_text())["is_decoder"]
    kind = ARCHITECTURES[name][1]
    assert rm.loaded.is_decoder == trained_as == (kind == "decoder")  # one reading, train and score
    assert_scores_like_pipeline(out)


def test_lora_finds_gpt2_conv1d_layers(pairs_file, minilm_dir, smollm2_dir, tmp_path, capsys):
    """GPT-2 writes its linear layers as transformers' Conv1D: LoRA found none and PEFT raised."""
    base = build_base("gpt2", tmp_path / "base", minilm_dir, smollm2_dir)
    assert train_briefly(base, pairs_file, tmp_path / "lora", "--lora") == 0
    assert_scores_like_pipeline(tmp_path / "lora")
    assert train_briefly(base, pairs_file, tmp_path / "bad", "--lora", "--lora-target-modules", "q_proj") == 2
    err = capsys.readouterr().err
    assert "its linear layers: c_attn, c_fc, c_proj" in err and "Traceback" not in err


@pytest.mark.parametrize("name", ["distilbert", "deberta-v2"])
def test_lora_keeps_multi_part_heads_whole(name, pairs_file, minilm_dir, smollm2_dir, tmp_path):
    """DistilBERT's pre_classifier was both a LoRA target and (by PEFT's suffix match of
    'classifier') a saved module: a TypeError traceback."""
    base = build_base(name, tmp_path / "base", minilm_dir, smollm2_dir)
    assert train_briefly(base, pairs_file, tmp_path / "lora", "--lora") == 0
    assert_scores_like_pipeline(tmp_path / "lora")


def test_head_modules_are_every_part_outside_the_backbone():
    """`base:PATH` re-initialises the head and LoRA trains it whole: BART's and T5's
    classification_head, DistilBERT's pre_classifier and DeBERTa's pooler were missed."""
    import transformers

    from rewardforge.modeling import head_module_names

    tiny = {"vocab_size": 64, "num_labels": 1}
    cases = {
        "BartForSequenceClassification": (
            transformers.BartConfig(d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                                    decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, **tiny),
            ["classification_head"],
        ),
        "T5ForSequenceClassification": (
            transformers.T5Config(d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8, **tiny),
            ["classification_head"],
        ),
        "DistilBertForSequenceClassification": (
            transformers.DistilBertConfig(dim=16, n_layers=1, n_heads=2, hidden_dim=32, **tiny),
            ["pre_classifier", "classifier"],
        ),
        "DebertaV2ForSequenceClassification": (
            transformers.DebertaV2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=32, **tiny),
            ["pooler", "classifier"],
        ),
    }  # fmt: skip
    for cls, (config, heads) in cases.items():
        assert head_module_names(getattr(transformers, cls)(config)) == heads, cls


def test_a_multimodal_configs_language_model_settings_decide_full_attention():
    """helper 74: Gemma 3 4B-27B are multimodal checkpoints whose sliding window lives in
    text_config; the top-level config has none, so they shared prefixes and ran packed spans
    (0.22 from pipeline)."""
    import transformers

    from rewardforge.attention import full_causal_attention

    text = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
            "num_key_value_heads": 1, "head_dim": 16, "sliding_window": 8}  # fmt: skip
    assert not full_causal_attention(transformers.Gemma3Config(text_config=text))
    assert not full_causal_attention(transformers.Gemma3TextConfig(**text))
    assert full_causal_attention(
        transformers.LlamaConfig(**{k: v for k, v in text.items() if k != "sliding_window"})
    )
