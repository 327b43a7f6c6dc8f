"""The RM as a reward: in process and through the real rewardforge server (in-process uvicorn on
127.0.0.1) give the same rewards."""

from __future__ import annotations

import pytest

from rewardforge.rlhf.remote import RemoteRewardModel, RemoteRMError, _group_chunks, load_rm

API_KEY = "rlhf-test-key"
PROMPTS = [[{"role": "user", "content": "What is 2 + 2?"}]] * 3 + [
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me a joke about cats."}]
] * 3
COMPLETIONS = [
    [{"role": "assistant", "content": t}]
    for t in ["4", "It is four.", "5, I think", "No.", "Why did the cat sit on the computer? The mouse.", ""]
]


def test_group_chunks_keep_groups_together():
    items = [{"prompt": p, "response": "x"} for p in ["a", "a", "b", "b", "b", "c"]]
    assert _group_chunks(items, 4) == [[0, 1], [2, 3, 4, 5]]
    assert _group_chunks(items, 2) == [[0, 1], [2, 3], [4, 5]]  # a group larger than the limit is split
    assert _group_chunks(items, 100) == [[0, 1, 2, 3, 4, 5]]


@pytest.fixture(scope="module")
def tiny_rm(tiny_llama_dir):
    from rewardforge.inference import RewardModel

    return RewardModel.from_pretrained(str(tiny_llama_dir))


@pytest.fixture(scope="module")
def server(tiny_rm):
    from rewardforge.serving import ServeSettings, create_app
    from rewardforge.serving.testing import ServerThread

    with ServerThread(create_app(tiny_rm, ServeSettings(api_key=API_KEY, max_items=4))) as srv:
        yield srv


@pytest.mark.slow
def test_in_process_and_remote_give_equal_rewards(tmp_path, tiny_rm, server):
    from rewardforge.rlhf import make_grpo_with_rm

    local = make_grpo_with_rm(tiny_rm, group_size=3, output_dir=str(tmp_path))
    remote = make_grpo_with_rm(server.url, group_size=3, api_key=API_KEY, output_dir=str(tmp_path))
    assert isinstance(remote.rm, RemoteRewardModel)
    remote.rm.health()  # learns the server's max_items (4): the 6 rollouts go in 2 requests, one per group
    assert remote.rm.max_items_per_request == 4
    a = local.rm_reward(prompts=PROMPTS, completions=COMPLETIONS)
    b = remote.rm_reward(prompts=PROMPTS, completions=COMPLETIONS)
    # the server pads a micro-batch, the in-process model shares each prompt in one row: the same
    # function of the same tokens, equal up to float32 rounding (measured: ~3e-8)
    assert b == pytest.approx(a, abs=1e-5)
    assert a == pytest.approx([tiny_rm.score(p, c) for p, c in zip(PROMPTS, COMPLETIONS)], abs=1e-5)
    # the string forms (text prompt, text completion) give the same as their message forms
    texts = remote.rm.score_batch([("What is 2 + 2?", "4")])
    assert texts[0] == pytest.approx(a[0], abs=1e-5)


@pytest.mark.slow
def test_remote_api_key_errors(server, monkeypatch):
    monkeypatch.delenv("REWARDFORGE_API_KEY", raising=False)
    with pytest.raises(RemoteRMError, match="401, the server wants an API key"):
        RemoteRewardModel(server.url).score_batch([("Hi", "Hello")])
    with pytest.raises(RemoteRMError, match="refused the API key"):
        RemoteRewardModel(server.url + "/v1/score", api_key="wrong").score_batch([("Hi", "Hello")])
    monkeypatch.setenv("REWARDFORGE_API_KEY", API_KEY)
    rm = load_rm(server.url)
    assert (
        rm.max_items_per_request == 4
    )  # the server's limit, learnt on loading (bon sent 12 and lost its work)
    assert len(rm.score_batch([("Hi", "Hello")])) == 1


def test_remote_unreachable_server():
    rm = RemoteRewardModel("http://127.0.0.1:9", retries=0, timeout=2)
    with pytest.raises(RemoteRMError, match="cannot reach"):
        rm.score_batch([("Hi", "Hello")])


def test_a_server_that_is_not_a_reward_server_is_a_clean_error():
    """A plain web server at --rm: a JSONDecodeError traceback from bon and rlhf."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>hello</html>")

        def log_message(self, *args):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with pytest.raises(RemoteRMError, match="is not a JSON object .*is this `rewardforge serve`"):
            load_rm(f"http://127.0.0.1:{httpd.server_port}")
    finally:
        httpd.shutdown()


LONG = [
    {"role": "user", "content": "Earlier question " * 12},
    {"role": "assistant", "content": "Earlier answer " * 12},
    {"role": "user", "content": "Tell me a joke about cats."},
]
GROUP = [[{"role": "assistant", "content": t}] for t in ["No.", "Why did the cat sit on the computer? " * 3]]


@pytest.fixture(scope="module")
def short_rm(tiny_llama_dir):
    from rewardforge.inference import RewardModel

    return RewardModel.from_pretrained(str(tiny_llama_dir), max_length=96)


def test_a_group_is_scored_on_equal_context_everywhere(tmp_path, short_rm):
    """Past max_length, GRPO's and bon's rewards, and the server's /v1/compare, cut the prompt
    per completion: a short reply kept history a long one lost, while rank and eval cut once
    for all (helper round 65). Every path now cuts once per group."""
    from rewardforge.rlhf import make_grpo_with_rm
    from rewardforge.serving import ServeSettings, create_app
    from rewardforge.serving.testing import ServerThread

    together = short_rm.score_group(LONG, GROUP)
    alone = short_rm.score_batch([(LONG, c) for c in GROUP])
    assert together[0] != pytest.approx(alone[0], abs=1e-6)  # the cut differs, so this tests it
    assert [s for _, s in sorted(short_rm.rank(LONG, GROUP))] == pytest.approx(together, abs=1e-6)
    local = make_grpo_with_rm(short_rm, group_size=2, output_dir=str(tmp_path))
    assert local.rm_reward(prompts=[LONG, LONG], completions=GROUP) == pytest.approx(together, abs=1e-5)
    with ServerThread(create_app(short_rm, ServeSettings())) as srv:
        remote = make_grpo_with_rm(srv.url, group_size=2, output_dir=str(tmp_path))
        assert remote.rm_reward(prompts=[LONG, LONG], completions=GROUP) == pytest.approx(together, abs=1e-5)
        import httpx

        body = {"prompt": LONG, "responses": GROUP}
        assert httpx.post(srv.url + "/v1/compare", json=body).json()["scores"] == pytest.approx(
            together, abs=1e-5
        )


def test_a_group_larger_than_the_servers_limit_is_still_scored(tiny_rm, server):
    """/v1/compare takes at most max_items responses (4 here): a group of 6 goes item by item."""
    remote = RemoteRewardModel(server.url, api_key=API_KEY)
    remote.health()
    six = [[{"role": "assistant", "content": f"answer {i}"}] for i in range(6)]
    (got,) = remote.score_groups([(PROMPTS[0], six)])
    assert got == pytest.approx([tiny_rm.score(PROMPTS[0], c) for c in six], abs=1e-5)


def test_a_too_large_group_is_scored_even_before_health_is_asked(tiny_rm, server):
    remote = RemoteRewardModel(server.url, api_key=API_KEY)  # max_items not learnt: 256 assumed
    five = [[{"role": "assistant", "content": f"answer {i}"}] for i in range(5)]
    (got,) = remote.score_groups([(PROMPTS[0], five)])  # /v1/compare answers 413; item by item
    assert got == pytest.approx([tiny_rm.score(PROMPTS[0], c) for c in five], abs=1e-5)
