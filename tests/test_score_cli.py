"""`rewardforge score`: streamed batch scoring of item files, bad input, atomic output."""

from __future__ import annotations

import argparse
import gzip
import json
import os
from pathlib import Path

import pytest

ITEMS = [
    {"id": "a", "prompt": "What is the capital of France?", "response": "Paris."},
    {"id": 7, "prompt": "What is the capital of France?", "response": "Maybe Lyon?"},
    {
        "prompt": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}],
        "response": "Hello!",
    },
    {"id": "d", "response": [{"role": "assistant", "content": "No prompt here."}]},
    {"id": "e", "prompt": "Tell me a joke.", "response": "Why did the chicken cross the road?"},
]


def run_cli(argv: list[str]) -> int:
    from rewardforge import cli

    return cli.main(argv)


def score_argv(model, src, out, *extra: str) -> list[str]:
    return ["score", "--model", str(model), "--input", str(src), "--output", str(out), *extra]


@pytest.fixture(scope="module")
def model(tiny_bert_dir):
    from rewardforge.inference import RewardModel

    return RewardModel.from_pretrained(str(tiny_bert_dir))


def write_jsonl(path: Path, rows: list) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def expected(model, item) -> float:
    from rewardforge.commands.score import parse_item

    prompt, response, _ = parse_item(item)
    return model.score(prompt, response)


def test_scores_match_reward_model_with_ids_and_locations(tiny_bert_dir, model, tmp_path, capsys):
    src = write_jsonl(tmp_path / "items.jsonl", ITEMS)
    out = tmp_path / "out" / "scores.jsonl"
    rc = run_cli(
        ["score", "--model", str(tiny_bert_dir), "--input", str(src), "--output", str(out), "--no-progress"]
    )
    assert rc == 0
    rows = read_jsonl(out)
    assert [r.get("id") for r in rows] == ["a", 7, None, "d", "e"]
    assert rows[2]["location"] == "line 3" and "id" not in rows[2]
    assert [r["score"] for r in rows] == pytest.approx([expected(model, it) for it in ITEMS], abs=1e-5)
    assert "5 items scored" in capsys.readouterr().err
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "scores.jsonl",
        "scores.jsonl.summary.json",
    ]  # no temp file


@pytest.mark.parametrize("fmt", ["jsonl.gz", "csv", "parquet"])
def test_other_input_formats(tiny_bert_dir, model, tmp_path, fmt):
    rows = [{"id": f"r{i}", "prompt": "Q?", "response": f"answer {i}"} for i in range(4)]
    src = tmp_path / f"items.{fmt}"
    if fmt == "jsonl.gz":
        with gzip.open(src, "wt") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    elif fmt == "csv":
        src.write_text(
            "id,prompt,response\n" + "".join(f"{r['id']},{r['prompt']},{r['response']}\n" for r in rows)
        )
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), src)
    out = tmp_path / "s.jsonl"
    assert run_cli(score_argv(tiny_bert_dir, src, out, "--no-progress")) == 0
    got = read_jsonl(out)
    assert [r["id"] for r in got] == ["r0", "r1", "r2", "r3"]
    assert [r["score"] for r in got] == pytest.approx(
        [model.score("Q?", f"answer {i}") for i in range(4)], abs=1e-5
    )


def test_trl_and_sharegpt_item_formats_score_like_ours(tiny_bert_dir, model, tmp_path):
    """TRL's prompt-completion and conversation formats, ShareGPT and an HH transcript give the
    score of the same conversation written as prompt + response."""
    user, reply = {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}
    rows = [
        {"prompt": [user], "completion": [reply]},
        {"prompt": "Hi", "completion": "Hello!"},
        {"messages": [user, reply]},
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]},
        {"text": "\n\nHuman: Hi\n\nAssistant: Hello!"},
        {"prompt": "Hi", "messages": [user, reply]},  # the prompt is already the first turn: once
        {"prompt": [user], "text": "\n\nHuman: Hi\n\nAssistant: Hello!"},
    ]
    src = write_jsonl(tmp_path / "items.jsonl", rows)
    out = tmp_path / "s.jsonl"
    argv = score_argv(tiny_bert_dir, src, out, "--no-progress")
    assert run_cli(argv) == 0
    want = model.score([user], [reply])
    assert [r["score"] for r in read_jsonl(out)] == pytest.approx([want] * len(rows), abs=1e-5)


def test_a_pair_file_points_to_eval(tiny_bert_dir, tmp_path, capsys):
    src = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "Q", "chosen": "a", "rejected": "b"}])
    argv = score_argv(tiny_bert_dir, src, tmp_path / "s.jsonl")
    assert run_cli(argv) == 2
    assert "looks like a preference pair; `rewardforge eval" in capsys.readouterr().err


def test_a_pair_file_with_messages_beside_chosen_points_to_eval(tiny_bert_dir, tmp_path, capsys):
    """helper 75: an UltraFeedback-binarized file (its `messages` is the chosen conversation)
    was scored on `messages` alone, the pairs' sides unread and nothing said."""
    chat = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "a"}]
    row = {"prompt": "Q", "chosen": chat, "rejected": chat[:1] + [{"role": "assistant", "content": "b"}]}
    src = write_jsonl(tmp_path / "uf.jsonl", [{**row, "messages": chat}])
    assert run_cli(score_argv(tiny_bert_dir, src, tmp_path / "s.jsonl")) == 2
    err = capsys.readouterr().err
    assert (
        "field 'messages': this looks like a preference pair ('chosen' and 'rejected' beside 'messages')"
        in err
    )
    # a flag named chosen is no side of a pair; nor is one side alone, or an empty one (helper 79)
    for i, extra in enumerate(
        [{"chosen": True}, {"chosen": "A"}, {"rejected": ""}, {"chosen": [], "rejected": "b"}]
    ):
        items = write_jsonl(tmp_path / f"one{i}.jsonl", [{"prompt": "Q", "response": "a", **extra}])
        assert run_cli(score_argv(tiny_bert_dir, items, tmp_path / f"f{i}.jsonl")) == 0, extra


@pytest.mark.parametrize(
    ("row", "where"),
    [
        ({"id": "x", "prompt": "p", "response": 5}, "line 3: field 'response'"),
        ({"id": "x", "prompt": "p"}, "line 3: field 'response': missing"),
        ({"id": "x", "response": [{"role": "robot", "content": "hi"}]}, "line 3: field 'response[0].role'"),
        ({"id": "x", "prompt": 3, "response": "r"}, "line 3: field 'prompt'"),
        ({"id": "x", "response": "r \ud800"}, "line 3: field 'response': not valid Unicode"),
        (
            {"id": "x", "prompt": [{"role": ["user"], "content": "q"}], "response": "r"},
            "line 3: field 'prompt[0].role'",
        ),
        ({"id": 1.5, "response": "r"}, "line 3: field 'id'"),
        ("[1, 2]", "line 3: record is not a JSON object"),
        # what training refuses, in training's words
        ({"id": "x", "response": ""}, "line 3: field 'response': empty response"),
        ({"id": "x", "response": " \u200b\n"}, "line 3: field 'response': empty response"),
        (
            {
                "id": "x",
                "response": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}],
            },
            "line 3: field 'response': the response ends with a 'user' message; it must end with the assistant's reply",
        ),
        ("{not json", "line 3: malformed JSON"),
    ],
)
def test_invalid_item_exits_2_naming_file_line_field(tiny_bert_dir, tmp_path, capsys, row, where):
    src = write_jsonl(tmp_path / "items.jsonl", [ITEMS[0], ITEMS[1], row, ITEMS[4]])
    out = tmp_path / "scores.jsonl"
    out.write_text("previous run\n")
    rc = run_cli(
        ["score", "--model", str(tiny_bert_dir), "--input", str(src), "--output", str(out), "--no-progress"]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert f"{src}:{where}" in err and "Traceback" not in err
    assert out.read_text() == "previous run\n"  # untouched: output is only ever replaced whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.jsonl", "scores.jsonl"]


def test_skip_invalid_writes_rejects(tiny_bert_dir, model, tmp_path, capsys):
    rows = [ITEMS[0], {"id": "bad", "response": None}, "{oops", ITEMS[4], {"id": "b2", "response": {"x": 1}}]
    src = write_jsonl(tmp_path / "items.jsonl", rows)
    out = tmp_path / "scores.jsonl"
    argv = score_argv(tiny_bert_dir, src, out, "--skip-invalid")
    assert run_cli([*argv, "--no-progress"]) == 0
    got = read_jsonl(out)
    assert [r["id"] for r in got] == ["a", "e"]
    assert [r["score"] for r in got] == pytest.approx(
        [expected(model, ITEMS[0]), expected(model, ITEMS[4])], abs=1e-5
    )
    rejects = read_jsonl(tmp_path / "scores.jsonl.rejected.jsonl")
    assert [(r["location"], r["field"]) for r in rejects] == [
        ("line 2", "response"),
        ("line 3", None),
        ("line 5", "response"),  # an object with no message keys: not one message
    ]
    assert rejects[0]["row"] == {"id": "bad", "response": None} and rejects[1]["row"] == "{oops"
    assert all(r["source"] == str(src) and r["reason"] for r in rejects)
    err = capsys.readouterr().err
    assert "2 items scored" in err and "3 rejected" in err


def test_all_invalid_or_empty_is_an_error(tiny_bert_dir, tmp_path, capsys):
    src = write_jsonl(tmp_path / "bad.jsonl", [{"x": 1}, {"y": 2}])
    out = tmp_path / "o.jsonl"
    argv = ["score", "--model", str(tiny_bert_dir), "--output", str(out), "--no-progress"]
    assert run_cli([*argv, "--input", str(src), "--skip-invalid"]) == 2
    assert "no valid items: all 2 are invalid" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert run_cli([*argv, "--input", str(empty)]) == 2
    assert "empty" in capsys.readouterr().err
    assert run_cli([*argv, "--input", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not out.exists()


def test_streams_in_chunks(model, tmp_path):
    """Items are scored chunk by chunk (bounded memory); chunking does not change any score."""
    from rewardforge.commands.score import score_file

    rows = [{"id": i, "prompt": "Q?", "response": "word " * (i % 7 + 1)} for i in range(23)]
    src = write_jsonl(tmp_path / "items.jsonl", rows)
    seen: list[int] = []

    class Spy:
        def __init__(self, inner):
            self.inner = inner

        def tokenize(self, prompt, response):
            return self.inner.tokenize(prompt, response)

        def score_token_ids(self, seqs, batch_size):
            seen.append(len(seqs))
            return self.inner.score_token_ids(seqs, batch_size=batch_size)

    args = argparse.Namespace(batch_size=4, chunk_size=5, no_progress=True)
    stats = score_file(Spy(model), str(src), tmp_path / "a.jsonl", None, args)
    assert stats["scored"] == 23 and seen == [5, 5, 5, 5, 3]
    whole = argparse.Namespace(batch_size=64, chunk_size=1000, no_progress=True)
    score_file(model, str(src), tmp_path / "b.jsonl", None, whole)
    a, b = read_jsonl(tmp_path / "a.jsonl"), read_jsonl(tmp_path / "b.jsonl")
    assert [r["id"] for r in a] == list(range(23))
    assert [r["score"] for r in a] == pytest.approx([r["score"] for r in b], abs=1e-5)


def test_usage_errors(tiny_bert_dir, tmp_path, capsys):
    src = write_jsonl(tmp_path / "items.jsonl", ITEMS)
    base = ["score", "--model", str(tiny_bert_dir), "--input", str(src)]
    assert run_cli([*base, "--output", str(src)]) == 2
    assert "--output is the input file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # refused while parsing the arguments
        run_cli([*base, "--output", str(tmp_path / "o.jsonl"), "--batch-size", "0"])
    assert exit_info.value.code == 2
    assert "argument --batch-size: expected an integer >= 1, got 0" in capsys.readouterr().err
    assert run_cli([*base, "--output", str(tmp_path / "o.jsonl"), "--rejects", "r.jsonl"]) == 2


@pytest.mark.parametrize("target", ["input", "output"])
def test_rejects_never_replaces_the_input_or_the_scores(tmp_path, capsys, target):
    """--rejects naming the input (or --output) used to replace it with the rejected rows."""
    src = write_jsonl(tmp_path / "items.jsonl", [ITEMS[0], {"id": "bad"}])
    before = src.read_text()
    out = tmp_path / "scores.jsonl"
    rejects = src if target == "input" else out
    spelled = tmp_path / "sub" / ".." / rejects.name  # compared as resolved paths
    (tmp_path / "sub").mkdir()
    argv = ["score", "--model", str(tmp_path / "never-loaded"), "--input", str(src), "--output", str(out)]
    assert run_cli([*argv, "--skip-invalid", "--rejects", str(spelled)]) == 2
    err = capsys.readouterr().err
    want = "is the input file" if target == "input" else "is the --output file"
    assert f"--rejects {spelled} {want}" in err and "Traceback" not in err
    assert src.read_text() == before and not out.exists()


def test_output_never_replaces_a_gguf_model(tmp_path, capsys):
    src = write_jsonl(tmp_path / "items.jsonl", ITEMS)
    model = tmp_path / "rm.gguf"
    model.write_bytes(b"GGUF")
    assert run_cli(["score", "--model", str(model), "--input", str(src), "--output", str(model)]) == 2
    assert f"--output {model} is the --model file" in capsys.readouterr().err
    assert model.read_bytes() == b"GGUF"


def test_unwritable_output_is_refused_before_scoring(tmp_path, capsys, monkeypatch):
    """Checked before the model is even loaded (a folder used to fail after all the scoring)."""
    src = write_jsonl(tmp_path / "items.jsonl", ITEMS)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    base = ["score", "--model", str(tmp_path / "never-loaded"), "--input", str(src), "--no-progress"]
    assert run_cli([*base, "--output", str(tmp_path / "adir")]) == 2
    assert f"--output {tmp_path / 'adir'} is a folder; give a file name" in capsys.readouterr().err
    assert run_cli([*base, "--output", str(tmp_path / "afile" / "s.jsonl")]) == 2
    assert f"{tmp_path / 'afile'} is not a folder" in capsys.readouterr().err
    rejects = tmp_path / "adir"
    assert (
        run_cli([*base, "--output", str(tmp_path / "o.jsonl"), "--skip-invalid", "--rejects", str(rejects)])
        == 2
    )
    assert f"--rejects {rejects} is a folder" in capsys.readouterr().err

    import errno
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    assert run_cli([*base, "--output", str(tmp_path / "new" / "s.jsonl")]) == 2
    err = capsys.readouterr().err
    assert f"cannot write in {tmp_path}: Read-only file system" in err and "Traceback" not in err
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("device", ["bogus", "cuda:7"])
def test_unknown_or_missing_device_is_a_usage_error(tiny_bert_dir, tmp_path, capsys, device):
    src = write_jsonl(tmp_path / "items.jsonl", ITEMS)
    argv = score_argv(tiny_bert_dir, src, tmp_path / "o.jsonl")
    assert run_cli([*argv, "--device", device]) == 2
    err = capsys.readouterr().err
    assert f"--device {device!r}" in err and "available here: cpu" in err and "Traceback" not in err


def test_non_finite_scores_are_a_clean_error(tiny_bert_dir, tmp_path, capsys):
    """A model whose outputs are NaN: exit 2 naming the item (was a RuntimeError traceback)."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "nan_model"
    shutil.copytree(tiny_bert_dir, broken)
    weights = load_file(broken / "model.safetensors")
    weights["classifier.bias"] = torch.full_like(weights["classifier.bias"], float("nan"))
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    src = write_jsonl(tmp_path / "items.jsonl", ITEMS)
    out = tmp_path / "o.jsonl"
    argv = ["score", "--model", str(broken), "--input", str(src), "--output", str(out), "--no-progress"]
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert f"non-finite score (nan) for {src}:line 1" in err and "Traceback" not in err
    assert not out.exists()


def test_a_prompt_a_whole_conversation_does_not_start_with_is_invalid(tiny_bert_dir, tmp_path, capsys):
    conversation = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    src = write_jsonl(tmp_path / "items.jsonl", [{"prompt": "Bye", "messages": conversation}])
    assert run_cli(score_argv(tiny_bert_dir, src, tmp_path / "s.jsonl")) == 2
    err = capsys.readouterr().err
    assert "line 1" in err and "prompt" in err and "does not start with 'prompt'" in err


def test_output_never_writes_among_the_model_files(tiny_bert_dir, tmp_path, capsys):
    """--output MODEL/config.json used to replace the model's own config."""
    import shutil

    model = tmp_path / "rm"
    shutil.copytree(tiny_bert_dir, model)
    before = (model / "config.json").read_bytes()
    src = write_jsonl(tmp_path / "items.jsonl", ITEMS)
    for target in (model / "config.json", model / "scores.jsonl", model / "." / "config.json"):
        assert run_cli(score_argv(model, src, target)) == 2
        assert "would write among the files of the --model folder" in capsys.readouterr().err
    assert (model / "config.json").read_bytes() == before
    for _ in range(2):  # a plain subfolder, and again into it (the rerun was refused)
        assert run_cli(score_argv(model, src, model / "scored" / "s.jsonl", "--no-progress")) == 0
    checkpoint = model / "checkpoint-3"
    shutil.copytree(tiny_bert_dir, checkpoint)  # a model folder too
    assert run_cli(score_argv(model, src, checkpoint / "s.jsonl")) == 2


@pytest.mark.parametrize("option", ["--output", "--input", "--model", "--rejects"])
def test_an_empty_path_is_a_usage_error(tmp_path, capsys, option):
    argv = {"--model": "m", "--input": "i.jsonl", "--output": "o.jsonl", "--rejects": "r.jsonl"} | {
        option: ""
    }
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["score", *[x for kv in argv.items() for x in kv], "--skip-invalid"])
    assert exit_info.value.code == 2
    assert f"argument {option}: expected a path, got an empty string" in capsys.readouterr().err


def test_a_model_without_a_reward_head_is_refused_not_scored_at_random(minilm_dir, tmp_path, capsys):
    """all-MiniLM-L6-v2 as published has no score head: it was scored with a fresh random one."""
    src = write_jsonl(tmp_path / "items.jsonl", ITEMS)
    assert run_cli(score_argv(minilm_dir, src, tmp_path / "s.jsonl")) == 2
    err = capsys.readouterr().err
    assert "has no trained reward head" in err and "Traceback" not in err
    assert not (tmp_path / "s.jsonl").exists()


@pytest.mark.parametrize(
    "prompt, same_as",
    [("   ", None), ("\n\nHuman: hi\n\nAssistant:", [{"role": "user", "content": "hi"}])],
)
def test_python_and_server_read_prompt_strings_as_score_does(model, prompt, same_as):
    """A blank prompt or an HH transcript: `score` read them as training does, while
    RewardModel.score (and so the server) wrapped the raw string as one user turn."""
    from rewardforge.commands.score import parse_item

    item = {"prompt": prompt, "response": "hello there"}
    want = model.score(same_as, "hello there")
    assert model.score(prompt, "hello there") == pytest.approx(want, abs=1e-6)
    assert expected(model, item) == pytest.approx(want, abs=1e-6)
    assert parse_item(item)[0] == (same_as or [])


def test_empty_csv_ids_are_located_and_float_ids_read_as_integers(tiny_bert_dir, tmp_path):
    src = tmp_path / "items.csv"
    src.write_text("id,prompt,response\n,Hi,Hello!\nx,Hi,Hm.\n", encoding="utf-8")
    out = tmp_path / "s.jsonl"
    assert run_cli(score_argv(tiny_bert_dir, src, out, "--no-progress")) == 0
    assert [r.get("id", r.get("location")) for r in read_jsonl(out)] == ["row 1", "x"]
    floats = write_jsonl(tmp_path / "f.jsonl", [{"id": 5.0, "response": "a"}, {"id": None, "response": "b"}])
    assert run_cli(score_argv(tiny_bert_dir, floats, out, "--no-progress")) == 0  # Parquet int ids with nulls
    assert [r.get("id", r.get("location")) for r in read_jsonl(out)] == [5, "line 2"]


def test_a_max_length_with_no_room_for_a_reply_is_refused(tiny_bert_dir, tmp_path, capsys):
    """--max-length below the format's own tokens kept them and cut every reply away: all items
    got one score, exit 0."""
    src = write_jsonl(tmp_path / "items.jsonl", ITEMS)
    assert run_cli(score_argv(tiny_bert_dir, src, tmp_path / "s.jsonl", "--max-length", "3")) == 2
    assert "leaves no room for a reply" in capsys.readouterr().err


def test_sigterm_leaves_no_temporary_file(tiny_bert_dir, tmp_path):
    """SIGTERM used to kill `score` before it removed its hidden temporary output."""
    import signal
    import subprocess
    import sys
    import time

    src = write_jsonl(
        tmp_path / "items.jsonl", [{"response": f"reply number {i} " * 20} for i in range(50000)]
    )
    out = tmp_path / "o.jsonl"
    cmd = [sys.executable, "-m", "rewardforge.cli", *score_argv(tiny_bert_dir, src, out, "--no-progress")]
    proc = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".o.jsonl*")):  # scoring has begun: the temporary file exists
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 128 + signal.SIGTERM
    assert "terminated" in proc.stderr.read()
    assert not out.exists() and not list(tmp_path.glob(".o.jsonl*"))


def test_a_prompt_beside_a_whole_conversation_is_read_once_everywhere(model):
    """score read it once; RewardModel.score (and so the server) put it in twice."""
    conversation = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    alone = model.score(None, conversation)
    for prompt in ("Hi", " Hi ", [{"role": "user", "content": "Hi"}]):
        assert model.score(prompt, conversation) == pytest.approx(alone, abs=1e-6)
        assert expected(model, {"prompt": prompt, "response": conversation}) == pytest.approx(alone, abs=1e-6)
    with pytest.raises(ValueError, match="does not start with the prompt"):
        model.score("Bye", conversation)


def test_a_response_opening_with_a_tool_result_continues_the_prompt(tiny_bert_dir, model, tmp_path):
    """Training reads it; RewardModel, score and serve took it for a whole conversation that did
    not start with the prompt and refused it."""
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"name": "weather", "arguments": {"city": "Oslo"}}],
    }
    prompt = [{"role": "user", "content": "Weather in Oslo?"}, call]
    response = [{"role": "tool", "content": "sunny"}, {"role": "assistant", "content": "It is sunny."}]
    expected_score = model.score(prompt, response)
    assert expected_score == pytest.approx(model.score([*prompt, response[0]], response[1:]), abs=1e-6)
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": prompt, "response": response}])
    out = tmp_path / "out.jsonl"
    assert run_cli(score_argv(tiny_bert_dir, src, out)) == 0
    assert read_jsonl(out)[0]["score"] == pytest.approx(expected_score, abs=1e-5)


@pytest.mark.parametrize(
    "response, message",
    [
        ([], "empty response"),
        ([{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}], "ends with a 'user'"),
    ],
)
def test_reward_model_refuses_what_score_and_serve_refuse(model, response, message):
    """RewardModel scored an empty message list (the prompt alone) and a reply ending with a user turn."""
    with pytest.raises(ValueError, match=message):
        model.score("Hi", response)
    with pytest.raises(ValueError, match="needs a 'response'"):
        model.score_batch([{"prompt": "x"}])


def test_cuts_past_max_length_are_said_once_each(tiny_bert_dir, tmp_path, capsys):
    """score cut long items without a word (eval counts them), and a --max-length past the
    positions was said twice: as our note and as a Python UserWarning (helper rounds 64, 65)."""
    rows = [{"prompt": "q " * 300, "response": "a"}, {"prompt": "q", "response": "word " * 700}, ITEMS[0]]
    src = write_jsonl(tmp_path / "long.jsonl", rows)
    assert (
        run_cli(
            [*score_argv(tiny_bert_dir, src, tmp_path / "o.jsonl", "--max-length", "5000"), "--no-progress"]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "UserWarning" not in err and err.count("reads at most 512 tokens, not 5000") == 1
    assert "1 item(s) had their prompt cut (oldest turns first) and 1 their response cut" in err


def test_hh_transcripts_are_read_as_the_api_and_training_read_them(tiny_llama_dir, tmp_path):
    """score's `response` kept a whole HH transcript raw where RewardModel.score reads its turns,
    and its `text` refused one quoted after prose (helper round 67)."""
    from rewardforge.inference import RewardModel

    rm = RewardModel.from_pretrained(tiny_llama_dir)
    hh = "\n\nHuman: What is the capital of France?\n\nAssistant: Paris."
    quoted = "Sure, here is a dialogue:\n\nHuman: hi\n\nAssistant: hello"
    rows = [{"id": "r", "response": hh}, {"id": "t", "text": hh}, {"id": "q", "text": quoted}]
    src = write_jsonl(tmp_path / "hh.jsonl", rows)
    assert run_cli([*score_argv(tiny_llama_dir, src, tmp_path / "o.jsonl"), "--no-progress"]) == 0
    got = {r["id"]: r["score"] for r in read_jsonl(tmp_path / "o.jsonl")}
    want = rm.score([{"role": "user", "content": "What is the capital of France?"}], "Paris.")
    assert got["r"] == pytest.approx(want, abs=1e-5) and got["t"] == pytest.approx(want, abs=1e-5)
    assert got["q"] == pytest.approx(rm.score(None, quoted), abs=1e-5)


def test_an_output_that_would_replace_a_models_file_is_refused(tmp_path, tiny_bert_dir, capsys):
    """helper 70: `score --output OTHER_MODEL/config.json` replaced that model's config with scores
    (exit 0; the model no longer loaded). A new file beside a model is fine."""
    import shutil

    other = tmp_path / "other_model"
    shutil.copytree(tiny_bert_dir, other)
    before = (other / "config.json").read_bytes()
    src = write_jsonl(tmp_path / "items.jsonl", ITEMS)
    assert run_cli(score_argv(tiny_bert_dir, src, other / "config.json")) == 2
    assert "would replace config.json of the model in" in capsys.readouterr().err
    assert (other / "config.json").read_bytes() == before
    assert run_cli(score_argv(tiny_bert_dir, src, other / "scores.jsonl")) == 0


def test_a_run_writes_its_summary_beside_the_scores(tmp_path, tiny_bert_dir, capsys):
    """helper 70: score was the one command that wrote no record of its options and figures."""
    import statistics

    rows = [*ITEMS, {"prompt": "q", "response": "   "}]  # the last is invalid (empty response)
    src = write_jsonl(tmp_path / "items.jsonl", rows)
    out = tmp_path / "s.jsonl"
    assert run_cli(score_argv(tiny_bert_dir, src, out, "--skip-invalid", "--batch-size", "2")) == 0
    assert "summary -> " in capsys.readouterr().err
    summary = json.loads((tmp_path / "s.jsonl.summary.json").read_text())
    scores = [r["score"] for r in read_jsonl(out)]
    assert summary["counts"] == {
        "records": len(rows), "scored": len(ITEMS), "rejected": 1, "prompt_cut": 0, "response_cut": 0,
        "reasoning_not_scored": {},
    }  # fmt: skip
    assert summary["scores"]["mean"] == pytest.approx(statistics.fmean(scores), abs=1e-9)
    assert summary["scores"]["std"] == pytest.approx(statistics.pstdev(scores), abs=1e-6)
    assert (summary["scores"]["min"], summary["scores"]["max"]) == (min(scores), max(scores))
    assert summary["options"]["batch_size"] == 2 and summary["model"]["format"]["kind"] == "plain"
    assert summary["command"][:2] == ["rewardforge", "score"] and summary["input"] == str(src)
    named = tmp_path / "run.json"
    assert run_cli(score_argv(tiny_bert_dir, src, "-", "--summary", str(named), "--skip-invalid",
                              "--rejects", str(tmp_path / "r.jsonl"))) == 0  # fmt: skip
    assert json.loads(named.read_text())["counts"]["scored"] == len(ITEMS)
    assert run_cli(score_argv(tiny_bert_dir, src, tmp_path / "t.jsonl", "--summary", str(src))) == 2
    err = capsys.readouterr().err
    assert f"--summary {src} is the input file" in err


def test_a_source_that_stops_reading_is_said_not_only_rejected(tmp_path, tiny_bert_dir, capsys):
    """helper 72: a CSV syntax error on row 3 of 1003 with --skip-invalid: "2 scored; 1 rejected",
    exit 0, and the 1000 rows after it unread without a word outside the rejects file."""
    src = tmp_path / "items.csv"
    rows = ["prompt,response", "p1,r1", "p2,r2", 'p3,"r3"x', *[f"p{i},r{i}" for i in range(4, 50)]]
    src.write_text("\n".join(rows) + "\n")
    out = tmp_path / "s.jsonl"
    assert run_cli(score_argv(tiny_bert_dir, src, out, "--skip-invalid")) == 0
    err = capsys.readouterr().err
    assert "warning: reading" in err and "stopped at row 3" in err and "were not scored" in err
    summary = json.loads((tmp_path / "s.jsonl.summary.json").read_text())
    assert summary["stopped_reading"].startswith("row 3: malformed CSV at line 4")
    assert "lines 4-50 (the rest of the file)" in summary["stopped_reading"]


def test_model_files_of_every_kind_are_not_replaced_and_the_default_summary_is_named(
    tmp_path, tiny_bert_dir, capsys
):
    """helper 72: sentencepiece.bpe.model, an index file, chat_template.json and rng_state.pth
    of a model folder were replaced; a clash with the default summary named --summary."""
    import shutil

    other = tmp_path / "other_model"
    shutil.copytree(tiny_bert_dir, other)
    src = write_jsonl(tmp_path / "items.jsonl", ITEMS)
    for name in (
        "sentencepiece.bpe.model",
        "pytorch_model.bin.index.json",
        "chat_template.json",
        "rng_state.pth",
        # helper 90: a trained run's records (its metrics, the config --config reads again)
        "metrics.json",
        "train_metrics.jsonl",
        "run_config.json",
    ):
        (other / name).write_text("{}")
        assert run_cli(score_argv(tiny_bert_dir, src, other / name)) == 2, name
        assert f"would replace {name} of the model" in capsys.readouterr().err
        assert (other / name).read_text() == "{}"
    out = tmp_path / "o.jsonl"
    assert (
        run_cli(score_argv(tiny_bert_dir, src, out, "--skip-invalid", "--rejects", f"{out}.summary.json"))
        == 2
    )
    assert "the summary file (default: OUTPUT.summary.json)" in capsys.readouterr().err


def test_pandas_default_json_of_items_and_prompts_is_read_as_columns(tmp_path, tiny_bert_dir):
    """helper 74: pandas' to_json() was read as columns only for pairs; items to score and
    prompts to answer were refused ("got an object with keys 0, 1, 2")."""
    import pandas as pd

    from rewardforge.rlhf.prompts import read_prompts

    items = tmp_path / "items.json"
    pd.DataFrame({"prompt": ["a?", "b?", "c?"], "response": ["x", "y", "z"]}).to_json(items)
    out = tmp_path / "s.jsonl"
    assert run_cli(score_argv(tiny_bert_dir, items, out)) == 0
    assert [r["location"] for r in read_jsonl(out)] == ["row 1", "row 2", "row 3"]
    prompts = tmp_path / "prompts.json"
    pd.DataFrame({"prompt": ["What is 2+2?", "Name a colour."], "answer": ["4", "red"]}).to_json(prompts)
    records = read_prompts(prompts)
    assert [r["answer"] for r in records] == ["4", "red"]
    assert records[0]["prompt"] == [{"role": "user", "content": "What is 2+2?"}]


def test_score_reads_a_reply_to_an_hh_transcript_prompt_as_training_does(tmp_path, tiny_llama_dir):
    """helper 87: `score` kept the space of " good answer" after "...Assistant:" (training and
    RewardModel drop it), so a decoder scored another text."""
    question = "\n\nHuman: hi there\n\nAssistant:"
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": question, "response": " good answer"},
                                              {"prompt": question, "response": "good answer"}])  # fmt: skip
    out = tmp_path / "out.jsonl"
    assert run_cli(score_argv(tiny_llama_dir, src, out)) == 0
    first, second = (r["score"] for r in read_jsonl(out))
    assert first == second


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_write_the_disk_refuses_names_the_file(tmp_path, tiny_bert_dir, capsys):
    """Helper 90: a full disk was "error: [Errno 28] No space left on device", naming no file."""
    src = write_jsonl(tmp_path / "items.jsonl", ITEMS)
    summary = tmp_path / "s.json"
    assert run_cli(score_argv(tiny_bert_dir, src, "/dev/full", "--summary", str(summary))) == 1
    err = capsys.readouterr().err
    assert "No space left on device: '/dev/full'" in err and "Traceback" not in err


def test_an_eval_folders_results_are_not_replaced(tmp_path, tiny_bert_dir, capsys):
    """Helper 93: `score --output EVAL/metrics.json` (or scores.jsonl) replaced an evaluation's
    results without a word: only a model's files were protected."""
    src = write_jsonl(tmp_path / "items.jsonl", ITEMS)
    ev = tmp_path / "ev"
    ev.mkdir()
    for name in ("metrics.json", "scores.jsonl", "eval_config.json"):
        (ev / name).write_text("{}")
    for name in ("metrics.json", "scores.jsonl"):
        assert run_cli(score_argv(tiny_bert_dir, src, ev / name)) == 2, name
        assert f"would replace {name} of the evaluation" in capsys.readouterr().err
        assert (ev / name).read_text() == "{}"
    assert run_cli(score_argv(tiny_bert_dir, src, ev / "new.jsonl")) == 0  # a new file beside them is fine


def test_score_says_how_much_reasoning_it_left_out(tiny_bert_dir, tmp_path, capsys):
    """helper 97: a reasoning field vanished without a word; training names the count, so does score."""
    prompt = [{"role": "user", "content": "Is it?"}]
    rows = [
        {"prompt": prompt, "response": [{"role": "assistant", "content": "Yes.", "reasoning_content": "hm"}]},
        {"prompt": prompt, "response": [{"role": "assistant", "content": "Yes."}]},
    ]
    src, out = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    assert run_cli(score_argv(tiny_bert_dir, src, out)) == 0
    scores = [json.loads(line)["score"] for line in out.read_text().splitlines()]
    assert scores[0] == pytest.approx(scores[1], abs=1e-6)  # the reasoning is no part of the text
    assert (
        "reasoning not scored, only each turn's visible text: 1 reasoning_content" in capsys.readouterr().err
    )
    summary = json.loads((tmp_path / "out.jsonl.summary.json").read_text())
    assert summary["counts"]["reasoning_not_scored"] == {"reasoning_content": 1}
