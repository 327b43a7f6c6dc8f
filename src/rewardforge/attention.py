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
    is empty) and `blocked`, its negation."""

    n: int
    q_len: int
    k_len: int
    allowed: torch.Tensor
    blocked: torch.Tensor


@dataclass(frozen=True)
class SpanPlan:
    """What every layer needs to know about a packed row's spans, worked out once per forward
    (not once per layer). Spans of similar shape are attended together (`batches`): a row of 16
    short requests costs a few attention calls per layer, not 16 (the per-call overhead was a
    fifth of a bf16 serving forward). `query_index` / `key_index` gather every batch's queries
    and keys from the row in one go; `inverse` puts the outputs back in row order."""

    batches: list[SpanBatch]
    query_index: torch.Tensor
    key_index: torch.Tensor
    inverse: torch.Tensor
    query_sizes: list[int]
    key_sizes: list[int]


def _batch_spans(shapes: list[tuple[int, int]]) -> list[list[int]]:
    """Group span indices (shapes: queries, keys) so that each group's padded grid stays within
    MAX_PADDING of its spans' own grids and within MATH_MAX_SCORES (a larger span goes alone)."""
    order = sorted(range(len(shapes)), key=lambda j: (shapes[j][1], shapes[j][0]))
    groups: list[list[int]] = []
    real = q_len = k_len = 0
    for j in order:
        q, k = shapes[j]
        if groups:
            nq, nk = max(q_len, q), max(k_len, k)
            padded = (len(groups[-1]) + 1) * nq * nk
            if padded <= MATH_MAX_SCORES and padded <= (1 + MAX_PADDING) * (real + q * k):
                groups[-1].append(j)
                real, q_len, k_len = real + q * k, nq, nk
                continue
        groups.append([j])
        real, q_len, k_len = q * k, q, k
    return groups


def span_plan(spans: torch.Tensor, device: torch.device) -> SpanPlan:
    """Plan for `spans` (rows of start, length, prefix_start, prefix_length; see
    rewardforge.packing.collate_packed), with index tensors and masks on `device`."""
    bounds = spans.tolist()
    total = sum(length for _, length, _, _ in bounds)
    shapes = [(length, pl + length) for _, length, _, pl in bounds]
    inverse = torch.empty(total, dtype=torch.long)
    queries, keys, batches = [], [], []
    out_offset = 0
    for members in _batch_spans(shapes):
        q_len = max(shapes[j][0] for j in members)
        k_len = max(shapes[j][1] for j in members)
        q_idx = torch.zeros(len(members), q_len, dtype=torch.long)
        k_idx = torch.zeros(len(members), k_len, dtype=torch.long)
        for slot, j in enumerate(members):
            start, length, prefix_start, prefix_len = bounds[j]
            own = torch.arange(start, start + length)
            q_idx[slot, :length] = own
            k_idx[slot, :prefix_len] = torch.arange(prefix_start, prefix_start + prefix_len)
            k_idx[slot, prefix_len : prefix_len + length] = own
            inverse[start : start + length] = out_offset + slot * q_len + torch.arange(length)
        n_q = torch.tensor([shapes[j][0] for j in members]).view(-1, 1, 1)
        prefix = torch.tensor([bounds[j][3] for j in members]).view(-1, 1, 1)
        i = torch.arange(q_len).view(1, -1, 1)
        m = torch.arange(k_len).view(1, 1, -1)
        real_row = i < n_q
        allowed = ((m <= prefix + i) & real_row) | (~real_row & (m == 0))
        allowed = allowed.to(device)
        batches.append(SpanBatch(len(members), q_len, k_len, allowed, ~allowed))
        queries.append(q_idx.flatten())
        keys.append(k_idx.flatten())
        out_offset += len(members) * q_len
    return SpanPlan(
        batches=batches,
        query_index=torch.cat(queries).to(device),
        key_index=torch.cat(keys).to(device),
        inverse=inverse.to(device),
        query_sizes=[b.n * b.q_len for b in batches],
        key_sizes=[b.n * b.k_len for b in batches],
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
    if plan.inverse.numel() != query.shape[2]:
        raise ValueError(
            f"packed spans cover {plan.inverse.numel()} positions of a {query.shape[2]}-token row"
        )
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = _expand_kv(key, groups), _expand_kv(value, groups)
    heads, dim = query.shape[1], query.shape[3]
    # one gather each for all batches (one index_add each in backward), then views per batch
    q_all = query[0].index_select(1, plan.query_index).split(plan.query_sizes, dim=1)
    k_all = key[0].index_select(1, plan.key_index).split(plan.key_sizes, dim=1)
    v_all = value[0].index_select(1, plan.key_index).split(plan.key_sizes, dim=1)
    use_matmul = query.device.type == "cpu" and _compute_dtype(query) in MATMUL_DTYPES
    outputs = []
    for b, q, k, v in zip(plan.batches, q_all, k_all, v_all):
        q = q.view(heads, b.n, b.q_len, dim)
        k = k.view(heads, b.n, b.k_len, dim)
        v = v.view(heads, b.n, b.k_len, dim)
        out = _span_attention(q, k, v, b, dropout, scaling, use_matmul)
        outputs.append(out.reshape(heads, b.n * b.q_len, dim))
    out = torch.cat(outputs, dim=1).index_select(1, plan.inverse)
    return out.unsqueeze(0).transpose(1, 2).contiguous(), None


def _span_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    batch: SpanBatch,
    dropout: float,
    scaling: float | None,
    use_matmul: bool,
):
    """Attention of one SpanBatch: q [heads, n, q_len, dim], k/v [heads, n, k_len, dim].

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


def enable_packed_attention(model: torch.nn.Module) -> bool:
    """Switch a decoder's attention to `packed_attention` if it runs SDPA or eager attention
    through transformers' AttentionInterface. Returns whether packed rows may now be used."""
    base = getattr(model, "get_base_model", lambda: model)()
    config = getattr(base, "config", None)
    current = getattr(config, "_attn_implementation", None)
    if current == PACKED_ATTENTION:
        return True
    if current not in _SUPPORTED_BASES or not getattr(base, "_supports_attention_backend", False):
        return False
    register_packed_attention()
    config._attn_implementation = PACKED_ATTENTION
    return True
