"""Attention that computes only what a packed row needs: no padding, no masked-out blocks.

A packed row (see `rewardforge.packing.collate_packed`) holds several sequences back to back,
and a shared-prefix sequence holds  [prompt][completion 1][completion 2]...  A dense kernel with
a block mask computes every query against every key of the row, most of which the mask then
throws away (other sequences, the other completion, padding). On CPU that was 28-32% of a bf16
SmolLM2 training step for about 10% of its useful FLOPs.

Here the row comes with *spans*: (start, length, prefix_start, prefix_length). The queries of a
span attend, causally, to the span itself after the prefix keys it names (its prompt when it is
a second or later completion; nothing otherwise). Every query sees exactly the keys it would see
in its own sequence; nothing is computed for padding or for another sequence's keys.

It is registered with transformers' AttentionInterface, so the model code is untouched; without
spans (any ordinary forward: evaluation, pipeline-style scoring, generation) it is plain SDPA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

PACKED_ATTENTION = "rewardforge_packed"
SPANS_KWARG = "packed_spans"
_SUPPORTED_BASES = ("sdpa", "eager")
# Spans with more query x key scores than this use SDPA (bounded memory) instead of plain matmuls,
# and spans attended together never pad their joint grid beyond it.
MATH_MAX_SCORES = 512 * 512
# Spans attended together may pad their grids by at most this fraction of the spans' own.
MAX_PADDING = 0.25
# Only spans this small share an attention call: below it a call costs more in overhead than in
# arithmetic (SmolLM2's heads: 64 x 64 scores are about 0.2 ms of products on this CPU).
BATCH_MAX_SPAN_SCORES = 64 * 64
# Training (autograd on) slices every span alone: the gathers' backward cost more than the shared
# calls saved (bf16 SmolLM2 steps 2-4% slower batched; `bench/step_time.py --span-batching-ab`).
BATCH_SPANS_WITH_GRAD = False
# Dtypes whose CPU spans take the matmul path (see _span_attention).
MATMUL_DTYPES = (torch.bfloat16, torch.float16)


def _sdpa(*args: Any, **kwargs: Any):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(*args, **kwargs)


def _expand_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Grouped-query attention: repeat each key/value head for the query heads that share it."""
    if groups == 1:
        return x
    b, h, t, d = x.shape
    return x[:, :, None].expand(b, h, groups, t, d).reshape(b, h * groups, t, d)


@dataclass(frozen=True)
class SpanBatch:
    """Spans attended in one call: `n` spans laid out as [n, q_len] queries and [n, k_len] keys
    (each padded to the longest), with `allowed` [n, q_len, k_len] saying which key each query
    sees (its prefix, then itself causally; a padding query sees key 0 only, so no softmax row
    is empty) and `blocked`, its negation (kept: every layer needs it). A batch of several spans
    gathers its queries and keys from the row with `query_index` / `key_index`; a span alone is
    sliced in place (None)."""

    allowed: torch.Tensor
    blocked: torch.Tensor
    query_index: torch.Tensor | None = None
    key_index: torch.Tensor | None = None

    @property
    def n(self) -> int:
        return self.allowed.shape[0]

    @property
    def q_len(self) -> int:
        return self.allowed.shape[1]

    @property
    def k_len(self) -> int:
        return self.allowed.shape[2]


@dataclass(frozen=True)
class SpanPlan:
    """What every layer needs to know about a packed row's spans, worked out once per forward
    (not once per layer): span lengths; for each span, the span whose first tokens are its
    prompt and the prompt's length (or -1, 0); the batches; and, for each span in row order,
    its (batch, slot).

    Small spans of similar shape share one attention call: a row of 16 short requests costs a
    few calls per layer, not 16 (per-span calls were about a fifth of the profiled time of a
    bf16 serving forward; batched, 16-request forwards ran at 33.8 against 32.3 items/s).
    Longer spans are attended alone and sliced in place: gathering copies that only pay off for
    small spans (fp32 best-of-8 scoring, whose spans are long, was 5-8% slower through it)."""

    lengths: list[int]
    prompts: list[tuple[int, int]]
    batches: list[SpanBatch]
    slots: list[tuple[int, int]]


def _batch_spans(shapes: list[tuple[int, int]], batch_small: bool = True) -> list[list[int]]:
    """Group span indices (shapes: queries, keys). Only spans of at most BATCH_MAX_SPAN_SCORES
    scores share a group, whose padded grid stays within MAX_PADDING of its spans' own grids
    and within MATH_MAX_SCORES; every other span is alone, and so is every span when
    `batch_small` is false."""
    order = sorted(range(len(shapes)), key=lambda j: (shapes[j][1], shapes[j][0]))
    groups: list[list[int]] = []
    real = q_len = k_len = 0
    open_group = False
    for j in order:
        q, k = shapes[j]
        small = batch_small and q * k <= BATCH_MAX_SPAN_SCORES
        if open_group and small:
            nq, nk = max(q_len, q), max(k_len, k)
            padded = (len(groups[-1]) + 1) * nq * nk
            if padded <= MATH_MAX_SCORES and padded <= (1 + MAX_PADDING) * (real + q * k):
                groups[-1].append(j)
                real, q_len, k_len = real + q * k, nq, nk
                continue
        groups.append([j])
        real, q_len, k_len, open_group = q * k, q, k, small
    return groups


def _span_batch(members: list[int], bounds: list[list[int]], device: torch.device) -> SpanBatch:
    q_len = max(bounds[j][1] for j in members)
    k_len = max(bounds[j][1] + bounds[j][3] for j in members)
    n_q = torch.tensor([bounds[j][1] for j in members]).view(-1, 1, 1)
    prefix = torch.tensor([bounds[j][3] for j in members]).view(-1, 1, 1)
    i = torch.arange(q_len).view(1, -1, 1)
    m = torch.arange(k_len).view(1, 1, -1)
    real_row = i < n_q
    allowed = (((m <= prefix + i) & real_row) | (~real_row & (m == 0))).to(device)
    if len(members) == 1:
        return SpanBatch(allowed, ~allowed)
    q_idx = torch.zeros(len(members), q_len, dtype=torch.long)
    k_idx = torch.zeros(len(members), k_len, dtype=torch.long)
    for slot, j in enumerate(members):
        start, length, prefix_start, prefix_len = bounds[j]
        q_idx[slot, :length] = torch.arange(start, start + length)
        k_idx[slot, :prefix_len] = torch.arange(prefix_start, prefix_start + prefix_len)
        k_idx[slot, prefix_len : prefix_len + length] = torch.arange(start, start + length)
    return SpanBatch(allowed, ~allowed, q_idx.flatten().to(device), k_idx.flatten().to(device))


def span_plan(spans: torch.Tensor, device: torch.device) -> SpanPlan:
    """Plan for `spans` (rows of start, length, prefix_start, prefix_length; see
    rewardforge.packing.collate_packed), with index tensors and masks on `device`. Small spans
    share calls only when autograd is off (scoring), unless BATCH_SPANS_WITH_GRAD is set."""
    bounds = spans.tolist()
    by_start = {start: j for j, (start, *_) in enumerate(bounds)}
    batch_small = BATCH_SPANS_WITH_GRAD or not torch.is_grad_enabled()
    groups = _batch_spans([(length, pl + length) for _, length, _, pl in bounds], batch_small)
    slots = [(0, 0)] * len(bounds)
    for g, members in enumerate(groups):
        for slot, j in enumerate(members):
            slots[j] = (g, slot)
    return SpanPlan(
        lengths=[length for _, length, _, _ in bounds],
        prompts=[(by_start[ps], pl) if pl else (-1, 0) for _, _, ps, pl in bounds],
        batches=[_span_batch(members, bounds, device) for members in groups],
        slots=slots,
    )


def packed_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """AttentionInterface function: span-wise causal attention for packed rows, SDPA otherwise.

    query [1, heads, T, dim], key/value [1, kv_heads, T, dim]; returns [1, T, heads, dim]."""
    plan: SpanPlan | None = kwargs.pop(SPANS_KWARG, None)
    if plan is None:
        return _sdpa(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    if query.shape[0] != 1:
        raise ValueError("packed attention expects one packed row per forward pass")
    if sum(plan.lengths) != query.shape[2]:
        raise ValueError(f"packed spans cover {sum(plan.lengths)} positions of a {query.shape[2]}-token row")
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = _expand_kv(key, groups), _expand_kv(value, groups)
    heads, dim = query.shape[1], query.shape[3]
    use_matmul = query.device.type == "cpu" and _compute_dtype(query) in MATMUL_DTYPES
    # split, not slice: its backward is one cat, not a zero-filled copy of the row per span
    parts = [t.split(plan.lengths, dim=2) for t in (query, key, value)]
    batch_out: list[torch.Tensor | None] = []
    for b in plan.batches:
        if b.query_index is None:
            batch_out.append(None)  # a span alone: attended below, in row order
            continue
        q = query[0].index_select(1, b.query_index).view(heads, b.n, b.q_len, dim)
        k = key[0].index_select(1, b.key_index).view(heads, b.n, b.k_len, dim)
        v = value[0].index_select(1, b.key_index).view(heads, b.n, b.k_len, dim)
        batch_out.append(_span_attention(q, k, v, b, dropout, scaling, use_matmul))
    pieces = []
    for j, ((owner, prefix_len), (g, slot)) in enumerate(zip(plan.prompts, plan.slots)):
        done = batch_out[g]
        if done is not None:
            pieces.append(done[:, slot, : plan.lengths[j]].unsqueeze(0))
            continue
        q, k, v = (part[j] for part in parts)
        if prefix_len:  # a later completion: its prompt's keys first
            k = torch.cat([parts[1][owner][:, :, :prefix_len], k], dim=2)
            v = torch.cat([parts[2][owner][:, :, :prefix_len], v], dim=2)
        pieces.append(_span_attention(q, k, v, plan.batches[g], dropout, scaling, use_matmul))
    return torch.cat(pieces, dim=2).transpose(1, 2).contiguous(), None


def _span_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    batch: SpanBatch,
    dropout: float,
    scaling: float | None,
    use_matmul: bool,
):
    """Attention of one SpanBatch: q [heads, n, q_len, dim], k/v [heads, n, k_len, dim] (or
    [1, heads, q_len, dim] and [1, heads, k_len, dim] for a span alone).

    `use_matmul` (CPU, bf16/fp16 products; decided once per layer): two plain matrix products
    and a softmax, because the fused kernel's backward is 3-4x slower there (a SmolLM2 bf16
    step: 9.1 s -> 7.0 s on one thread). In fp32, and on GPUs, the fused kernel is the faster
    one (fp32 step: 18.4 s vs 25.9 s). The matmul path's memory grows with the grid, so a span
    over MATH_MAX_SCORES (alone in its batch, see _batch_spans) uses the fused kernel too."""
    grid = batch.n * batch.q_len * batch.k_len
    if not use_matmul or grid > MATH_MAX_SCORES or (dropout and q.requires_grad):
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=batch.allowed, dropout_p=dropout, scale=scaling
        )
    scale = scaling if scaling is not None else q.shape[-1] ** -0.5
    scores = torch.matmul(q, k.transpose(-1, -2)).mul_(scale).masked_fill_(batch.blocked, float("-inf"))
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)
    return torch.matmul(probs, v)


def _compute_dtype(q: torch.Tensor) -> torch.dtype:
    """The dtype the products run in. Under autocast that is the autocast dtype, whatever q's
    own dtype: rotary embeddings (fp32 cos/sin) promote q and k back to fp32 there."""
    if torch.is_autocast_enabled(q.device.type):
        return torch.get_autocast_dtype(q.device.type)
    return q.dtype


def register_packed_attention() -> None:
    """Make PACKED_ATTENTION a name transformers accepts (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    if PACKED_ATTENTION not in AttentionInterface._global_mapping:
        AttentionInterface.register(PACKED_ATTENTION, packed_attention)
    if PACKED_ATTENTION not in AttentionMaskInterface._global_mapping:
        # ordinary forwards (2D padding masks) get the same masks SDPA gets
        AttentionMaskInterface.register(PACKED_ATTENTION, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])


def full_causal_attention(config: Any) -> bool:
    """Whether every layer attends causally to all earlier tokens, as the span kernel computes.
    Not so with sliding-window layers (Mistral, Gemma 2/3: a token sees only the last N) or logit
    softcapping (Gemma 2): run there, it gave other scores than the model's own attention and
    `pipeline` (helper 68: 0.11 to 0.83 apart on tiny models past their window)."""
    # a multimodal checkpoint (Gemma 3 4B-27B) keeps its language model's settings apart
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None:  # per layer (Gemma 2/3, Qwen2/3 with use_sliding_window)
        sliding = any("sliding" in str(kind) for kind in layer_types)
    else:  # one window for all layers when set (Mistral, Phi-3, Starcoder2)
        sliding = getattr(config, "sliding_window", None) is not None
    return not sliding and not getattr(config, "attn_logit_softcapping", None)


def enable_packed_attention(model: torch.nn.Module) -> bool:
    """Switch a decoder's attention to `packed_attention` if it runs SDPA or eager attention
    through transformers' AttentionInterface and full causal attention. Returns whether packed
    rows may now be used; a model left as it is runs its own attention (no prefix sharing)."""
    base = getattr(model, "get_base_model", lambda: model)()
    config = getattr(base, "config", None)
    current = getattr(config, "_attn_implementation", None)
    if current == PACKED_ATTENTION:
        return True
    if current not in _SUPPORTED_BASES or not getattr(base, "_supports_attention_backend", False):
        return False
    if not full_causal_attention(config):
        return False
    register_packed_attention()
    config._attn_implementation = PACKED_ATTENTION
    return True
