"""The reward model as a policy-optimisation reward: in process (`RewardModel`) or remote (the
rewardforge server), behind one `score_batch(items, batch_size)` signature.

`RemoteRewardModel` speaks to `rewardforge serve` (POST /v1/score with {"items": [...]}, answer
{"model": ..., "scores": [...]}); the server formats each conversation with the RM's own text
format, exactly as `RewardModel.score_batch` does in process, so both give the same rewards up
to float rounding (the server batches the same token sequences differently; measured difference
3e-8 on a tiny Llama RM, tests/test_rlhf_remote.py checks 1e-5).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from rewardforge.inference import as_messages, checked_groups

API_KEY_ENV = "REWARDFORGE_API_KEY"


class RemoteRMError(RuntimeError):
    """The reward server refused or failed a request (the message says which and why)."""


def _plain_item(item: Any) -> dict[str, Any]:
    """A JSON body item the server accepts: role/content messages only (it forbids extra keys)."""
    if isinstance(item, dict):
        prompt, response = item.get("prompt"), item["response"]
    else:
        prompt, response = item
    body: dict[str, Any] = {"response": as_messages(response, "assistant")}
    messages = as_messages(prompt, "user")
    if messages:
        body["prompt"] = messages
    return body


def _group_chunks(items: list[dict[str, Any]], limit: int) -> list[list[int]]:
    """Index chunks of at most `limit` items; consecutive items with the same prompt stay together
    when the group fits (the server batches them in one request)."""
    chunks: list[list[int]] = []
    current: list[int] = []
    i = 0
    while i < len(items):
        j = i + 1
        while j < len(items) and items[j].get("prompt") == items[i].get("prompt"):
            j += 1
        group = list(range(i, j))
        while group:
            if len(current) + len(group) > limit and current:
                chunks.append(current)
                current = []
            take = group[: limit - len(current)]
            current += take
            group = group[len(take) :]
        i = j
    if current:
        chunks.append(current)
    return chunks


class RemoteRewardModel:
    """A reward model behind `rewardforge serve`. `score_batch` has `RewardModel`'s signature.

    `url` is the server's base URL (http://host:port) or its /v1/score URL. The API key is
    sent as `Authorization: Bearer KEY`; it defaults to $REWARDFORGE_API_KEY. A busy server
    (503) is retried after its Retry-After delay, up to `retries` times."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float = 120.0,
        max_items_per_request: int = 256,
        retries: int = 5,
        client: Any = None,
    ):
        import httpx

        base = url.rstrip("/")
        for suffix in ("/v1/score", "/v1"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        self.url = base
        self.api_key = api_key if api_key is not None else (os.environ.get(API_KEY_ENV) or None)
        self.max_items_per_request = int(max_items_per_request)
        self.retries = int(retries)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._client = client or httpx.Client(timeout=timeout, headers=headers)
        if client is not None and self.api_key:
            self._client.headers.update(headers)

    def __repr__(self) -> str:
        return f"RemoteRewardModel({self.url!r}, api_key={'***' if self.api_key else None})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RemoteRewardModel:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- server info ----------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """GET /health (open even when a key is required): model name, limits. Lowers
        `max_items_per_request` to the server's `max_items`."""
        data = self._request("GET", "/health")
        limit = data.get("max_items")
        if isinstance(limit, int) and limit > 0:
            self.max_items_per_request = min(self.max_items_per_request, limit)
        return data

    # ---- scoring ---------------------------------------------------------------------------
    def score(self, prompt: Any, response: Any) -> float:
        return self.score_batch([(prompt, response)])[0]

    def score_batch(self, items: Sequence[Any], batch_size: int = 16) -> list[float]:
        """Scores of (prompt, response) pairs or {"prompt", "response"} dicts, in input order.

        `batch_size` is accepted for signature compatibility; the server chooses its own
        micro-batches. Items are sent in requests of at most `max_items_per_request`, keeping
        each prompt's group in one request."""
        body_items = [_plain_item(it) for it in items]
        scores: list[float] = [0.0] * len(body_items)
        for chunk in _group_chunks(body_items, max(1, self.max_items_per_request)):
            data = self._request("POST", "/v1/score", json={"items": [body_items[i] for i in chunk]})
            got = data.get("scores")
            if not isinstance(got, list) or len(got) != len(chunk):
                raise RemoteRMError(
                    f"{self.url}/v1/score answered {len(got) if isinstance(got, list) else 'no'} scores "
                    f"for {len(chunk)} items"
                )
            for i, s in zip(chunk, got, strict=True):
                scores[i] = float(s)
        return scores

    def score_groups(
        self, groups: Sequence[tuple[Any, Sequence[Any]]], batch_size: int = 16
    ) -> list[list[float]]:
        """`RewardModel.score_groups` through the server: each group of two or more responses goes
        to `/v1/compare`, which cuts a long prompt once for all of them, as in process (a group
        larger than the server's `max_items` is scored item by item, in requests it takes)."""
        out: list[list[float]] = []
        groups = checked_groups(groups)
        for g, (prompt, responses) in enumerate(groups):
            if not 2 <= len(responses) <= self.max_items_per_request:  # more: the server would refuse
                out.append(self.score_batch([(prompt, r) for r in responses]))
                continue
            bodies = [_plain_item((prompt, r)) for r in responses]
            body: dict[str, Any] = {"responses": [b["response"] for b in bodies]}
            if "prompt" in bodies[0]:
                body["prompt"] = bodies[0]["prompt"]
            try:
                got = self._request("POST", "/v1/compare", json=body).get("scores")
            except RemoteRMError as exc:
                if "HTTP 413" in str(exc):  # more than the server's max_items (health() not asked)
                    self.health()  # learns the limit, which score_batch's requests keep to
                    out.append(self.score_batch([(prompt, r) for r in responses]))
                    continue
                if len(groups) == 1:
                    raise
                raise RemoteRMError(f"group {g}: {exc}") from None
            if not isinstance(got, list) or len(got) != len(responses):
                raise RemoteRMError(
                    f"{self.url}/v1/compare answered no scores for {len(responses)} responses"
                )
            out.append([float(s) for s in got])
        return out

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        import httpx

        url = self.url + path
        for attempt in range(self.retries + 1):
            try:
                resp = self._client.request(method, url, **kwargs)
            except httpx.TransportError as e:
                if attempt < self.retries:
                    time.sleep(min(2.0**attempt, 10.0))
                    continue
                raise RemoteRMError(f"cannot reach the reward server at {url}: {e}") from None
            if resp.status_code == 503 and attempt < self.retries:
                try:
                    delay = float(resp.headers.get("Retry-After", "1"))
                except ValueError:
                    delay = 1.0
                time.sleep(min(max(delay, 0.1), 30.0))
                continue
            if resp.status_code == 401:
                raise RemoteRMError(
                    f"{url}: 401, the server wants an API key: pass --api-key (api_key= in Python) or set ${API_KEY_ENV}"
                    if not self.api_key
                    else f"{url}: 401, the server refused the API key"
                )
            if resp.status_code >= 400:
                try:
                    body = resp.json()
                    message = body.get("error", resp.text) if isinstance(body, dict) else resp.text
                except ValueError:
                    message = resp.text
                raise RemoteRMError(f"{url}: HTTP {resp.status_code}: {str(message)[:500]}")
            try:
                data = resp.json()
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise RemoteRMError(
                    f"{url}: the answer is not a JSON object ({resp.text[:80]!r}): is this `rewardforge serve`?"
                )
            return data
        raise RemoteRMError(f"{url}: the server stayed busy (503) after {self.retries} retries")


def is_url(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def load_rm(
    spec: Any,
    *,
    api_key: str | None = None,
    device: str | None = None,
    dtype: str = "fp32",
    max_length: int | None = None,
) -> Any:
    """A reward model from a folder path (`RewardModel`), an http(s) URL (`RemoteRewardModel`,
    asked for its limits at once: a server that is down or refuses big requests is found before
    any generation), or an object that already has `score_batch` (returned as is)."""
    if hasattr(spec, "score_batch"):
        return spec
    spec = os.fspath(spec)
    if is_url(spec):
        remote = RemoteRewardModel(spec, api_key=api_key)
        remote.health()
        return remote
    from rewardforge.inference import loaded_quietly

    return loaded_quietly(spec, device=device, dtype=dtype, max_length=max_length)
