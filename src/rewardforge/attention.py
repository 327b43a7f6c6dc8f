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
# Spans with more query x key scores than this use SDPA (bounded memory) instead of plain matmuls.
MATH_MAX_SCORES = 512 * 512
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


def _lower_right_causal(n_queries: int, n_keys: int, device: torch.device) -> torch.Tensor:
    """Queries are the last `n_queries` of `n_keys` positions: query i sees keys <= its own."""
    return torch.ones(n_queries, n_keys, dtype=torch.bool, device=device).tril(n_keys - n_queries)


@dataclass(frozen=True)
class SpanPlan:
    """What every layer needs to know about a packed row's spans, worked out once per forward
    (not once per layer): span lengths, the span whose first tokens are each span's prompt (or
    -1) with the prompt's length, and each span's causal mask."""

    lengths: list[int]
    prompts: list[tuple[int, int]]
    masks: list[torch.Tensor]


def span_plan(spans: torch.Tensor, device: torch.device) -> SpanPlan:
    """Plan for `spans` (rows of start, length, prefix_start, prefix_length; see
    rewardforge.packing.collate_packed), with masks on `device`."""
    bounds = spans.tolist()
    by_start = {start: j for j, (start, *_) in enumerate(bounds)}
    return SpanPlan(
        lengths=[length for _, length, _, _ in bounds],
        prompts=[(by_start[ps], pl) if pl else (-1, 0) for _, _, ps, pl in bounds],
        masks=[_lower_right_causal(length, pl + length, device) for _, length, _, pl in bounds],
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
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = _expand_kv(key, groups), _expand_kv(value, groups)
    # split, not slice: its backward is one cat, not a zero-filled copy of the row per span
    parts = [t.split(plan.lengths, dim=2) for t in (query, key, value)]
    use_matmul = query.device.type == "cpu" and _compute_dtype(query) in MATMUL_DTYPES
    outputs = []
    for j, ((owner, prefix_len), mask) in enumerate(zip(plan.prompts, plan.masks)):
        q, k, v = (part[j] for part in parts)
        if prefix_len:  # a later completion: its prompt's keys first
            k = torch.cat([parts[1][owner][:, :, :prefix_len], k], dim=2)
            v = torch.cat([parts[2][owner][:, :, :prefix_len], v], dim=2)
        outputs.append(_span_attention(q, k, v, mask, dropout, scaling, use_matmul))
    out = torch.cat(outputs, dim=2)
    if out.shape[2] != query.shape[2]:
        raise ValueError(f"packed spans cover {out.shape[2]} positions of a {query.shape[2]}-token row")
    return out.transpose(1, 2).contiguous(), None


def _span_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor,
    dropout: float,
    scaling: float | None,
    use_matmul: bool,
):
    """Causal attention (`mask`) of the last q.shape[2] of k.shape[2] positions.

    `use_matmul` (CPU, bf16/fp16 products; decided once per layer): small spans go through two plain matrix products and a softmax, because the
    fused kernel's backward is 3-4x slower (a SmolLM2 bf16 step: 9.1 s -> 7.0 s on one thread).
    In fp32, and on GPUs, the fused kernel is the faster one (fp32 step: 18.4 s vs 25.9 s). The
    matmul path's memory grows with the square of the span, so long spans use SDPA too."""
    n_q, n_k = q.shape[2], k.shape[2]
    if not use_matmul or n_q * n_k > MATH_MAX_SCORES or (dropout and q.requires_grad):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, scale=scaling)
    scale = scaling if scaling is not None else q.shape[-1] ** -0.5
    scores = torch.matmul(q, k.transpose(-1, -2)).mul_(scale).masked_fill_(~mask, float("-inf"))
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
