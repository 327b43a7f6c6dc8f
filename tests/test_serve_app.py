"""`create_app` around stand-in scorers, served by uvicorn in a thread: micro-batching, the
bounded queue (503), exactly-once answers, failure isolation, graceful stop."""

from __future__ import annotations

import asyncio
import math
import threading
import time

import httpx
import pytest

from rewardforge.serving import MicroBatcher, QueueFullError, ServeSettings, create_app
from rewardforge.serving.testing import ServerThread


class EchoScorer:
    """Score = length of the response text + 1000 * number of prompt characters; records batches."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.batches: list[int] = []
        self.lock = threading.Lock()

    def prepare(self, prompt, response):
        if isinstance(response, str) and response == "explode-in-prepare":
            raise ValueError("this response cannot be formatted")
        p = prompt if isinstance(prompt, str) else "".join(m["content"] for m in prompt or [])
        r = response if isinstance(response, str) else "".join(m["content"] for m in response)
        return (len(p), r)

    def prepare_text(self, text):
        return (0, text)

    def run(self, prepared):
        with self.lock:
            self.batches.append(len(prepared))
        if self.delay:
            time.sleep(self.delay)
        if any(r == "explode-in-run" for _, r in prepared):
            raise RuntimeError("model failure on this input")
        return [1000.0 * p + len(r) for p, r in prepared]


class GateScorer(EchoScorer):
    """Blocks inside `run` until released: holds the model thread busy on purpose."""

    def __init__(self):
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def run(self, prepared):
        self.entered.set()
        assert self.release.wait(30)
        return super().run(prepared)


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer():
    scorer = EchoScorer(delay=0.02)
    settings = ServeSettings(max_batch_size=16, max_wait_ms=20, max_queue=500)
    with ServerThread(create_app(scorer, settings)) as server:

        async def main():
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:

                async def one(i):
                    body = {"prompt": "p" * (i % 3), "response": "r" * (i + 1)}  # never blank
                    return i, await client.post("/v1/score", json=body)

                return await asyncio.gather(*(one(i) for i in range(200)))

        results = asyncio.run(main())
        metrics = httpx.get(server.url + "/metrics").text
    for i, r in results:
        assert r.status_code == 200, r.text
        assert r.json()["score"] == 1000.0 * (i % 3) + i + 1  # its own score, not a neighbour's
    assert sum(scorer.batches) == 200  # every request scored exactly once
    assert max(scorer.batches) > 1 and max(scorer.batches) <= 16
    assert "rewardforge_items_scored_total 200" in metrics


def test_generic_score_batch_object_is_accepted():
    class Plain:
        def score_batch(self, items):
            return [float(len(it["response"])) for it in items]

    with ServerThread(create_app(Plain(), ServeSettings())) as server:
        r = httpx.post(server.url + "/v1/score", json={"items": [{"response": "ab"}, {"response": "abcd"}]})
        assert r.json()["scores"] == [2.0, 4.0]
        r = httpx.post(server.url + "/get_reward", json={"query": ["x"]})
        assert r.status_code == 422 and "raw texts" in r.json()["error"]


def test_full_queue_answers_503_and_accepted_requests_still_complete():
    scorer = GateScorer()
    settings = ServeSettings(max_batch_size=1, max_wait_ms=0, max_queue=2)
    with ServerThread(create_app(scorer, settings)) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            scorer.entered.clear()
            results: dict[int, httpx.Response] = {}

            def post(i):
                results[i] = client.post("/v1/score", json={"response": "x" * i})

            first = threading.Thread(target=post, args=(1,))
            first.start()
            assert scorer.entered.wait(10)  # request 1 holds the model thread
            waiting = [threading.Thread(target=post, args=(i,)) for i in (2, 3)]
            for t in waiting:
                t.start()
            deadline = time.monotonic() + 10
            while client.get("/health").json()["queue_depth"] < 2:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            refused = client.post("/v1/score", json={"response": "refused"})
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert "queue is full" in refused.json()["error"]
            scorer.release.set()
            for t in [first, *waiting]:
                t.join(30)
            assert {i: r.status_code for i, r in results.items()} == {1: 200, 2: 200, 3: 200}
            assert [results[i].json()["score"] for i in (1, 2, 3)] == [1.0, 2.0, 3.0]
            assert "rewardforge_queue_full_total 1" in client.get("/metrics").text


def test_a_failing_request_does_not_spoil_its_batch():
    scorer = EchoScorer(delay=0.05)
    settings = ServeSettings(max_batch_size=32, max_wait_ms=100)
    with ServerThread(create_app(scorer, settings)) as server:

        async def main():
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                bodies = [{"response": "ok" * i} for i in range(1, 6)] + [{"response": "explode-in-run"}]
                return await asyncio.gather(*(client.post("/v1/score", json=b) for b in bodies))

        responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * 5 + [500]
    assert [r.json()["score"] for r in responses[:5]] == [2.0, 4.0, 6.0, 8.0, 10.0]
    assert "scoring failed" in responses[5].json()["error"]


def test_prepare_failure_is_422_and_never_reaches_the_model():
    scorer = EchoScorer()
    with ServerThread(create_app(scorer, ServeSettings())) as server:
        r = httpx.post(
            server.url + "/v1/score",
            json={"items": [{"response": "fine"}, {"response": "explode-in-prepare"}]},
        )
        assert r.status_code == 422 and "items[1]" in r.json()["error"]
        # helper 77: no `detail`, which the docs promise for every 422
        assert r.json()["detail"] == [{"field": "items[1]", "message": "this response cannot be formatted"}]
        r = httpx.post(server.url + "/v1/score", json={"response": "explode-in-prepare"})
        # the single form said "item:", a field no request has
        assert r.json()["error"] == "invalid request: this response cannot be formatted"
        assert r.json()["detail"] == [{"field": "(body)", "message": "this response cannot be formatted"}]
        assert scorer.batches == []


def test_batcher_exactly_once_and_bounded():
    """The queue alone: cancelled jobs are skipped, a full queue refuses, all others resolve once."""
    calls: list[list[int]] = []

    def run(xs):
        calls.append(list(xs))
        time.sleep(0.01)
        return [float(x) for x in xs]

    async def main():
        b = MicroBatcher(run, max_batch_size=4, max_wait_ms=5, max_queue=10)
        await b.start()
        futures = [b.submit([i]) for i in range(10)]
        with pytest.raises(QueueFullError):
            b.submit([99])
        futures[5].cancel()  # its client went away
        done = await asyncio.gather(*futures, return_exceptions=True)
        big = await b.submit(list(range(7)))  # more than max_batch_size: runs alone
        await b.stop()
        return done, big

    done, big = asyncio.run(main())
    assert [d for i, d in enumerate(done) if i != 5] == [[float(i)] for i in range(10) if i != 5]
    assert isinstance(done[5], asyncio.CancelledError)
    flat = [x for c in calls for x in c]
    assert sorted(flat[:9]) == [i for i in range(10) if i != 5]  # 5 never scored, none twice
    assert big == [float(i) for i in range(7)] and calls[-1] == list(range(7))
    assert all(len(c) <= 4 for c in calls[:-1])


def test_batches_wait_for_more_work_only_right_after_the_model_was_busy():
    """Under load a batch waits up to max_wait (from when the model became free) for the clients
    just answered; a request that finds the model long idle runs at once."""
    calls: list[list[int]] = []

    def run(xs):
        calls.append(list(xs))
        time.sleep(0.3)
        return [float(x) for x in xs]

    async def main():
        b = MicroBatcher(run, max_batch_size=8, max_wait_ms=1000, max_queue=10)
        await b.start()
        await asyncio.sleep(1.2)  # idle for longer than max_wait
        first = b.submit([1])
        await asyncio.sleep(0.1)  # 2 arrives while 1 is already running
        second = b.submit([2])
        await first
        await asyncio.sleep(0.1)  # 3 arrives while 2's batch is still gathering after 1's
        third = b.submit([3])
        out = [await first, await second, await third]
        await b.stop()
        return out

    assert asyncio.run(main()) == [[1.0], [2.0], [3.0]]
    assert calls == [[1], [2, 3]]


def test_a_batch_waits_for_the_clients_it_answered_and_no_longer():
    """Closed-loop load: every batch holds all the clients just answered (none left behind to
    make a half batch), and once they are back the batch runs without waiting out max_wait. A
    lone client that sends one request after another never waits for company. With the 60 s
    max_wait below, any wait for it would hit the timeouts."""
    calls: list[list[int]] = []

    def run(xs):
        calls.append(list(xs))
        time.sleep(0.05)
        return [float(x) for x in xs]

    async def client(b: MicroBatcher, first: int, n: int) -> list[list[float]]:
        return [await b.submit([first + k]) for k in range(n)]

    async def main():
        b = MicroBatcher(run, max_batch_size=8, max_wait_ms=60_000, max_queue=100)
        await b.start()
        lone = await asyncio.wait_for(client(b, 100, 3), timeout=20)
        crowd = await asyncio.wait_for(asyncio.gather(*(client(b, 10 * c, 4) for c in range(6))), 20)
        await b.stop()
        return lone, crowd

    lone, crowd = asyncio.run(main())
    assert lone == [[100.0], [101.0], [102.0]]
    assert crowd == [[[float(10 * c + k)] for k in range(4)] for c in range(6)]
    assert calls[:3] == [[100], [101], [102]]
    # the six clients' requests travel together, round after round
    assert [sorted(c) for c in calls[3:]] == [[10 * c + k for c in range(6)] for k in range(4)]


def test_stop_drains_queued_work():
    async def main():
        b = MicroBatcher(lambda xs: [1.0] * len(xs), max_batch_size=2, max_wait_ms=50, max_queue=100)
        await b.start()
        futures = [b.submit([i]) for i in range(9)]
        await b.stop(drain_timeout=10)
        return [f.result() for f in futures]

    assert asyncio.run(main()) == [[1.0]] * 9


def test_settings_are_checked():
    with pytest.raises(ValueError):
        ServeSettings(max_batch_size=0)
    with pytest.raises(ValueError):
        ServeSettings(max_wait_ms=-1)
    # nan made every request fail with 500; inf made batches wait forever (SIGTERM hung)
    for wait in (float("nan"), float("inf"), 60_001):
        with pytest.raises(ValueError, match="max_wait_ms"):
            ServeSettings(max_wait_ms=wait)
    for timeout in (float("nan"), float("inf"), -1):
        with pytest.raises(ValueError, match="graceful_timeout_s"):
            ServeSettings(graceful_timeout_s=timeout)


def test_responses_ending_with_a_user_turn_are_422_and_empty_ones_are_scored():
    """Messages ending with a user turn are refused as in training. An empty reply is scored:
    a policy can generate one, and the RLHF reward through this server must not fail on it."""
    scorer = EchoScorer()
    user_last = [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]
    ends = "the response ends with a 'user' message; it must end with the assistant's reply"
    cases = [
        ("/v1/score", {"items": [{"response": "ok"}, {"response": user_last}]}, f"items[1].response: {ends}"),
        ("/v1/compare", {"prompt": "p", "responses": [user_last, "ok"]}, f"responses[0]: {ends}"),
    ]
    with ServerThread(create_app(scorer, ServeSettings())) as server:
        for path, body, message in cases:
            r = httpx.post(server.url + path, json=body)
            assert r.status_code == 422, (body, r.text)
            assert r.json()["error"] == f"invalid request: {message}", r.json()
        ok = httpx.post(
            server.url + "/v1/score", json={"response": [*user_last, {"role": "assistant", "content": "c"}]}
        )
        assert ok.status_code == 200, ok.text
        empty = httpx.post(server.url + "/v1/score", json={"items": [{"response": "ok"}, {"response": ""}]})
        assert empty.status_code == 200 and len(empty.json()["scores"]) == 2, empty.text
    assert scorer.batches == [1, 2]  # nothing refused reached the model


def test_malformed_json_and_empty_items_messages():
    with ServerThread(create_app(EchoScorer(), ServeSettings())) as server:
        r = httpx.post(
            server.url + "/v1/score",
            content=b'{"response": "x", "prompt": }',
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 422
        error = r.json()["error"]
        assert error == "invalid request: malformed JSON body (at character 28: Expecting value)", error
        r = httpx.post(server.url + "/v1/score", json={"items": []})
        assert r.status_code == 422 and r.json()["error"] == "invalid request: items must not be empty"


@pytest.mark.parametrize("model_dir", ["tiny_bert_dir", "tiny_llama_dir"])
def test_encode_text_of_formatted_text_is_encode(model_dir, request):
    """get_reward's raw-text path gives the same ids as score() for the plain format (BERT) and
    a chat template (SmolLM2's), so OpenRLHF's formatted queries get the same rewards."""
    from rewardforge.inference import RewardModel

    rm = RewardModel.from_pretrained(str(request.getfixturevalue(model_dir)))
    conversations = [
        ("Hi", "Hello!"),
        (None, "Bye."),
        ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q"}], "A"),
    ]
    for prompt, response in conversations:
        assert rm.encode_text(rm.format_text(prompt, response)) == rm.encode(prompt, response)
        assert rm.encode(prompt, response) == rm.tokenizer(rm.format_text(prompt, response))["input_ids"]


def test_score_texts_and_long_text_truncation(tiny_bert_dir):
    from rewardforge.inference import RewardModel

    rm = RewardModel.from_pretrained(str(tiny_bert_dir))
    texts = [rm.format_text("Hi", "Hello!"), rm.format_text("Q", "A")]
    assert rm.score_texts(texts) == pytest.approx([rm.score("Hi", "Hello!"), rm.score("Q", "A")], abs=1e-6)
    long = rm.format_text("word " * 2000, "the end")
    ids = rm.encode_text(long)
    assert (
        len(ids) == rm.max_length
        and ids[0] == rm.tokenizer.cls_token_id
        and ids[-1] == rm.tokenizer.sep_token_id
    )
    # helper 84: a lone surrogate reached the tokenizer, whose TypeError named no text
    with pytest.raises(ValueError, match=r"text 1: the text is not valid Unicode \(a lone surrogate at 2\)"):
        rm.score_texts(["fine", "ab\ud800"])


def test_decoder_micro_batch_shares_prefix_with_unchanged_scores(tiny_llama_dir):
    """A decoder server batch computes the shared prefix (here SmolLM2's default system prompt
    and common prompts) once; every score equals RewardModel.score of that item alone."""
    from rewardforge.inference import RewardModel

    rm = RewardModel.from_pretrained(str(tiny_llama_dir))
    items = [
        (p, f"{r} #{k}")
        for k in range(3)
        for p, r in [("Hi", "Hello!"), ("What is 2+2?", "4"), (None, "Bye.")]
    ]
    alone = [rm.score(p, r) for p, r in items]
    seqs = [rm.encode(p, r) for p, r in items]
    assert rm.score_token_ids_shared(seqs) == pytest.approx(alone, abs=1e-5)
    # GRPO-like groups (20 responses to one prompt, 5 to another), a duplicate and a sequence
    # that is a prefix of another: every way of packing them into shared rows keeps each score
    grpo = [("Tell me a joke.", f"Joke number {k}.") for k in range(20)]
    grpo += [("Why?", f"Because {k}.") for k in range(5)] + [grpo[0], ("Tell me a joke.", "Joke")]
    seqs = [rm.encode(p, r) for p, r in grpo]
    want = rm.score_token_ids(seqs)
    assert rm.score_token_ids_shared(seqs, batch_size=4) == pytest.approx(want, abs=1e-5)
    with ServerThread(create_app(rm, ServeSettings(max_batch_size=16, max_wait_ms=50))) as server:

        async def main():
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                return await asyncio.gather(
                    *(client.post("/v1/score", json={"prompt": p, "response": r}) for p, r in items)
                )

        got = [r.json()["score"] for r in asyncio.run(main())]
    assert got == pytest.approx(alone, abs=1e-5)


def test_a_request_whose_client_left_is_never_scored():
    """docs/serving.md: a request whose client went away is skipped. It was scored (and counted
    as answered 200), spending the model on nobody; a client that leaves mid-body was a 500."""
    import json
    import socket
    from urllib.parse import urlparse

    class Recording(GateScorer):
        def __init__(self):
            super().__init__()
            self.scored: list[str] = []

        def run(self, prepared):
            out = super().run(prepared)
            self.scored += [r for _, r in prepared]
            return out

    scorer = Recording()
    with ServerThread(create_app(scorer, ServeSettings(max_wait_ms=1))) as server:
        busy = threading.Thread(
            target=lambda: httpx.post(server.url + "/v1/score", json={"response": "a"}, timeout=30)
        )
        busy.start()
        assert scorer.entered.wait(10)  # the model thread is held on the first request
        address = urlparse(server.url)
        body = json.dumps({"response": "gone"}).encode()
        head = f"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        with socket.create_connection((address.hostname, address.port)) as sock:
            sock.sendall(head.encode() + body)
            time.sleep(0.5)  # read and queued behind the first
        with socket.create_connection((address.hostname, address.port)) as sock:
            sock.sendall(head.encode() + body[:5])  # leaves mid-body
        time.sleep(0.5)
        scorer.release.set()
        busy.join(30)
        assert httpx.post(server.url + "/v1/score", json={"response": "after"}).json()["score"] == 5.0
        assert scorer.scored == ["a", "after"]
        metrics = httpx.get(server.url + "/metrics").text
        assert 'status="499"' in metrics and 'status="500"' not in metrics


def test_a_request_whose_client_left_while_it_was_prepared_is_never_scored():
    """helper 77: the watcher for a gone client started only once the job was queued, and an
    idle model took it first: 11 of 20 requests whose clients had left were scored."""
    import json
    import socket
    from urllib.parse import urlparse

    class SlowPrepare(EchoScorer):
        def __init__(self):
            super().__init__()
            self.preparing = threading.Event()
            self.release = threading.Event()
            self.scored: list[str] = []

        def prepare(self, prompt, response):
            self.preparing.set()
            assert self.release.wait(30)
            return super().prepare(prompt, response)

        def run(self, prepared):
            self.scored += [r for _, r in prepared]
            return super().run(prepared)

    scorer = SlowPrepare()
    with ServerThread(create_app(scorer, ServeSettings(max_wait_ms=1))) as server:
        address = urlparse(server.url)
        body = json.dumps({"response": "gone"}).encode()
        head = f"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        with socket.create_connection((address.hostname, address.port)) as sock:
            sock.sendall(head.encode() + body)
            assert scorer.preparing.wait(10)  # held in its preparation; the model is idle
        time.sleep(0.5)  # the server sees the connection close
        scorer.release.set()
        assert httpx.post(server.url + "/v1/score", json={"response": "after"}).json()["score"] == 5.0
        assert scorer.scored == ["after"]
        assert 'status="499"' in httpx.get(server.url + "/metrics").text


@pytest.mark.parametrize(
    "content, headers, message",
    [
        (b"", {"Content-Type": "application/json"}, "empty request body"),
        (b'{"response": "hi"}', {"Content-Type": "application/x-www-form-urlencoded"}, "sent as application/x-www-form-urlencoded"),
        (b'{"response": "\xff"}', {"Content-Type": "application/json"}, "not valid UTF-8"),
        # helper 77: JSON that Python's parser cannot read was FastAPI's bare 400
        (b'{"response": "hi", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}", {"Content-Type": "application/json"}, "nested too deeply"),
        (b'{"response": "hi", "x": ' + b"7" * 5000 + b"}", {"Content-Type": "application/json"}, "too many digits"),
    ],
    ids=["empty", "form-encoded", "bad-utf8", "deep", "long-number"],
)  # fmt: skip
def test_bodies_that_are_no_json_request_are_422_saying_why(content, headers, message):
    """Before: "Field required" with no field, "Input should be a valid dictionary", and a 400."""
    with ServerThread(create_app(EchoScorer(), ServeSettings())) as server:
        r = httpx.post(server.url + "/v1/score", content=content, headers=headers)
        assert r.status_code == 422 and message in r.json()["error"]
        one = httpx.post(server.url + "/v1/score", json={"response": {"role": "assistant", "content": "hi"}})
        assert one.status_code == 200 and one.json()["score"] == 2.0  # one message object, as in training


def test_a_json_body_sent_with_no_content_type_is_read():
    """FastAPI does not parse a body with no Content-Type as JSON ("valid dictionary")."""
    with ServerThread(create_app(EchoScorer(), ServeSettings())) as server:
        r = httpx.post(server.url + "/v1/score", content=b'{"response": "hey"}', headers={"Content-Type": ""})
        assert r.status_code == 200 and r.json()["score"] == 3.0


@pytest.mark.parametrize("media", ["text/json", "application/jsonl", "Application/JSON; charset=utf-8"])
def test_a_json_body_under_another_json_type_is_read(media):
    """text/json passed our check, then FastAPI did not parse it: "valid dictionary"."""
    with ServerThread(create_app(EchoScorer(), ServeSettings())) as server:
        r = httpx.post(
            server.url + "/v1/score", content=b'{"response": "hey"}', headers={"Content-Type": media}
        )
        assert r.status_code == 200 and r.json()["score"] == 3.0


@pytest.mark.parametrize(
    "body, where",
    [
        ({"response": [{"role": "assistant", "content": [{"type": "text", "text": "r" * 301}]}]}, "content[0].text"),
        ({"response": [{"role": "assistant", "content": "a", "tool_calls": [{"name": "f", "arguments": "x" * 301}]}]}, "tool_calls[0].arguments"),
        ({"response": "x", "tools": [{"name": "f", "description": "d" * 301}]}, "tools[0].description"),
        ({"response": "x", "tools": [{"name": "f", "parameters": {"properties": {"k" * 301: {"type": "string"}}}}]}, "tools[0].parameters.properties: a key of 301"),
        # helper 98: keys read as the text when content is null, and reasoning, were unlimited
        ({"response": [{"role": "assistant", "content": None, "refusal": "r" * 301}]}, "refusal"),
        ({"response": [{"role": "assistant", "content": None, "text": "r" * 301}]}, "text"),
        ({"response": [{"role": "assistant", "content": None, "parts": [{"text": "r" * 301}]}]}, "parts[0].text"),
        ({"response": [{"role": "assistant", "content": "a", "reasoning_content": "r" * 301}]}, "reasoning_content"),
        ({"prompt": [{"role": "user", "content": None, "message": "m" * 301}], "response": "x"}, "message"),
        ({"response": [{"role": "assistant", "content": "a", "k" * 301: "v"}]}, "message: a key of 301"),
    ],
    ids=["content-part", "tool-call", "tool-definition", "tool-parameter-name", "refusal", "text", "parts",
         "reasoning", "message", "key-name"],
)  # fmt: skip
def test_every_text_has_the_length_limit(body, where):
    """Only plain strings were limited: a 3 MB tool description was scored."""
    with ServerThread(create_app(EchoScorer(), ServeSettings(max_text_chars=300))) as server:
        r = httpx.post(server.url + "/v1/score", json=body)
        what = where if "a key of" in where else f"{where}: a text of 301"
        assert r.status_code == 422 and f"{what} characters; at most 300" in r.json()["error"]


def test_a_bad_content_names_the_field_not_pydantics_union():
    with ServerThread(create_app(EchoScorer(), ServeSettings())) as server:
        r = httpx.post(
            server.url + "/v1/score", json={"prompt": [{"role": "user", "content": 5}], "response": "x"}
        )
        assert r.status_code == 422
        assert (
            r.json()["error"]
            == "invalid request: prompt[0].content: expected a string or a list of content parts"
        )


def test_jobs_failed_at_stop_leave_no_unretrieved_exception_in_the_log(caplog):
    """Each request cancelled at the graceful timeout logged "Future exception was never retrieved"."""
    import gc

    async def main():
        b = MicroBatcher(
            lambda xs: time.sleep(0.3) or [1.0] * len(xs), max_batch_size=1, max_wait_ms=1, max_queue=100
        )
        await b.start()
        futures = [b.submit([i]) for i in range(5)]
        await asyncio.sleep(0.05)  # the first is running; the rest wait
        await b.stop(drain_timeout=0)
        del futures  # nobody awaits them: as when their requests were cancelled
        gc.collect()

    with caplog.at_level("ERROR", logger="asyncio"):
        asyncio.run(main())
    assert "never retrieved" not in caplog.text


def test_health_answers_head_too():
    """Load balancers and `curl -I` probe with HEAD: it was 405."""
    with ServerThread(create_app(EchoScorer(), ServeSettings())) as server:
        head = httpx.head(server.url + "/health")
        assert head.status_code == 200 and head.content == b""
        assert httpx.get(server.url + "/health").json()["status"] == "ok"


def test_long_conversations_are_scored_and_the_limit_is_an_option():
    """129 prompt messages were a 422 from a limit no option or doc named (helper round 61): a
    long agent transcript scored in process failed through the server, so remote RLHF failed."""
    from rewardforge.commands.serve import build_parser, settings_from_args

    turns = []
    for i in range(100):
        turns += [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]
    body = {"prompt": turns[:-1], "response": "final"}
    with ServerThread(create_app(EchoScorer(), ServeSettings())) as server:
        assert httpx.post(server.url + "/v1/score", json=body).status_code == 200
    settings = settings_from_args(build_parser().parse_args(["--model", "m", "--max-messages", "50"]))
    assert settings.max_messages == 50
    with ServerThread(create_app(EchoScorer(), settings)) as server:
        r = httpx.post(server.url + "/v1/score", json=body)
        assert r.status_code == 422 and "at most 50 items" in r.json()["error"]


def test_an_ensemble_is_served_and_rewards_as_its_mean(tiny_bert_dir, tiny_llama_dir):
    """helper 76: create_app and RMReward took a RewardEnsemble, then failed every request (its
    score_batch gives (mean, std) pairs): a 500 on each /v1/score."""
    from rewardforge.inference import RewardModel
    from rewardforge.rlhf.rewards import RMReward

    models = [RewardModel.from_pretrained(str(d)) for d in (tiny_bert_dir, tiny_llama_dir)]
    ensemble = RewardModel.ensemble(models)
    items = [("Hi", "Hello!"), ("Hi", "Go away.")]
    want = [sum(m.score(p, r) for m in models) / 2 for p, r in items]
    assert [mean for mean, _ in ensemble.score_batch(items)] == pytest.approx(want, abs=1e-6)
    assert ensemble.score_batch([]) == []
    with ServerThread(create_app(ensemble, ServeSettings())) as server:
        r = httpx.post(
            server.url + "/v1/score", json={"items": [{"prompt": p, "response": x} for p, x in items]}
        )
        assert r.status_code == 200 and r.json()["scores"] == pytest.approx(want, abs=1e-5)
        r = httpx.post(server.url + "/v1/compare", json={"prompt": "Hi", "responses": ["Hello!", "Go away."]})
        assert r.status_code == 200, r.text
        assert r.json()["scores"] == pytest.approx(want, abs=1e-5)
    # helper 79: compare read beta 1 and scored each response alone (a long prompt cut apart)
    for m in models:
        m.beta = 2.0
    long_prompt = " ".join(["word"] * 3000)  # past every model's max length: cut once per group
    group = ["Hello!", "Go away, and take your long question with you."]
    with ServerThread(create_app(ensemble, ServeSettings())) as server:
        r = httpx.post(server.url + "/v1/compare", json={"prompt": long_prompt, "responses": group}).json()
    cut_once = ensemble.mean().score_groups([(long_prompt, group)])[0]
    assert r["scores"] == pytest.approx(cut_once, abs=1e-5)
    assert r["probability"] == pytest.approx(1 / (1 + math.exp(-2.0 * (cut_once[0] - cut_once[1]))), abs=1e-6)
    reward = RMReward(ensemble)
    assert reward(["Hi", "Hi"], ["Hello!", "Go away."]) == pytest.approx(want, abs=1e-5)


def test_an_ensembles_mean_is_served_as_the_ensemble(tiny_bert_dir, tiny_llama_dir):
    """helper 81: create_app(ensemble.mean()) scored a compare group's responses one by one and
    answered an empty raw text with a 500."""
    from rewardforge.inference import RewardModel

    ensemble = RewardModel.ensemble(
        [RewardModel.from_pretrained(str(d)) for d in (tiny_bert_dir, tiny_llama_dir)]
    )
    long_prompt = " ".join(["word"] * 3000)
    group = ["Hello!", "Go away, and take your long question with you."]
    with ServerThread(create_app(ensemble.mean(), ServeSettings())) as server:
        r = httpx.post(server.url + "/v1/compare", json={"prompt": long_prompt, "responses": group})
        assert r.json()["scores"] == pytest.approx(
            ensemble.mean().score_groups([(long_prompt, group)])[0], abs=1e-5
        )
        assert httpx.post(server.url + "/get_reward", json={"query": [""]}).status_code == 422


def test_every_message_form_training_reads_is_served(tiny_bert_dir):
    """helper 84: the README says score, serve and RewardModel take the same message forms, but
    /v1/score answered 422 to ShareGPT's from/value, OpenAssistant's text, Cohere's message,
    Gemini's parts and a dict of lists, which `score` and RewardModel read."""
    from rewardforge.inference import RewardModel

    rm = RewardModel.from_pretrained(str(tiny_bert_dir))
    want = rm.score([{"role": "user", "content": "Hi there"}], [{"role": "assistant", "content": "Hello!"}])
    forms = [
        ([{"from": "human", "value": "Hi there"}], [{"from": "gpt", "value": "Hello!"}]),
        ([{"role": "prompter", "text": "Hi there"}], [{"role": "assistant", "text": "Hello!"}]),
        ([{"role": "USER", "message": "Hi there"}], [{"role": "CHATBOT", "message": "Hello!"}]),
        (
            [{"role": "user", "parts": [{"text": "Hi there"}]}],
            [{"role": "model", "parts": [{"text": "Hello!"}]}],
        ),
        ({"role": ["user"], "content": ["Hi there"]}, {"role": ["assistant"], "content": ["Hello!"]}),
        ({"from": "human", "value": "Hi there"}, {"from": "gpt", "value": "Hello!"}),
    ]
    with ServerThread(create_app(rm, ServeSettings())) as server:
        for prompt, response in forms:
            assert rm.score(prompt, response) == pytest.approx(want, abs=1e-6), prompt
            r = httpx.post(server.url + "/v1/score", json={"prompt": prompt, "response": response})
            assert r.status_code == 200 and r.json()["score"] == pytest.approx(want, abs=1e-5), (
                prompt,
                r.text,
            )
            r = httpx.post(
                server.url + "/v1/compare", json={"prompt": prompt, "responses": [response, "Bye."]}
            )
            assert r.status_code == 200, r.text
        # what training refuses is still named with its place in the body
        r = httpx.post(
            server.url + "/v1/score", json={"prompt": [{"role": "wizard", "content": "x"}], "response": "y"}
        )
        assert r.status_code == 422 and "prompt" in r.json()["error"] and "wizard" in r.json()["error"], (
            r.text
        )
        # helper 88: a bad message in another form was pydantic's "from: Extra inputs are not permitted"
        for turn, words in (({"from": "alien", "value": "hi"}, "unknown chat role 'alien'"),
                            ({"role": "prompter", "text": 7}, "message[0].text")):  # fmt: skip
            r = httpx.post(server.url + "/v1/score", json={"prompt": [turn], "response": "y"})
            assert r.status_code == 422 and words in r.json()["error"], r.text
            assert "Extra inputs" not in r.json()["error"], r.text


def test_messages_with_reasoning_or_openais_extra_keys_are_served_as_training_reads_them(tiny_bert_dir):
    """helper 97: /v1/score answered 422 'Extra inputs are not permitted' to reasoning_content and
    to OpenAI's own returned message (refusal, annotations, audio), which train, eval and score
    read; one such item failed a whole batch."""
    from rewardforge.inference import RewardModel

    rm = RewardModel.from_pretrained(str(tiny_bert_dir))
    prompt = [{"role": "user", "content": "Hi there"}]
    want = rm.score(prompt, [{"role": "assistant", "content": "Hello!"}])
    refused = rm.score(prompt, [{"role": "assistant", "content": "I can't help with that."}])
    openai = {"role": "assistant", "content": "Hello!", "refusal": None, "annotations": [], "audio": None}
    with ServerThread(create_app(rm, ServeSettings())) as server:
        for reply, expected in (
            ({"role": "assistant", "content": "Hello!", "reasoning_content": "say hi"}, want),
            ({"role": "assistant", "content": "Hello!", "thinking": "say hi"}, want),
            (openai, want),
            ({"role": "assistant", "content": None, "refusal": "I can't help with that."}, refused),
        ):
            assert rm.score(prompt, [reply]) == pytest.approx(expected, abs=1e-6)
            r = httpx.post(
                server.url + "/v1/score", json={"items": [{"prompt": prompt, "response": [reply]}]}
            )
            assert r.status_code == 200 and r.json()["scores"][0] == pytest.approx(expected, abs=1e-5), r.text
        # a message training refuses names the part after the message's own place in the body
        bad = {
            "role": "user",
            "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": "x"}],
        }
        r = httpx.post(server.url + "/v1/score", json={"prompt": [bad], "response": "y"})
        assert r.status_code == 422 and "field 'content[1]'" in r.json()["error"], r.text
        assert "message[0]" not in r.json()["error"], r.text
