"""`rewardforge serve` as a real process on a loopback port, spoken to over HTTP with httpx."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rewardforge.serving.testing import free_port

API_KEY = "test-key-123"
PAIRS = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is the capital of France?", "I think it might be Lyon, but I am not sure."),
    (
        "Write a haiku about rain.",
        "Soft rain on the roof / the garden drinks in silence / puddles hold the sky",
    ),
    (None, "A response with no prompt at all."),
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "Hello!"),
]


def serve_command(*args: str) -> list[str]:
    """`rewardforge serve ...` with this interpreter (the console script may not be on PATH)."""
    return [sys.executable, "-m", "rewardforge.cli", "serve", *args]


class ServerProcess:
    def __init__(self, model_dir: Path, log_path: Path, *args: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = {k: v for k, v in os.environ.items() if k != "REWARDFORGE_API_KEY"}
        full_env.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})})
        cmd = serve_command("--model", str(model_dir), "--port", str(self.port), "--threads", "1", *args)
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=full_env)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.proc.kill()
        raise AssertionError(f"server not ready in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def reward_model(tiny_bert_dir):
    from rewardforge.inference import RewardModel

    return RewardModel.from_pretrained(str(tiny_bert_dir))


@pytest.fixture(scope="module")
def open_server(tiny_bert_dir, tmp_path_factory):
    server = ServerProcess(
        tiny_bert_dir,
        tmp_path_factory.mktemp("serve") / "open.log",
        "--max-items",
        "8",
        "--max-body-mb",
        "0.05",
        "--max-text-chars",
        "2000",
    )
    yield server
    assert server.stop() == 0, server.output()


@pytest.fixture(scope="module")
def auth_server(tiny_bert_dir, tmp_path_factory):
    server = ServerProcess(
        tiny_bert_dir, tmp_path_factory.mktemp("serve") / "auth.log", env={"REWARDFORGE_API_KEY": API_KEY}
    )
    yield server
    assert server.stop() == 0, server.output()


def _expected(rm, prompt, response) -> float:
    return rm.score(prompt, response)


def test_health_and_openapi(open_server):
    health = httpx.get(open_server.url + "/health").json()
    assert health["status"] == "ok" and health["auth_required"] is False and health["max_items"] == 8
    spec = httpx.get(open_server.url + "/openapi.json").json()
    assert {"/v1/score", "/v1/compare", "/get_reward", "/health", "/metrics"} <= set(spec["paths"])


def test_score_single_and_items_match_reward_model(open_server, reward_model):
    for prompt, response in PAIRS:
        r = httpx.post(open_server.url + "/v1/score", json={"prompt": prompt, "response": response})
        assert r.status_code == 200, r.text
        assert r.json()["score"] == pytest.approx(_expected(reward_model, prompt, response), abs=1e-5)
    items = [{"prompt": p, "response": resp} for p, resp in PAIRS]
    r = httpx.post(open_server.url + "/v1/score", json={"items": items})
    assert r.status_code == 200, r.text
    want = [_expected(reward_model, p, resp) for p, resp in PAIRS]
    assert r.json()["scores"] == pytest.approx(want, abs=1e-5)


def test_compare_probability(open_server, reward_model):
    prompt, a, b = PAIRS[0][0], PAIRS[0][1], PAIRS[1][1]
    c = "Paris."
    r = httpx.post(open_server.url + "/v1/compare", json={"prompt": prompt, "responses": [a, b, c]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scores"] == pytest.approx([_expected(reward_model, prompt, x) for x in (a, b, c)], abs=1e-5)
    assert body["probability"] == pytest.approx(reward_model.compare(prompt, a, b), abs=1e-5)
    assert body["pairwise"][1][0] == pytest.approx(1 - body["probability"], abs=1e-9)
    assert sorted(body["ranking"]) == [0, 1, 2]
    assert body["scores"][body["ranking"][0]] == max(body["scores"])


def test_get_reward_openrlhf_protocol(open_server, reward_model):
    # OpenRLHF's remote_rm_fn posts {"query", "prompts", "labels"} and reads "rewards"
    queries = [reward_model.format_text(p, r) for p, r in PAIRS[:3]]
    body = {"query": queries, "prompts": [p for p, _ in PAIRS[:3]], "labels": ["x", "y", "z"]}
    r = httpx.post(open_server.url + "/get_reward", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    want = [_expected(reward_model, p, resp) for p, resp in PAIRS[:3]]
    assert out["rewards"] == pytest.approx(want, abs=1e-5)
    assert out["scores"] == out["rewards"]
    assert all(len(v) == len(queries) for v in out["extra_logs"].values())
    # helper 92/94: rollouts decoded with special tokens (padding around them) score the same;
    # padding alone is refused
    pad = reward_model.tokenizer.pad_token
    padded = [pad * 2 + q + pad * 3 for q in queries]
    r = httpx.post(open_server.url + "/get_reward", json={"query": padded})
    assert r.status_code == 200 and r.json()["rewards"] == pytest.approx(want, abs=1e-5)
    r = httpx.post(open_server.url + "/get_reward", json={"query": [pad * 3]})
    assert r.status_code == 422 and "only padding" in r.text


def test_metrics_are_prometheus_text(open_server):
    httpx.post(open_server.url + "/v1/score", json={"response": "warm"})
    r = httpx.get(open_server.url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'rewardforge_requests_total{path="/v1/score",method="POST",status="200"}' in text
    assert "rewardforge_batch_size_bucket" in text and "rewardforge_request_duration_seconds_count" in text


def test_page_is_served(open_server):
    r = httpx.get(open_server.url + "/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "/v1/compare" in r.text and "<script>" in r.text
    assert 'src="http' not in r.text and 'href="http' not in r.text and "<link" not in r.text  # no CDN


def test_422_schema_errors_are_clear(open_server):
    cases = [
        ({"prompt": "hi"}, "response"),
        ({"response": 5}, "response"),
        ({"prompt": "hi", "respnse": "typo"}, "respnse"),
        ({"response": [{"role": "wizard", "content": "x"}]}, "role"),
        ({"response": "x" * 2001}, "2000"),
        ({"items": [{"prompt": "a", "response": "b"}], "response": "c"}, "not both"),
    ]
    for body, hint in cases:
        r = httpx.post(open_server.url + "/v1/score", json=body)
        assert r.status_code == 422, (body, r.text)
        assert hint in r.json()["error"], (hint, r.json())
    r = httpx.post(open_server.url + "/v1/compare", json={"prompt": "p", "responses": ["only one"]})
    assert r.status_code == 422 and "responses" in r.json()["error"]
    r = httpx.post(
        open_server.url + "/v1/score", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    r = httpx.post(open_server.url + "/get_reward", json={"query": [1, 2]})
    assert r.status_code == 422


def test_413_body_and_item_limits(open_server):
    r = httpx.post(open_server.url + "/v1/score", json={"items": [{"response": "x"}] * 9})
    assert r.status_code == 413 and "limit is 8" in r.json()["error"]
    r = httpx.post(open_server.url + "/v1/compare", json={"responses": ["a"] * 9})
    assert r.status_code == 413
    r = httpx.post(open_server.url + "/get_reward", json={"query": ["q"] * 9})
    assert r.status_code == 413
    big = {"items": [{"response": "y" * 1900}] * 30}  # ~57 KB > 0.05 MiB
    r = httpx.post(open_server.url + "/v1/score", json=big)
    assert r.status_code == 413 and "body" in r.json()["error"]


def test_413_chunked_body_without_length(open_server):
    def chunks():
        for _ in range(60):
            yield b" " * 1024

    r = httpx.post(
        open_server.url + "/v1/score", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


def test_auth_off_needs_no_key(open_server):
    r = httpx.post(
        open_server.url + "/v1/score", json={"response": "x"}, headers={"Authorization": "Bearer nope"}
    )
    assert r.status_code == 200


def test_auth_on(auth_server, reward_model):
    url = auth_server.url
    assert httpx.get(url + "/health").json()["auth_required"] is True
    assert httpx.get(url + "/").status_code == 200  # the page asks for the key itself
    for path, body in [
        ("/v1/score", {"response": "x"}),
        ("/v1/compare", {"responses": ["a", "b"]}),
        ("/get_reward", {"query": ["q"]}),
    ]:
        r = httpx.post(url + path, json=body)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", r.text
        r = httpx.post(url + path, json=body, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        r = httpx.post(url + path, json=body, headers={"Authorization": f"Bearer {API_KEY}"})
        assert r.status_code == 200, r.text
    assert httpx.get(url + "/metrics").status_code == 401
    assert httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    # an unauthenticated bad body is refused as 401 before it is even read
    r = httpx.post(url + "/v1/score", content=b"{bad", headers={"content-type": "application/json"})
    assert r.status_code == 401
    r = httpx.post(
        url + "/v1/score",
        json={"prompt": "Hi", "response": "Hello"},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert r.json()["score"] == pytest.approx(reward_model.score("Hi", "Hello"), abs=1e-5)
    spec = httpx.get(url + "/openapi.json").json()
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


@pytest.mark.parametrize("graceful", [None, "0.2"])
def test_sigterm_finishes_in_flight_requests_and_exits_0(tiny_bert_dir, tmp_path, reward_model, graceful):
    # A slow request (1024 long items) keeps the model busy while 12 more arrive. They are then
    # gathered into one batch that waits (up to 4 s) for the blocker's client to come back,
    # which it never does; SIGTERM comes while all 13 are in flight. With a graceful timeout
    # shorter than that wait, the 12 are cancelled: they must get the JSON 503, not a plain 500.
    extra = ("--graceful-timeout", graceful) if graceful else ()
    server = ServerProcess(
        tiny_bert_dir,
        tmp_path / "term.log",
        *("--max-wait-ms", "4000", "--max-batch-size", "64", "--max-items", "1024", "--max-body-mb", "16"),
        *extra,
    )
    texts = [f"answer number {i}" for i in range(12)]
    long_text = " ".join(f"word{i}" for i in range(600))

    def post(text):
        return httpx.post(server.url + "/v1/score", json={"prompt": "Q?", "response": text}, timeout=60)

    def in_flight() -> int:
        return httpx.get(server.url + "/health").json()["in_flight"]

    try:
        with concurrent.futures.ThreadPoolExecutor(len(texts) + 1) as pool:
            blocker = pool.submit(
                httpx.post,
                server.url + "/v1/score",
                json={"items": [{"prompt": "Q?", "response": long_text}] * 1024},
                timeout=120,
            )
            deadline = time.monotonic() + 60
            while in_flight() < 1:
                assert time.monotonic() < deadline, "the slow request never got in flight"
                time.sleep(0.01)
            futures = [pool.submit(post, t) for t in texts]
            # On a loaded machine the blocker may finish before all 12 arrive; they then wait
            # in the batcher (--max-wait-ms 4000) all the same.
            deadline = time.monotonic() + 60
            while True:
                expected = len(texts) if blocker.done() else len(texts) + 1  # asked before the count
                if in_flight() >= expected:
                    break
                assert time.monotonic() < deadline, "the requests never got in flight"
                time.sleep(0.05)
            assert not any(f.done() for f in futures)
            server.proc.send_signal(signal.SIGTERM)
            responses = [f.result() for f in futures]
            assert blocker.result().status_code in ((200,) if graceful is None else (200, 503))
        if graceful:
            assert [r.status_code for r in responses] == [503] * len(texts)
            assert {r.json()["error"] for r in responses} == {"the server is shutting down"}
            assert server.proc.wait(60) == 0, server.output()
            return
        assert [r.status_code for r in responses] == [200] * len(texts)
        for text, r in zip(texts, responses):
            assert r.json()["score"] == pytest.approx(reward_model.score("Q?", text), abs=1e-5)
        assert server.proc.wait(60) == 0, server.output()
        assert "stopped by SIGTERM" in server.output()
    finally:
        server.stop()


def test_port_in_use_is_a_clean_error(tiny_bert_dir, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run(
            serve_command("--model", str(tiny_bert_dir), "--port", str(port)),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 2
    assert "cannot listen on 127.0.0.1" in proc.stderr and "Traceback" not in proc.stderr


def test_sigterm_while_the_model_loads_is_said_and_unwinds(tiny_bert_dir, monkeypatch, capsys):
    """helper 77: SIGTERM before the server listened killed serve without a word (Ctrl-C said
    "interrupted"); the handlers uvicorn uses were installed only after the model loaded."""
    import rewardforge.inference as inference
    from rewardforge import cli

    def load_until_terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the signal lands here, as in a long load
        raise AssertionError("SIGTERM did not stop the load")

    monkeypatch.setattr(inference, "loaded_quietly", load_until_terminated)
    before = signal.getsignal(signal.SIGTERM)
    code = cli.main(["serve", "--model", str(tiny_bert_dir), "--port", str(free_port())])
    assert code == 128 + signal.SIGTERM and "rewardforge: terminated" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == before  # put back for whatever runs next


def test_an_ipv6_host_in_brackets_is_bound():
    """helper 77: --host [::1] (as a URL writes it) was 'Name or service not known'."""
    import socket

    from rewardforge.commands.serve import bind_socket

    try:
        bind_socket("::1", 0).close()
    except Exception as e:  # noqa: BLE001 - a machine without IPv6 loopback
        pytest.skip(f"no IPv6 loopback here: {e}")
    with bind_socket("[::1]", 0) as sock:
        assert sock.family == socket.AF_INET6 and sock.getsockname()[0] == "::1"
