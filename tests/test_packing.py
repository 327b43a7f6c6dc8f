"""Shared-prefix rows give the same rewards and gradients as separate sequences."""

import pytest
import torch

from rewardforge.packing import block_mask, group_rows, plain_row, shared_prefix_row
from rewardforge.rewards import gather_rewards
from rewardforge.training.collator import PairCollator


def test_block_mask_layout():
    row = shared_prefix_row(2, [[1, 2, 3, 4], [1, 2, 5]], [(0, 0), (0, 1)])
    assert row.ids == [1, 2, 3, 4, 5] and row.positions == [0, 1, 2, 3, 2] and row.segments == [0, 0, 1, 1, 2]
    assert [r[2] for r in row.reads] == [3, 4]
    m = block_mask([row], 6)[0, 0].int().tolist()
    assert m == [
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 0, 0, 1, 0],  # the rejected token sees the prompt and itself, not the chosen tokens
        [0, 0, 0, 0, 0, 1],  # padding sees only itself
    ]


def test_completion_that_is_a_prefix_of_the_other_keeps_a_token():
    row = shared_prefix_row(3, [[1, 2, 3], [1, 2, 3, 4]], [(0, 0), (0, 1)])
    assert row.ids == [1, 2, 3, 3, 4] and row.positions == [0, 1, 2, 2, 3]


def test_group_rows_respects_budget_and_keeps_every_row():
    rows = [plain_row(list(range(n)), i, 0) for i, n in enumerate([5, 50, 7, 48, 6, 100])]
    chunks = group_rows(rows, 100)
    assert sorted(len(r.ids) for c in chunks for r in c) == [5, 6, 7, 48, 50, 100]
    for c in chunks:
        assert len(c) == 1 or len(c) * max(len(r.ids) for r in c) <= 100


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _rewards_and_grads(model, features, share, decoder=True, packed=False, max_tokens=None, multiple=1):
    model.zero_grad()
    batch = PairCollator(
        model.config.pad_token_id,
        share_prefix=share,
        max_tokens_per_batch=max_tokens,
        packed=packed,
        pad_to_multiple_of=multiple,
    )(features)
    r = gather_rewards(model, batch["chunks"], len(features), 2, decoder=decoder)
    torch.nn.functional.logsigmoid(r[:, 0] - r[:, 1]).neg().mean().backward()
    return r.detach(), _grads(model)


def _features(tokenizer, fmt, pairs, max_length):
    from rewardforge.tokenization import tokenize_pair

    feats = []
    for i, p in enumerate(pairs):
        t = tokenize_pair(tokenizer, fmt, p, max_length)
        feats.append(
            {
                "index": i,
                "chosen_ids": t.chosen_ids,
                "rejected_ids": t.rejected_ids,
                "prefix_len": t.prefix_len,
                "margin": None,
            }
        )
    return feats


@pytest.mark.parametrize(
    "share,packed", [(True, False), (True, True), (False, True)], ids=["block-mask", "packed", "packed-plain"]
)
def test_shared_prefix_matches_two_sequences_on_real_smollm2(smollm2_dir, hh_dir, share, packed):
    """SmolLM2-135M, fp32, real HH pairs: rewards and gradients within 1e-4 of the plain forward
    (two padded sequences per pair), for shared-prefix rows under a block mask, and for packed
    rows (one padding-free row per chunk, rewardforge.attention) with and without the prefix
    shared."""
    from rewardforge.data import load_pairs
    from rewardforge.modeling import load_reward_model

    loaded = load_reward_model(str(smollm2_dir), seed=0)
    assert loaded.packed
    model = loaded.model.float()
    pairs = load_pairs(str(hh_dir / "dev.jsonl.gz"), limit=3).pairs
    feats = _features(loaded.tokenizer, loaded.text_format, pairs, 192)
    assert all(f["prefix_len"] > 20 for f in feats)
    r_plain, g_plain = _rewards_and_grads(model, feats, share=False)
    r_other, g_other = _rewards_and_grads(model, feats, share=share, packed=packed, max_tokens=400)
    assert torch.allclose(r_plain, r_other, atol=1e-4), (r_plain, r_other)
    assert g_plain.keys() == g_other.keys()
    for name, g in g_plain.items():
        scale = g.abs().max().clamp_min(1e-6)
        assert ((g - g_other[name]).abs().max() / scale).item() < 1e-4, name


@pytest.mark.parametrize("math_max_scores", [512 * 512, 0], ids=["matmul-spans", "sdpa-spans"])
def test_packed_rows_match_plain_sequences(tiny_llama_dir, monkeypatch, math_max_scores):
    """Packed chunks (several pairs in one row, end padded to a multiple) give the plain
    forward's rewards and gradients, whichever kernel computes the spans."""
    from rewardforge import attention
    from rewardforge.modeling import load_reward_model

    monkeypatch.setattr(attention, "MATH_MAX_SCORES", math_max_scores)
    monkeypatch.setattr(attention, "MATMUL_DTYPES", (torch.float32,))  # bf16's path, checked in fp32
    loaded = load_reward_model(str(tiny_llama_dir), seed=0)
    assert loaded.packed
    gen = torch.Generator().manual_seed(0)
    feats = []
    for i in range(6):
        prompt = torch.randint(
            3, 200, (int(torch.randint(1, 30, (1,), generator=gen)),), generator=gen
        ).tolist()
        a, b = (
            torch.randint(3, 200, (int(torch.randint(1, 12, (1,), generator=gen)),), generator=gen).tolist()
            for _ in "ab"
        )
        feats.append(
            {
                "index": i,
                "chosen_ids": prompt + a,
                "rejected_ids": prompt + b,
                "prefix_len": len(prompt),
                "margin": None,
            }
        )
    r_plain, g_plain = _rewards_and_grads(loaded.model, feats, share=False)
    for share in (True, False):
        r, g = _rewards_and_grads(loaded.model, feats, share=share, packed=True, max_tokens=60, multiple=8)
        assert torch.allclose(r_plain, r, atol=1e-5), (share, r_plain, r)
        for name, grad in g_plain.items():
            assert torch.allclose(grad, g[name], atol=1e-5, rtol=1e-4), (share, name)


def test_packed_chunk_layout():
    from rewardforge.packing import collate_packed

    rows = [
        shared_prefix_row(2, [[1, 2, 3, 4], [1, 2, 5], [1, 2, 6, 7]], [(0, 0), (0, 1), (0, 2)]),
        plain_row([8, 9], 1, 0),
    ]
    c = collate_packed(rows, 0, pad_to_multiple_of=4)
    assert c["input_ids"].tolist() == [[1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0, 0]]
    assert c["position_ids"].tolist() == [[0, 1, 2, 3, 2, 2, 3, 0, 1, 0, 1, 2]]
    # prompt + first completion causal; later completions see the prompt (0, 2) then themselves
    assert c["packed_spans"].tolist() == [
        [0, 4, 0, 0],
        [4, 1, 0, 2],
        [5, 2, 0, 2],
        [7, 2, 0, 0],
        [9, 3, 0, 0],
    ]
    assert c["read_pos"].tolist() == [3, 4, 6, 8] and c["real_tokens"].item() == 9


def test_plain_decoder_path_matches_hf_pooling(tiny_llama_dir):
    """Reading at the last real token == the model's own pooled logits (right padding)."""
    from rewardforge.modeling import load_reward_model

    loaded = load_reward_model(str(tiny_llama_dir), seed=0)
    feats = [
        {
            "index": 0,
            "chosen_ids": [5, 6, 7, 8, 9],
            "rejected_ids": [5, 6, 10],
            "prefix_len": 2,
            "margin": None,
        },
        {
            "index": 1,
            "chosen_ids": [11, 12],
            "rejected_ids": [11, 13, 14, 15],
            "prefix_len": 1,
            "margin": None,
        },
    ]
    batch = PairCollator(loaded.model.config.pad_token_id, share_prefix=False)(feats)
    ours = gather_rewards(loaded.model, batch["chunks"], 2, 2, decoder=True)
    with torch.no_grad():
        hf = [
            loaded.model(input_ids=torch.tensor([s])).logits[0, 0].item()
            for f in feats
            for s in (f["chosen_ids"], f["rejected_ids"])
        ]
    assert ours.flatten().tolist() == pytest.approx(hf, abs=1e-5)


def test_score_batch_shares_prompt_and_matches_single_scores(tiny_llama_dir):
    from rewardforge import RewardModel

    rm = RewardModel.from_pretrained(str(tiny_llama_dir))
    prompt = [{"role": "user", "content": "Tell me something about the sea " * 4}]
    responses = [f"answer number {i} " * (i + 1) for i in range(8)]
    items = [(prompt, r) for r in responses] + [("another prompt", "x"), ("another prompt", "y y")]
    together = rm.score_batch(items)
    alone = [rm.score(p, r) for p, r in items]
    assert together == pytest.approx(alone, abs=1e-5)
    ranked = rm.rank(prompt, responses)
    assert sorted(i for i, _ in ranked) == list(range(8))
    assert [s for _, s in ranked] == pytest.approx(sorted(together[:8], reverse=True), abs=1e-5)
    rm.share_prefix = False
    assert rm.score_batch(items) == pytest.approx(together, abs=1e-5)


@pytest.mark.parametrize("share", [True, False])
def test_chunk_width_rounding_pads_without_changing_rewards(tiny_llama_dir, share):
    """bf16 chunks are padded to a multiple of 32 (fewer distinct shapes); the masked padding
    leaves every reward as it is with no rounding."""
    from rewardforge.modeling import load_reward_model
    from rewardforge.packing import PAD_MULTIPLE_BF16, collate_chunk, pad_multiple
    from rewardforge.rewards import chunk_rewards

    loaded = load_reward_model(str(tiny_llama_dir), seed=0)
    if share:
        rows = [shared_prefix_row(3, [[5, 6, 7, 8, 9], [5, 6, 7, 10]], [(0, 0), (0, 1)])]
    else:
        rows = [plain_row([5, 6, 7, 8, 9], 0, 0), plain_row([11, 12, 13], 1, 0)]
    pad = loaded.model.config.pad_token_id
    rounded = collate_chunk(rows, pad, four_d=share, pad_to_multiple_of=pad_multiple(bf16=True))
    exact = collate_chunk(rows, pad, four_d=share, pad_to_multiple_of=pad_multiple(bf16=False))
    assert (
        rounded["input_ids"].shape[1]
        == PAD_MULTIPLE_BF16
        > exact["input_ids"].shape[1]
        == max(len(r.ids) for r in rows)
    )
    with torch.no_grad():
        a = chunk_rewards(loaded.model, rounded, decoder=True)
        b = chunk_rewards(loaded.model, exact, decoder=True)
    assert a.tolist() == pytest.approx(b.tolist(), abs=1e-5)


def test_bf16_autocast_spans_take_the_matmul_path(tiny_llama_dir, monkeypatch):
    """Under CPU bf16 autocast the spans run as matmuls (rotary embeddings hand the attention
    fp32 queries there, so q.dtype alone would send them to the slower fused kernel); in fp32
    they use SDPA."""
    from rewardforge import attention
    from rewardforge.modeling import load_reward_model
    from rewardforge.packing import collate_packed
    from rewardforge.rewards import chunk_rewards

    calls = []
    sdpa = attention.F.scaled_dot_product_attention
    monkeypatch.setattr(
        attention.F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or sdpa(*a, **k)
    )
    loaded = load_reward_model(str(tiny_llama_dir), seed=0)
    chunk = collate_packed([shared_prefix_row(3, [[5, 6, 7, 8], [5, 6, 7, 9, 10]], [(0, 0), (0, 1)])], 0)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        chunk_rewards(loaded.model, chunk, decoder=True)
    assert calls == []
    with torch.no_grad():
        chunk_rewards(loaded.model, chunk, decoder=True)
    assert calls


@pytest.mark.parametrize("use_matmul", [True, False], ids=["matmul", "sdpa"])
def test_span_batches_attend_exactly_the_keys_of_each_span(monkeypatch, use_matmul):
    """Spans of similar shape share one attention call; every query still sees exactly its
    prefix and then itself, causally: compared, position by position, with a direct softmax."""
    from rewardforge import attention

    if use_matmul:
        monkeypatch.setattr(attention, "MATMUL_DTYPES", (torch.float32,))
    # (start, length, prefix_start, prefix_length): a prompt+completion, two later completions,
    # two plain sequences of similar length, one long sequence (attended alone), and end padding
    spans = [
        (0, 9, 0, 0),
        (9, 4, 0, 5),
        (13, 3, 0, 5),
        (16, 8, 0, 0),
        (24, 9, 0, 0),
        (33, 70, 0, 0),
        (103, 2, 0, 0),
    ]
    with torch.no_grad():  # scoring: small spans share calls (training slices them alone)
        plan = attention.span_plan(torch.tensor(spans), torch.device("cpu"))
    assert len(plan.batches) < len(spans)  # some spans share a call
    assert [b.n for b in plan.batches if b.q_len == 70] == [1]
    assert sum(b.n for b in plan.batches) == len(spans)
    heads, kv_heads, dim, total = 4, 2, 8, 105
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, heads, total, dim, generator=gen)
    k, v = (torch.randn(1, kv_heads, total, dim, generator=gen) for _ in "kv")
    module = torch.nn.Module()
    module.num_key_value_groups = heads // kv_heads
    out, _ = attention.packed_attention(module, q, k, v, None, packed_spans=plan)
    assert out.shape == (1, total, heads, dim)
    for start, length, prefix_start, prefix_len in spans:
        for i in range(length):
            keys = list(range(prefix_start, prefix_start + prefix_len)) + list(range(start, start + i + 1))
            for h in range(heads):
                kh = h // module.num_key_value_groups
                w = torch.softmax(q[0, h, start + i] @ k[0, kh, keys].T / dim**0.5, dim=-1)
                expected = w @ v[0, kh, keys]
                torch.testing.assert_close(out[0, start + i, h], expected, atol=1e-5, rtol=1e-5)


def test_rows_of_long_spans_are_attended_in_place():
    from rewardforge import attention

    plan = attention.span_plan(torch.tensor([(0, 300, 0, 0), (300, 80, 0, 250)]), torch.device("cpu"))
    assert [b.n for b in plan.batches] == [1, 1] and all(b.query_index is None for b in plan.batches)
    assert plan.prompts == [(-1, 0), (0, 250)]


def test_spans_far_apart_in_shape_are_not_padded_together():
    from rewardforge.attention import MAX_PADDING, _batch_spans

    groups = _batch_spans([(10, 10), (11, 11), (100, 100), (10, 150), (12, 12)])
    assert sorted(map(sorted, groups)) == [[0, 1, 4], [2], [3]]
    shapes = [(10, 10), (11, 11), (12, 12)]
    real = sum(q * k for q, k in shapes)
    assert 3 * 12 * 12 <= (1 + MAX_PADDING) * real


def test_small_spans_share_calls_when_scoring_and_not_when_training():
    """Training (autograd on) slices every span alone; scoring batches the small ones."""
    from rewardforge import attention

    spans = torch.tensor([(0, 10, 0, 0), (10, 9, 0, 10), (19, 11, 0, 10), (30, 12, 0, 0)])
    with torch.no_grad():
        scoring = attention.span_plan(spans, torch.device("cpu"))
    training = attention.span_plan(spans, torch.device("cpu"))
    assert len(scoring.batches) < 4 and max(b.n for b in scoring.batches) > 1
    assert [b.n for b in training.batches] == [1, 1, 1, 1]
    try:
        attention.BATCH_SPANS_WITH_GRAD = True
        assert [b.n for b in attention.span_plan(spans, torch.device("cpu")).batches] == [
            b.n for b in scoring.batches
        ]
    finally:
        attention.BATCH_SPANS_WITH_GRAD = False


def test_training_keeps_token_ids_in_4_bytes_and_batches_them_as_lists_would(minilm_dir):
    """helper 83: every token id was a Python int in a list (~41 bytes a token retained: 1.1 GB
    at 100k short pairs); they are int32 arrays now, batched exactly as the lists were."""
    import types
    from array import array

    from transformers import AutoTokenizer

    from rewardforge.data.types import PreferencePair
    from rewardforge.formatting import TextFormat
    from rewardforge.training.run import tokenize_pairs

    tok = AutoTokenizer.from_pretrained(minilm_dir)
    loaded = types.SimpleNamespace(tokenizer=tok, text_format=TextFormat.for_tokenizer(tok))
    pairs = [
        PreferencePair([{"role": "user", "content": f"question {i}"}], [{"role": "assistant", "content": "yes " * i}],
                       [{"role": "assistant", "content": "no"}], margin=0.5 if i else None)
        for i in range(1, 5)
    ]  # fmt: skip
    dataset, _ = tokenize_pairs(pairs, loaded, 64, desc="t", keep_identical=False)
    items = [dataset[i] for i in range(len(dataset))]
    assert all(isinstance(it["chosen_ids"], array) and it["chosen_ids"].itemsize == 4 for it in items)
    as_lists = [
        {**it, "chosen_ids": list(it["chosen_ids"]), "rejected_ids": list(it["rejected_ids"])} for it in items
    ]
    for share in (False, True):
        collate = PairCollator(pad_token_id=tok.pad_token_id, share_prefix=share)
        a, b = collate(items), collate(as_lists)
        assert a.keys() == b.keys() and all(
            torch.equal(a[k], b[k]) for k in a if isinstance(a[k], torch.Tensor)
        )
        for ca, cb in zip(a["chunks"], b["chunks"], strict=True):
            assert all(torch.equal(ca[k], cb[k]) for k in ca if isinstance(ca[k], torch.Tensor))
