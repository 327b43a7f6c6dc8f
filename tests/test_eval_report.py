"""The HTML report and console table of `rewardforge eval`, on hand-made scores (no model)."""

from __future__ import annotations

import base64
from html.parser import HTMLParser

import numpy as np
import pytest

from rewardforge.data.types import PreferencePair
from rewardforge.evaluation.analysis import compute_metrics
from rewardforge.evaluation.documents import score_lines
from rewardforge.evaluation.inputs import DataSet
from rewardforge.evaluation.report import build_html, console_table
from rewardforge.evaluation.runner import EvalOptions, EvalRun, RunResult
from rewardforge.evaluation.scoring import PairScores

EVIL = '<script>alert("x")</script><img src="https://evil.example/x.png" onerror="alert(1)"> & </td>'


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def make_run(n_models: int = 2) -> EvalRun:
    pairs = []
    for i in range(12):
        text = EVIL if i == 3 else f"answer {i} " + "x" * (i * 7)
        pairs.append(
            PreferencePair(
                prompt=[{"role": "user", "content": f"question {i} {EVIL if i == 3 else ''}"}],
                chosen=[{"role": "assistant", "content": text}],
                rejected=[{"role": "assistant", "content": f"bad {i}"}],
                id=f"p{i}" if i != 5 else "<b>id</b>",
                category="a<b" if i % 2 else "plain",
            )
        )
    ds = DataSet(
        name="d<1>", spec="d.jsonl", pairs=pairs, shape="explicit", source="d.jsonl", fingerprint="0" * 64
    )
    results, models = [], []
    rng = np.random.default_rng(0)
    for k in range(n_models):
        chosen = rng.normal(size=12)
        rejected = rng.normal(size=12)
        rejected[3] = chosen[3] + 5.0  # pair 3 (the hostile text) is the most confidently wrong
        rejected[7] = chosen[7]  # one exact tie
        flags = np.zeros(12, dtype=bool)
        scores = PairScores(chosen, rejected, flags, flags.copy(), flags.copy())
        name = f"model<{k}>"
        results.append(RunResult(name, ds.name, compute_metrics(pairs, scores, seed=1), scores))
        models.append(
            {
                "name": name,
                "spec": name,
                "score_head": "trained",
                "format": {"kind": "plain"},
                "max_length": 64,
                "dtype": "fp32",
            }
        )
    return EvalRun(EvalOptions(models=["m"], data=["d"]), models, [ds], results, {})


@pytest.fixture(scope="module")
def page() -> str:
    return build_html(make_run(2), command="rewardforge eval --model '<x>'")


def test_report_escapes_user_text_and_loads_nothing_remote(page):
    parser = Tags()
    parser.feed(page)
    tags = [t for t, _ in parser.tags]
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    for tag, attrs in parser.tags:
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
        if "src" in attrs:
            assert tag == "img" and attrs["src"].startswith("data:image/png;base64,"), attrs["src"][:60]
        assert "href" not in attrs
    # the hostile text is shown, escaped, in the most-confidently-wrong table
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&lt;b&gt;id&lt;/b&gt;" in page and "model&lt;0&gt;" in page and "a&lt;b" in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_report_images_are_valid_pngs_and_models_side_by_side(page):
    parser = Tags()
    parser.feed(page)
    imgs = [a for t, a in parser.tags if t == "img"]
    kinds = [a["data-plot"] for a in imgs]
    assert kinds == ["scores", "margins", "reliability", "length", "categories"]
    for a in imgs:
        png = base64.b64decode(a["src"].split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width = int.from_bytes(png[16:20], "big")
        assert width > 200
    assert page.count("<h4>model&lt;0&gt;</h4>") == 1 and page.count("<h4>model&lt;1&gt;</h4>") == 1


def test_ties_and_console_table():
    run = make_run(1)
    m = run.results[0].metrics
    assert m["ties"] == 1
    assert m["most_confidently_wrong"][0]["index"] == 3
    table = console_table(run)
    header = table.splitlines()[0].split()
    assert header[:4] == ["model", "data", "pairs", "accuracy"] and "ties" in header
    assert "cat_acc" in header and "model<0>" in table
    lines = score_lines(run)
    assert len(lines) == 12 and '"tie": true' in lines[7]


class FakeModel:
    """Stands in for RewardModel: records every batch it is asked to score."""

    def __init__(self):
        self.batches: list[list[list[int]]] = []

    def score_token_ids(self, seqs, batch_size=16):
        for start in range(0, len(seqs), batch_size):
            self.batches.append(seqs[start : start + batch_size])
        return [float(sum(s)) + 0.001 * len(seqs) for s in seqs]  # depends on the chunk: like padding noise


def test_score_sequences_runs_each_distinct_sequence_once_in_length_order():
    from rewardforge.evaluation.scoring import score_sequences

    rng = np.random.default_rng(3)
    seqs = [list(rng.integers(0, 9, size=int(rng.integers(1, 30)))) for _ in range(50)]
    seqs += [list(s) for s in seqs[:10]]  # repeats
    model = FakeModel()
    scores = score_sequences(model, seqs, batch_size=4, progress=False)
    flat = [s for b in model.batches for s in b]
    assert len(flat) == len({tuple(s) for s in seqs})
    assert [len(s) for s in flat] == sorted(len(s) for s in flat)
    for i in range(10):  # a repeated sequence gets the very same score: identical pairs are exact ties
        assert scores[50 + i] == scores[i]


def test_many_and_long_categories_stay_readable_and_all_are_listed():
    """300 categories made a 24435-px-wide strip squashed to the page; a 120-character name
    collapsed the axes. Now: one row per category, the 40 largest in the chart, all in a table."""
    import warnings

    from rewardforge.evaluation.report import LABEL_CHARS, MAX_CATEGORY_BARS

    run = make_run(1)
    for i, pair in enumerate(run.datasets[0].pairs):
        pair.category = ("a very long category name " * 5) if i == 0 else f"category {i % 12}"
    many = [f"c{k}" for k in range(300)]
    run.results[0].metrics["per_category"] = {
        c: {"pairs": 1 + k % 7, "accuracy": 0.5} for k, c in enumerate(many)
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "axes sizes collapsed to zero"
        page = build_html(run, command="x")
    assert f"The {MAX_CATEGORY_BARS} largest of 300 categories" in page
    assert all(f'<td class="">{c}</td>' in page for c in many)  # every one in the table
    png = base64.b64decode(
        page.split('data-plot="categories"')[0].rsplit('src="data:image/png;base64,', 1)[1].split('"')[0]
    )
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width < 1000 and height < 40 * MAX_CATEGORY_BARS
    long_name = "x" * 120
    run.results[0].metrics["per_category"] = {long_name: {"pairs": 3, "accuracy": 1.0}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        page = build_html(run, command="x")
    assert long_name in page and LABEL_CHARS < 120


def test_wrong_pairs_heading_fits_every_model():
    """helper 71: the count came from the first model alone; with none wrong there it was blank
    while the second model listed ten."""
    run = make_run(2)
    first = run.results[0].metrics
    first["most_confidently_wrong"] = []
    page = build_html(run, command="rewardforge eval")
    listed = len(run.results[1].metrics["most_confidently_wrong"])
    assert listed > 0 and f"<h3>The up to {listed} most confidently wrong pairs</h3>" in page
    run.results[1].metrics["most_confidently_wrong"] = []
    assert "<h3>No wrong pairs</h3>" in build_html(run, command="rewardforge eval")


def test_categories_that_differ_in_spaces_are_told_apart_and_cjk_names_warn_nothing():
    """Helper 89: "math" and "math " were two rows that both read "math" (HTML and the chart
    collapse the space), and a CJK category printed matplotlib's glyph warning twice."""
    import warnings

    run = make_run(1)
    run.results[0].metrics["per_category"] = {
        "math": {"pairs": 2, "accuracy": 0.5},
        "math ": {"pairs": 3, "accuracy": 1.0},
        "数学": {"pairs": 1, "accuracy": 0.0},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        page = build_html(run, command="x")
    assert '<td class="">math</td>' in page and '<td class="">&quot;math &quot;</td>' in page
    assert '<td class="">数学</td>' in page
