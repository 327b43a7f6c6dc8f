"""The page at `/` driven in headless Chromium (Playwright): a person types a prompt and three
responses, clicks Score, and reads the rewards and the preference probability."""

from __future__ import annotations

import os
import shutil

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("REWARDFORGE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
API_KEY = "page-key"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}")


@pytest.fixture(scope="module")
def model(tiny_bert_dir):
    import torch

    from rewardforge.inference import RewardModel

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield RewardModel.from_pretrained(str(tiny_bert_dir))
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def _server(model, **kw):
    from rewardforge.serving import ServeSettings, create_app
    from rewardforge.serving.testing import ServerThread

    return ServerThread(create_app(model, ServeSettings(model_name="tiny-bert", **kw)))


def test_page_scores_and_compares(model, browser, tmp_path):
    prompt = "What is the capital of France?"
    responses = ["The capital of France is Paris.", "It is Lyon.", "I do not know."]
    want = [model.score(prompt, r) for r in responses]
    with _server(model) as server:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url + "/")
        assert page.title() == "rewardforge: tiny-bert"
        assert not page.is_visible("#api-key")  # no key needed: the field stays hidden
        page.fill("#prompt", prompt)
        page.fill("#response-0", responses[0])
        page.fill("#response-1", responses[1])
        page.click("#add-response")
        page.fill("#response-2", responses[2])
        page.click("#score-btn")
        page.wait_for_selector("#results:not(.hidden)", timeout=20_000)
        shown = [float(page.inner_text(f"#score-{i}").split()[-1]) for i in range(3)]
        assert shown == pytest.approx(want, abs=1e-4)
        p_ab = 1 / (1 + pow(2.718281828459045, -(want[0] - want[1])))
        assert float(page.inner_text("#probability")) == pytest.approx(p_ab, abs=1e-4)
        best = max(range(3), key=lambda i: want[i])
        assert page.inner_text("#best") == "ABC"[best]
        assert page.locator("#pairwise tr").count() == 4  # header + 3 rows
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        # an empty response is caught on the page, before any request
        page.fill("#response-1", "")
        page.click("#score-btn")
        assert "Fill in every response" in page.inner_text("#error")
        assert errors == []
        page.close()


def test_page_with_api_key(model, browser):
    with _server(model, api_key=API_KEY) as server:
        page = browser.new_page()
        page.goto(server.url + "/")
        assert page.is_visible("#api-key")
        page.fill("#response-0", "Hello there!")
        page.fill("#response-1", "Go away.")
        page.click("#score-btn")
        page.wait_for_function("document.querySelector('#error').textContent.length > 0", timeout=20_000)
        assert "401" in page.inner_text("#error")
        page.fill("#api-key", API_KEY)
        page.click("#score-btn")
        page.wait_for_selector("#results:not(.hidden)", timeout=20_000)
        assert float(page.inner_text("#score-0").split()[-1]) == pytest.approx(
            model.score(None, "Hello there!"), abs=1e-4
        )
        page.close()
