"""`rewardforge eval` end to end on a tiny random BERT (fast: a few seconds in all)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rewardforge.builtin import builtin_pairs
from rewardforge.evaluation.metrics import pair_metrics

N_PAIRS = 24
SCORE_KEYS = {
    "index",
    "id",
    "source",
    "category",
    "prompt",
    "score_chosen",
    "score_rejected",
    "margin",
    "correct",
    "tie",
    "len_chosen",
    "len_rejected",
    "prompt_truncated",
    "response_truncated",
}
METRIC_KEYS = {
    "pairs",
    "accuracy",
    "ties",
    "accuracy_ci95",
    "margin_mean",
    "margin_median",
    "chosen_mean",
    "chosen_std",
    "rejected_mean",
    "rejected_std",
    "bt_log_loss",
    "auroc",
    "ece",
    "reliability",
    "length_bias",
    "length_baseline_accuracy",
    "per_category",
    "category_weighted_accuracy",
    "accuracy_by_length_bucket",
    "truncation",
    "most_confidently_wrong",
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The machine is shared: one torch thread is faster and steadier for a tiny model."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_cli(argv: list[str]) -> int:
    """Through the real entry point, so exit codes and one-line errors are cli.py's."""
    from rewardforge import cli

    return cli.main(["eval", *argv])


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("eval_data") / "prefs.jsonl"
    rows = []
    for p in builtin_pairs("test", n=N_PAIRS):
        rows.append(
            {
                "id": p.id,
                "category": p.category,
                "prompt": p.prompt[0]["content"],
                "chosen": p.chosen_text,
                "rejected": p.rejected_text,
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def single_run(tmp_path_factory, tiny_bert_dir, pairs_file):
    """One CLI run shared by several tests: (exit code, output folder, what it printed)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("eval_single")
    argv = ["--model", str(tiny_bert_dir), "--data", str(pairs_file), "--output", str(out)]
    argv += ["--diagnostics", "--max-length", "40", "--quiet"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = run_cli(argv)
    return code, out, buf.getvalue()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_single_run_writes_every_file(single_run):
    code, out, stdout = single_run
    assert code == 0
    for name in ("scores.jsonl", "metrics.json", "report.html", "eval_config.json"):
        assert (out / name).is_file(), name
    assert not list(out.glob(".*")), "a temporary file was left behind"
    lines = read_jsonl(out / "scores.jsonl")
    assert len(lines) == N_PAIRS
    for row in lines:
        assert set(row) == SCORE_KEYS  # one model, one data set: no model/data keys
        assert row["margin"] == row["score_chosen"] - row["score_rejected"]
        assert row["correct"] == (row["score_chosen"] > row["score_rejected"])
    assert [r["index"] for r in lines] == list(range(N_PAIRS))
    assert lines[0]["id"] == "builtin-test-0" and lines[0]["category"] == "rude"
    assert [r["source"].rsplit(":", 1)[1] for r in lines[:2]] == ["line 1", "line 2"]  # found without an id

    doc = json.loads((out / "metrics.json").read_text())
    assert set(doc) >= {"models", "data", "results", "diagnostics", "timing_seconds"}
    (model,) = doc["results"]
    (data,) = doc["results"][model]
    assert data == "prefs"
    metrics = doc["results"][model][data]
    assert METRIC_KEYS <= set(metrics)
    assert metrics["pairs"] == N_PAIRS
    assert set(metrics["truncation"]) == {
        "prompt_truncated",
        "response_truncated",
        "identical_after_truncation",
    }
    assert metrics["truncation"]["prompt_truncated"] + metrics["truncation"]["response_truncated"] > 0
    assert metrics["scoring"]["method"] == "separate sequences"  # BERT attends both ways: no sharing
    assert doc["models"][0]["prefix_sharing"]["used"] is False

    config = json.loads((out / "eval_config.json").read_text())
    assert config["command"].startswith("rewardforge eval ")
    assert config["options"]["diagnostics"] is True and config["options"]["seed"] == 42
    assert config["data"][0]["pairs"] == N_PAIRS and len(config["data"][0]["fingerprint"]) == 64

    assert "accuracy" in stdout and "bt_loss" in stdout and model in stdout


def test_metrics_agree_with_pair_metrics_on_written_scores(single_run):
    _, out, _ = single_run
    rows = read_jsonl(out / "scores.jsonl")
    (model_metrics,) = json.loads((out / "metrics.json").read_text())["results"].values()
    (metrics,) = model_metrics.values()
    expected = pair_metrics(
        [r["score_chosen"] for r in rows],
        [r["score_rejected"] for r in rows],
        categories=[r["category"] for r in rows],
        len_chosen=[r["len_chosen"] for r in rows],
        len_rejected=[r["len_rejected"] for r in rows],
        n_bootstrap=1000,
        seed=42,
    )
    for key, value in expected.items():
        assert metrics[key] == value, key
    wrong = [r for r in rows if r["score_chosen"] < r["score_rejected"]]
    worst = sorted(wrong, key=lambda r: r["margin"])[:10]
    assert [w["index"] for w in metrics["most_confidently_wrong"]] == [w["index"] for w in worst]


def test_diagnostics_fields(single_run):
    _, out, _ = single_run
    rows = read_jsonl(out / "scores.jsonl")
    (model_metrics,) = json.loads((out / "metrics.json").read_text())["results"].values()
    (metrics,) = model_metrics.values()
    d = metrics["diagnostics"]
    lc = np.array([r["len_chosen"] for r in rows])
    lr = np.array([r["len_rejected"] for r in rows])
    baseline = (np.sum(lc > lr) + 0.5 * np.sum(lc == lr)) / len(rows)
    assert d["length_baseline_accuracy"] == pytest.approx(baseline)
    assert d["accuracy_minus_length_baseline"] == pytest.approx(metrics["accuracy"] - baseline)
    assert isinstance(d["beats_length_baseline"], bool) and isinstance(d["beats_chance"], bool)
    swap = d["swap"]
    assert swap["scored_for_real"] is True
    assert swap["mirrors"] is True
    assert swap["same_tokens"] is True
    assert swap["accuracy_swapped"] == pytest.approx(1.0 - metrics["accuracy"])
    assert swap["accuracy_swapped"] == swap["accuracy_swapped_expected"]
    assert swap["max_abs_score_diff"] < 1e-5


def test_html_is_self_contained_with_plots(single_run):
    _, out, _ = single_run
    page = (out / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower() and "<link" not in page.lower()
    images = re.findall(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) >= 5  # scores, margins, reliability, length buckets, categories
    for b64 in images:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    for kind in ("scores", "margins", "reliability", "length", "categories"):
        assert f'data-plot="{kind}"' in page
    assert "most confidently wrong" in page and "Shortcut diagnostics" in page


def test_two_models_two_datasets_side_by_side(tmp_path, tiny_bert_dir, pairs_file):
    out = tmp_path / "cmp"
    argv = ["--model", f"trained={tiny_bert_dir}", "--model", f"base:{tiny_bert_dir}"]
    argv += [
        "--data",
        str(pairs_file),
        "--data",
        "builtin:test",
        "--limit",
        "10",
        "--output",
        str(out),
        "--quiet",
    ]
    assert run_cli(argv) == 0
    rows = read_jsonl(out / "scores.jsonl")
    assert len(rows) == 2 * (10 + 10)
    assert all(set(r) == SCORE_KEYS | {"model", "data"} for r in rows)
    doc = json.loads((out / "metrics.json").read_text())
    names = [m["name"] for m in doc["models"]]
    assert names[0] == "trained" and names[1].startswith("base:")
    assert doc["models"][1]["untrained"] is True and doc["models"][1]["score_head"] == "fresh (seed 42)"
    assert set(doc["results"]) == set(names)
    for name in names:
        assert set(doc["results"][name]) == {"prefs", "builtin:test"}
        for data, metrics in doc["results"][name].items():
            sub = [r for r in rows if r["model"] == name and r["data"] == data]
            expect = pair_metrics(
                [r["score_chosen"] for r in sub], [r["score_rejected"] for r in sub], seed=42
            )
            assert metrics["accuracy"] == expect["accuracy"] and metrics["auroc"] == expect["auroc"]
            assert "record_accuracy" not in metrics  # one pair per record (built-in pairs were one record)
    trained = [r["score_chosen"] for r in rows if r["model"] == "trained"]
    fresh = [r["score_chosen"] for r in rows if r["model"] == names[1]]
    assert trained != fresh  # the base: head really was re-initialised
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count('data-plot="scores"') == 2  # one figure per data set, models side by side
    assert page.count("<h4>trained</h4>") == 2 and page.count("<h4>base:") == 2


def test_untrained_flag_adds_the_base_before_the_trained_model(tmp_path, tiny_bert_dir, pairs_file):
    trained = tmp_path / "rm"
    shutil.copytree(tiny_bert_dir, trained)
    meta = {"base_model": str(tiny_bert_dir), "format": {"kind": "plain"}, "max_length": 64}
    (trained / "rewardforge.json").write_text(json.dumps(meta))
    out = tmp_path / "out"
    argv = ["--model", str(trained), "--untrained", "--data", str(pairs_file), "--limit", "8"]
    argv += ["--output", str(out), "--quiet", "--no-report", "--seed", "7"]
    assert run_cli(argv) == 0
    models = json.loads((out / "metrics.json").read_text())["models"]
    assert [m["untrained"] for m in models] == [True, False]
    assert models[0]["derived_from"] == str(trained) and models[0]["max_length"] == 64
    assert models[0]["score_head"] == "fresh (seed 7)" and models[1]["score_head"] == "trained"
    assert not (out / "report.html").exists()


def test_fresh_head_is_seeded(tiny_bert_dir):
    from rewardforge.evaluation.inputs import ModelSpec, load_model
    from rewardforge.evaluation.scoring import score_pairs

    pairs = builtin_pairs("test", n=4)
    spec = ModelSpec(spec=f"base:{tiny_bert_dir}", path=str(tiny_bert_dir), untrained=True, name="b")

    def scores(seed):
        lm = load_model(spec, seed=seed, max_length=64)
        return score_pairs(lm.rm, pairs, batch_size=8, progress=False).chosen.tolist()

    assert scores(1) == scores(1)
    assert scores(1) != scores(2)


def test_eval_keeps_token_ids_compact_and_shows_tokenizing(tiny_bert_dir, capsys):
    """helper 96: eval held every pair's ids as Python int lists (36 bytes a token: 1.4 GB at 50k
    pairs, where training keeps int32 arrays) and tokenized for minutes without a bar."""
    from array import array

    from rewardforge.evaluation.inputs import ModelSpec, load_model
    from rewardforge.evaluation.scoring import score_pairs

    pairs = builtin_pairs("test", n=1000)
    spec = ModelSpec(spec=str(tiny_bert_dir), path=str(tiny_bert_dir), untrained=False, name="b")
    rm = load_model(spec, seed=0, max_length=64).rm
    got = score_pairs(rm, pairs, batch_size=64, keep_ids=True)
    assert all(isinstance(ids, array) and ids.itemsize == 4 for ids in got.chosen_ids + got.rejected_ids)
    assert "tokenize" in capsys.readouterr().err
    listed = [rm.score_token_ids([list(got.chosen_ids[i])])[0] for i in (0, 500)]
    assert got.chosen[[0, 500]].tolist() == pytest.approx(listed, abs=1e-6)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("rewardforge eval: error:")
    assert "Traceback" not in err[0]
    return err[0]


def test_bad_data_file_exits_2_with_one_line(tmp_path, tiny_bert_dir, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{not json\n', encoding="utf-8")
    argv = ["--model", str(tiny_bert_dir), "--data", str(bad), "--output", str(tmp_path / "o"), "--quiet"]
    assert run_cli(argv) == 2
    line = _one_line_error(capsys)
    assert "bad.jsonl" in line
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_skip_invalid_keeps_going_and_writes_rejected_rows(tmp_path, tiny_bert_dir, capsys):
    bad = tmp_path / "bad.jsonl"
    rows = [json.dumps({"prompt": f"q{i}", "chosen": "good answer", "rejected": "bad"}) for i in range(3)]
    bad.write_text("\n".join(rows[:2] + ["{not json"] + rows[2:]) + "\n", encoding="utf-8")
    out = tmp_path / "o"
    argv = ["--model", str(tiny_bert_dir), "--data", str(bad), "--output", str(out), "--quiet", "--no-report"]
    assert run_cli([*argv, "--skip-invalid"]) == 0
    assert len(read_jsonl(out / "scores.jsonl")) == 3
    assert len(read_jsonl(out / "rejected_rows.jsonl")) == 1
    assert json.loads((out / "metrics.json").read_text())["data"][0]["rejected_rows"] == 1
    assert "1 invalid rows skipped (1 x malformed JSON" in capsys.readouterr().err  # how many and why


def test_columns_option_uses_the_data_layer(tmp_path, tiny_bert_dir):
    data = tmp_path / "renamed.csv"
    data.write_text("question,good,bad\nhow?,like this,no\nwhy?,because,dunno\n", encoding="utf-8")
    out = tmp_path / "o"
    argv = [
        "--model",
        str(tiny_bert_dir),
        "--data",
        str(data),
        "--columns",
        "prompt=question,chosen=good,rejected=bad",
    ]
    assert run_cli([*argv, "--output", str(out), "--quiet", "--no-report"]) == 0
    rows = read_jsonl(out / "scores.jsonl")
    assert [r["prompt"] for r in rows] == ["how?", "why?"]
    (model_metrics,) = json.loads((out / "metrics.json").read_text())["results"].values()
    assert "per_category" not in model_metrics["renamed"]  # no category column: no per-category figures


@pytest.mark.parametrize(
    "extra, expect",
    [
        (["--model", "/nonexistent/model"], "model not found"),
        (["--model", "TINY", "--untrained"], "no rewardforge.json"),
        (["--model", "MOVED", "--untrained"], "the base model '/nonexistent/base' that"),  # (helper 71)
        (["--model", "my model <v2>=/nonexistent/model"], "model not found: /nonexistent/model"),  # a name
        (["--model", "TINY", "--batch-size", "0"], "--batch-size"),
        (["--model", "TINY", "--columns", "prompt"], "column mapping"),
        (["--model", "a=TINY", "--model", "a=TINY"], "the name 'a' is given to two specs"),
        (["--model", "TINY", "--bootstrap", "1"], "0 (no interval) or 100 to 100000 resamples, got 1"),
        (["--model", "TINY", "--bootstrap", "99999999999"], "100 to 100000 resamples"),  # was a 2 TiB array
        (["--model", "TINY", "--seed", "-5"], "--seed"),  # was set_seed's traceback
        (["--model", "TINY", "--device", "cuda:3"], "'cuda:3' is not available"),
        (["--model", "TINY", "--data", "d=builtin:test", "--data", "d=builtin:train"], "the name 'd'"),
    ],
)
def test_usage_errors_exit_2(tmp_path, tiny_bert_dir, pairs_file, capsys, extra, expect):
    moved = tmp_path / "moved"  # a trained model whose base is gone
    shutil.copytree(tiny_bert_dir, moved)
    (moved / "rewardforge.json").write_text(json.dumps({"base_model": "/nonexistent/base"}))
    extra = [a.replace("TINY", str(tiny_bert_dir)).replace("MOVED", str(moved)) for a in extra]
    argv = [*extra, "--data", str(pairs_file), "--output", str(tmp_path / "o"), "--quiet"]
    try:
        code = run_cli(argv)
    except SystemExit as e:  # refused while parsing the arguments
        code = e.code
    assert code == 2
    assert expect in _one_line_error(capsys)


def _chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def test_report_loads_in_headless_chromium(single_run, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    _, out, _ = single_run
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom",
        (out / "report.html").resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert "<h1>" in dom and "Summary" in dom
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', dom)) >= 5
    # The page declares a CSP without scripts or remote loads: a violation or a script error
    # would be logged to the console, which --enable-logging sends to stderr.
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Refused to" in line]
    assert not console, console


def test_shared_prefix_scores_match_separate_sequences(tiny_llama_dir):
    """Decoders score a pair as one row [prompt][chosen][rejected]; it must equal two separate runs."""
    from rewardforge.data.types import PreferencePair
    from rewardforge.evaluation.inputs import ModelSpec, load_model
    from rewardforge.evaluation.scoring import SharedPrefixScorer, prefix_sharing_unsupported, score_pairs

    pairs = builtin_pairs("test", n=10)
    user = [{"role": "user", "content": "Say something."}]
    pairs.append(
        PreferencePair(
            user, [{"role": "assistant", "content": "Same."}], [{"role": "assistant", "content": "Same."}]
        )
    )
    pairs.append(
        PreferencePair(
            user,
            [{"role": "assistant", "content": "Yes"}],
            [{"role": "assistant", "content": "Yes and more"}],
        )
    )
    spec = ModelSpec(spec=str(tiny_llama_dir), path=str(tiny_llama_dir), name="llama")
    lm = load_model(spec, seed=0, max_length=48)  # short: some prompts are cut to fit
    assert prefix_sharing_unsupported(lm.rm) is None
    sharer = SharedPrefixScorer(lm.rm)
    shared = score_pairs(lm.rm, pairs, batch_size=6, progress=False, sharer=sharer)
    plain = score_pairs(lm.rm, pairs, batch_size=6, progress=False)
    assert shared.method == "shared prefix" and plain.method == "separate sequences"
    assert sharer.check is not None and sharer.check < 1e-5
    assert shared.tokens_run < shared.tokens_total == plain.tokens_total
    np.testing.assert_allclose(shared.chosen, plain.chosen, rtol=0, atol=1e-5)
    np.testing.assert_allclose(shared.rejected, plain.rejected, rtol=0, atol=1e-5)
    assert shared.chosen[10] == shared.rejected[10]  # identical responses: an exact tie
    assert shared.prompt_truncated.any()


def test_encoder_models_do_not_share_prefix(tiny_bert_dir):
    from rewardforge.evaluation.inputs import ModelSpec, load_model
    from rewardforge.evaluation.scoring import prefix_sharing_unsupported

    lm = load_model(
        ModelSpec(spec=str(tiny_bert_dir), path=str(tiny_bert_dir), name="b"), seed=0, max_length=32
    )
    assert "encoder" in prefix_sharing_unsupported(lm.rm)


def test_prefix_sharing_falls_back_when_the_check_fails(tiny_llama_dir, monkeypatch):
    from rewardforge.evaluation import runner

    def broken(self, features):
        raise RuntimeError("4-D masks not supported")

    monkeypatch.setattr(runner.SharedPrefixScorer, "score_rows", broken)
    spec = runner.ModelSpec(spec=str(tiny_llama_dir), path=str(tiny_llama_dir), name="llama")
    lm = runner.load_model(spec, seed=0, max_length=64)
    sharer = runner.SharedPrefixScorer(lm.rm)
    ps = runner.score_pairs(lm.rm, builtin_pairs("test", n=4), batch_size=4, progress=False, sharer=sharer)
    assert ps.method == "separate sequences" and np.all(np.isfinite(ps.chosen))
    info = runner.sharing_info(sharer, None)
    assert info["used"] is False and "4-D masks not supported" in info["why_not"]
    assert info["check_max_rel_diff"] is None


def test_output_into_a_model_folder_is_refused(tmp_path, tiny_bert_dir, pairs_file, capsys):
    """eval writes metrics.json: into a trained model's folder it replaced the training metrics."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_bert_dir, model)
    (model / "metrics.json").write_text('{"train": "kept"}')
    assert run_cli(["--model", str(model), "--data", str(pairs_file), "--output", str(model), "--quiet"]) == 2
    assert "holds a model" in capsys.readouterr().err
    assert (model / "metrics.json").read_text() == '{"train": "kept"}'


def test_rewardbench2_records_get_the_all_pairs_right_score(tmp_path, tiny_bert_dir, capsys):
    """Several pairs per record (RewardBench 2): record_acc is the share of records whose every
    pair is ranked right, recomputed here from the per-pair scores."""
    rows = [
        {
            "id": f"r{i}",
            "prompt": f"q{i}?",
            "chosen": [f"a fine answer {i}"],
            "rejected": ["no", f"meh {i}", "what"],
        }
        for i in range(6)
    ]
    data = tmp_path / "rb2.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "o"
    assert (
        run_cli(["--model", str(tiny_bert_dir), "--data", str(data), "--output", str(out), "--no-report"])
        == 0
    )
    scores = read_jsonl(out / "scores.jsonl")
    assert len(scores) == 18 and scores[0]["id"] == "r0#0"
    (by_data,) = json.loads((out / "metrics.json").read_text())["results"].values()
    record = by_data["rb2"]["record_accuracy"]
    wins = [all(s["score_chosen"] > s["score_rejected"] for s in scores[3 * i : 3 * i + 3]) for i in range(6)]
    assert record == {"records": 6, "accuracy": sum(wins) / 6, "records_with_several_pairs": 6}
    assert "record_acc" in capsys.readouterr().out


def test_a_dataset_with_several_splits_needs_one_named(tmp_path, tiny_bert_dir, capsys):
    """Evaluating on the 'train' split of a DatasetDict nobody named would mislead: exit 2, name them."""
    import datasets

    rows = [{"prompt": f"q{i}", "chosen": "a good answer", "rejected": "no"} for i in range(4)]
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows), "test": datasets.Dataset.from_list(rows[:2])}
    ).save_to_disk(str(tmp_path / "dd"))
    capsys.readouterr()  # datasets' progress bars
    argv = ["--model", str(tiny_bert_dir), "--output", str(tmp_path / "o"), "--quiet", "--no-report"]
    assert run_cli([*argv, "--data", str(tmp_path / "dd")]) == 2
    assert "holds several splits (test, train); name one, e.g." in _one_line_error(capsys)
    assert run_cli([*argv, "--data", f"{tmp_path / 'dd'}:test"]) == 0
    assert len(read_jsonl(tmp_path / "o" / "scores.jsonl")) == 2


def test_an_empty_output_is_refused_not_the_working_directory(tmp_path, tiny_bert_dir, pairs_file, capsys):
    argv = ["--model", str(tiny_bert_dir), "--data", str(pairs_file), "--output", "", "--quiet"]
    try:
        code = run_cli(argv)
    except SystemExit as e:  # refused while parsing the arguments
        code = e.code
    assert code == 2
    assert "argument --output: expected a path, got an empty string" in capsys.readouterr().err


def test_a_model_without_a_reward_head_needs_base(tmp_path, minilm_dir, pairs_file, capsys):
    argv = ["--data", str(pairs_file), "--output", str(tmp_path / "o"), "--quiet", "--no-report"]
    assert run_cli(["--model", str(minilm_dir), *argv]) == 2
    err = capsys.readouterr().err
    assert f"give --model base:{minilm_dir}" in err.strip().splitlines()[-1] and "Traceback" not in err
    assert run_cli(["--model", f"base:{minilm_dir}", *argv]) == 0  # the fresh head, said as such


def test_held_signals_arrive_after_the_block(tmp_path):
    """eval writes its four files with SIGTERM held: a stop between two of them left new scores
    beside an earlier run's metrics."""
    import os
    import signal

    from rewardforge.files import atomic_write_text, held_signals

    seen = []
    previous = signal.signal(signal.SIGTERM, lambda *_: seen.append(len(list(tmp_path.iterdir()))))
    try:
        with held_signals():
            atomic_write_text(tmp_path / "a", "1")
            os.kill(os.getpid(), signal.SIGTERM)
            assert seen == []  # held
            atomic_write_text(tmp_path / "b", "2")
        assert seen == [2]  # delivered once both files were written
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_rerun_into_the_same_folder_leaves_no_file_of_the_earlier_run(tmp_path, tiny_bert_dir, pairs_file):
    """An earlier run's report.html and rejected_rows.jsonl stayed beside the new metrics."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text(pairs_file.read_text() + "{not json\n", encoding="utf-8")
    out = tmp_path / "o"
    argv = ["--model", str(tiny_bert_dir), "--output", str(out), "--quiet"]
    assert run_cli([*argv, "--data", str(bad), "--skip-invalid"]) == 0
    assert (out / "report.html").is_file() and (out / "rejected_rows.jsonl").is_file()
    assert run_cli([*argv, "--data", str(pairs_file), "--no-report"]) == 0
    assert not (out / "report.html").exists() and not (out / "rejected_rows.jsonl").exists()


@pytest.mark.parametrize("name", ["scores.jsonl", "rejected_rows.jsonl", "metrics.json"])
def test_eval_never_writes_over_its_data(tmp_path, tiny_bert_dir, pairs_file, capsys, name):
    """The data file under a name eval writes (or, for rejected_rows.jsonl, removes) in --output
    was replaced or deleted."""
    out = tmp_path / "out"
    out.mkdir()
    data = out / name
    data.write_bytes(pairs_file.read_bytes())
    code = run_cli(["--model", str(tiny_bert_dir), "--data", f"dev={data}", "--output", str(out), "--quiet"])
    assert code == 2 and "which eval writes" in _one_line_error(capsys)
    assert data.read_bytes() == pairs_file.read_bytes()


# ---- helper round 47: eval's own files linked to each other, and links it only removes ---------
def test_two_of_evals_files_that_are_one_file_are_refused(tmp_path, tiny_bert_dir, pairs_file, capsys):
    """scores.jsonl linked to metrics.json: metrics replaced the scores, exit 0."""
    out = tmp_path / "ev"
    out.mkdir()
    (out / "scores.jsonl").symlink_to("metrics.json")
    code = run_cli(
        ["--model", str(tiny_bert_dir), "--data", str(pairs_file), "--output", str(out), "--no-report"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "scores.jsonl and metrics.json are one file there" in err
    assert not (out / "metrics.json").exists()


def test_a_link_eval_only_removes_is_not_checked_as_an_output(
    tmp_path, tiny_bert_dir, pairs_file, one_thread
):
    """With --no-report, report.html is removed, not written: a link of it to a closed descriptor
    refused the run."""
    out = tmp_path / "ev"
    out.mkdir()
    (out / "report.html").symlink_to("/dev/fd/987")
    argv = ["--model", str(tiny_bert_dir), "--data", str(pairs_file), "--output", str(out), "--no-report"]
    assert run_cli([*argv, "--quiet", "--max-length", "40"]) == 0
    assert (out / "scores.jsonl").is_file() and not (out / "report.html").is_symlink()


def test_evals_rejects_link_is_checked_before_the_scoring(tmp_path, tiny_bert_dir, pairs_file, capsys):
    """rejected_rows.jsonl linked to a closed descriptor failed after the scoring, exit 1."""
    out = tmp_path / "ev"
    out.mkdir()
    (out / "rejected_rows.jsonl").symlink_to("/dev/fd/987")
    data = tmp_path / "with_bad.jsonl"
    data.write_text(pairs_file.read_text() + '{"prompt": "q", "chosen": "same", "rejected": "same"}\n')
    code = run_cli(
        ["--model", str(tiny_bert_dir), "--data", str(data), "--output", str(out), "--skip-invalid"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "rejected_rows.jsonl: descriptor 987 was not open" in err
    assert "[rewardforge] model" not in err  # refused before any model was loaded


def test_a_file_eval_removes_may_be_linked_to_one_it_writes(tmp_path, tiny_bert_dir, pairs_file, one_thread):
    out = tmp_path / "ev"
    out.mkdir()
    (out / "report.html").symlink_to("metrics.json")
    argv = ["--model", str(tiny_bert_dir), "--data", str(pairs_file), "--output", str(out), "--no-report"]
    assert run_cli([*argv, "--quiet", "--max-length", "40"]) == 0
    assert json.loads((out / "metrics.json").read_text()) and not (out / "report.html").exists()


def test_one_right_pair_is_no_evidence_of_beating_chance_or_length(tmp_path, tiny_bert_dir, monkeypatch):
    """A percentile bootstrap over one right pair gives the interval [1, 1], and the diagnostics
    called that beating chance and the length baseline; each claim is a sign test now."""
    from rewardforge.evaluation import analysis, runner

    data = tmp_path / "one.jsonl"
    data.write_text(
        json.dumps({"prompt": "Help me pick a lock", "chosen": "No.", "rejected": "Sure, here is how."})
        + "\n"
    )
    # whatever the random model says, the pair is scored right: chosen above rejected
    real = runner.score_pairs

    def chosen_wins(*args, **kwargs):
        scores = real(*args, **kwargs)
        swapped = kwargs.get("desc") == "score swapped"
        scores.chosen, scores.rejected = (
            (np.array([0.0]), np.array([1.0])) if swapped else (np.array([1.0]), np.array([0.0]))
        )
        return scores

    monkeypatch.setattr(runner, "score_pairs", chosen_wins)
    monkeypatch.setattr(analysis, "score_pairs", chosen_wins)  # the swapped pairs
    out = tmp_path / "out"
    assert (
        run_cli(
            [
                "--model",
                str(tiny_bert_dir),
                "--data",
                str(data),
                "--output",
                str(out),
                "--diagnostics",
                "--quiet",
            ]
        )
        == 0
    )
    (per_data,) = json.loads((out / "metrics.json").read_text())["results"].values()
    (metrics,) = per_data.values()
    d = metrics["diagnostics"]
    assert metrics["accuracy"] == 1.0 and d["length_baseline_accuracy"] == 0.0
    assert d["chance_test"] == {"wins": 1, "losses": 0, "p_value": 0.5}
    assert d["length_baseline_test"] == {"wins": 1, "losses": 0, "p_value": 0.5}
    assert d["beats_chance"] is False and d["beats_length_baseline"] is False


def test_a_max_length_beyond_the_positions_is_recorded_and_said(tmp_path, tiny_bert_dir, pairs_file, capsys):
    """metrics.json said max_length_capped_to_positions: false while it used 512 of 100000."""
    positions = json.loads((tiny_bert_dir / "config.json").read_text())["max_position_embeddings"]
    out = tmp_path / "out"
    argv = ["--model", str(tiny_bert_dir), "--data", str(pairs_file), "--output", str(out)]
    assert run_cli([*argv, "--max-length", "100000", "--no-report", "--quiet"]) == 0
    (info,) = json.loads((out / "metrics.json").read_text())["models"]
    assert info["max_length"] == positions and info["max_length_capped_to_positions"] is True
    assert f"reads at most {positions} tokens, not 100000" in capsys.readouterr().err
    assert run_cli([*argv, "--max-length", "64", "--no-report", "--quiet"]) == 0
    (info,) = json.loads((out / "metrics.json").read_text())["models"]
    assert info["max_length"] == 64 and info["max_length_capped_to_positions"] is False
    assert "reads at most" not in capsys.readouterr().err


def test_a_default_length_beyond_the_positions_is_recorded_without_a_note(
    tmp_path, tiny_llama_dir, pairs_file, capsys
):
    """The tiny Llama has 2048 positions and a 4096-token default: capped, and said false."""
    out = tmp_path / "out"
    argv = [
        "--model",
        f"base:{tiny_llama_dir}",
        "--data",
        str(pairs_file),
        "--output",
        str(out),
        "--limit",
        "2",
    ]
    assert run_cli([*argv, "--no-report", "--quiet"]) == 0
    (info,) = json.loads((out / "metrics.json").read_text())["models"]
    assert info["max_length"] == 2048 and info["max_length_capped_to_positions"] is True
    assert "reads at most" not in capsys.readouterr().err  # no one asked for more


def test_pairs_without_a_category_are_not_merged_with_a_category_so_named():
    """A real category "uncategorized" and the pairs with none were one row of the table."""
    from rewardforge.data.types import PreferencePair
    from rewardforge.evaluation.analysis import pair_categories

    def pair(category):
        return PreferencePair(prompt=[], chosen=[{"role": "assistant", "content": "a"}],
                              rejected=[{"role": "assistant", "content": "b"}], category=category)  # fmt: skip

    labels = pair_categories([pair("uncategorized"), pair(None), pair("math")])
    assert labels == ["uncategorized", "(uncategorized)", "math"]
    assert pair_categories([pair(None), pair("math")]) == ["uncategorized", "math"]


def test_eval_output_dash_is_refused(tmp_path, tiny_bert_dir, pairs_file, capsys, monkeypatch):
    """`--output -` made a folder named "-" (score's and bon's - is standard output)."""
    monkeypatch.chdir(tmp_path)
    assert run_cli(["--model", str(tiny_bert_dir), "--data", str(pairs_file), "--output", "-"]) == 2
    assert "- (standard output) cannot hold them" in capsys.readouterr().err and not (tmp_path / "-").exists()


def test_the_report_says_whether_the_model_beats_chance(single_run):
    """Only metrics.json had it: the report could say "beats the baseline" of a model at chance."""
    _, out, _ = single_run
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "beats chance (sign test)" in page and "beats baseline (sign test)" in page


def test_a_model_that_fails_to_load_leaves_no_empty_folder(tmp_path, pairs_file, capsys):
    """helper 80: eval created --output before loading, and a model that failed left it empty
    (docs/eval.md: a run that stops early leaves the folder as it was)."""
    missing, empty = tmp_path / "no_such_model", tmp_path / "empty_model"
    empty.mkdir()  # a folder with no model in it
    for model, out in ((missing, tmp_path / "a" / "eval"), (empty, tmp_path / "b" / "eval")):
        assert (
            run_cli(["--model", str(model), "--data", str(pairs_file), "--output", str(out), "--quiet"]) == 2
        )
        assert not out.exists() and not out.parent.exists()
    kept = tmp_path / "kept"
    kept.mkdir()  # a folder that was there stays
    assert (
        run_cli(["--model", str(missing), "--data", str(pairs_file), "--output", str(kept), "--quiet"]) == 2
    )
    assert kept.is_dir()


@pytest.mark.parametrize("quiet", [True, False])
def test_quiet_eval_shows_no_reading_count(tmp_path, tiny_bert_dir, pairs_file, monkeypatch, capsys, quiet):
    """helper 100: `--quiet` (no progress bars) still showed the data layer's row count."""
    import rewardforge.data.loader as loader

    bar = loader.tqdm
    monkeypatch.setattr(
        loader, "tqdm", lambda *a, **k: bar(*a, **{**k, "delay": 0, "mininterval": 0})
    )  # as if slow
    argv = ["--model", str(tiny_bert_dir), "--data", str(pairs_file), "--limit", "8", "--no-report"]
    argv += ["--output", str(tmp_path / "out"), *(["--quiet"] if quiet else [])]
    assert run_cli(argv) == 0
    assert ("reading" in capsys.readouterr().err) is not quiet
