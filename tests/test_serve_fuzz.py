"""Fuzz the API from its own OpenAPI spec: schema-shaped bodies (hypothesis-jsonschema) and
arbitrary JSON, against the real tiny model. No body may get a 5xx answer."""

from __future__ import annotations

import json
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")
hjs = pytest.importorskip("hypothesis_jsonschema")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ALLOWED = {200, 413, 422}
EXAMPLES = 60  # per endpoint and kind of body; keeps the run to seconds on 2 cores

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
# objects that use the API's field names, so the fuzzer gets past "unknown field" quickly
near_valid = st.dictionaries(
    st.sampled_from(
        ["prompt", "response", "items", "responses", "query", "prompts", "labels", "role", "content"]
    ),
    json_values,
    max_size=4,
)


@pytest.fixture(scope="module")
def one_torch_thread():
    """A tiny model runs fastest on one thread, and a busy 2-core box makes 2 threads spin."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def client(tiny_bert_dir, one_torch_thread):
    from fastapi.testclient import TestClient

    from rewardforge.inference import RewardModel
    from rewardforge.serving import ServeSettings, create_app

    model = RewardModel.from_pretrained(str(tiny_bert_dir), max_length=64)
    limits = ServeSettings(
        max_items=4, max_text_chars=300, max_messages=4, max_body_bytes=20_000, max_wait_ms=1
    )
    with TestClient(create_app(model, limits), raise_server_exceptions=False) as c:
        yield c


def _inline(node: Any, components: dict[str, Any]) -> Any:
    """Replace every "$ref": "#/components/schemas/X" by the schema itself (ours are not recursive)."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(components[node["$ref"].rsplit("/", 1)[-1]], components)
        return {k: _inline(v, components) for k, v in node.items() if k not in ("examples", "title")}
    if isinstance(node, list):
        return [_inline(v, components) for v in node]
    return node


@pytest.fixture(scope="module")
def body_schemas(client) -> dict[str, dict]:
    spec = client.get("/openapi.json").json()
    components = spec["components"]["schemas"]
    out = {}
    for path, ops in spec["paths"].items():
        post = ops.get("post")
        if post and "requestBody" in post:
            schema = post["requestBody"]["content"]["application/json"]["schema"]
            out[path] = _inline(schema, components)
    assert set(out) == {"/v1/score", "/v1/compare", "/get_reward"}
    return out


def _check(client, path: str, body: Any) -> None:
    r = client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code < 500, (path, body, r.status_code, r.text)
    assert r.status_code in ALLOWED, (path, body, r.status_code, r.text)
    payload = r.json()
    if r.status_code != 200:
        assert isinstance(payload.get("error"), str) and payload["error"]


@pytest.mark.parametrize("path", ["/v1/score", "/v1/compare", "/get_reward"])
def test_schema_shaped_bodies_never_5xx(client, body_schemas, path):
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(body=hjs.from_schema(body_schemas[path]))
    def run(body):
        _check(client, path, body)

    run()


@pytest.mark.parametrize("path", ["/v1/score", "/v1/compare", "/get_reward"])
def test_arbitrary_json_never_5xx(client, path):
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(body=json_values | near_valid)
    def run(body):
        _check(client, path, body)

    run()


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"null",
        b"[" * 5000 + b"]" * 5000,  # deep nesting
        b'{"response": "\\ud800 lone surrogate"}',
        b'{"prompt": "\\udfff", "response": "x"}',
        b'{"query": ["\\ud83d"]}',
        b'{"response": "' + b"\xff\xfe" + b'"}',  # invalid UTF-8
        b'{"response": 1e999}',
        json.dumps({"responses": ["a"] * 5}).encode(),
        json.dumps({"items": [{"response": "x" * 250}] * 200}).encode(),  # over the body limit
    ],
)
def test_hostile_bodies_never_5xx(client, raw):
    for path in ("/v1/score", "/v1/compare", "/get_reward"):
        r = client.post(path, content=raw, headers={"content-type": "application/json"})
        assert r.status_code in ALLOWED | {400}, (path, raw[:80], r.status_code, r.text)
