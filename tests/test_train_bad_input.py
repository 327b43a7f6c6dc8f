"""Every kind of bad input stops `rewardforge train` with exit code 2 and one clear line."""

import gzip
import json

import pytest

from rewardforge.cli import main

GOOD = {"prompt": "q", "chosen": "good answer", "rejected": "bad answer"}


def jsonl(lines):
    return "\n".join(lines) + "\n"


CASES = {
    "malformed_json": (".jsonl", jsonl([json.dumps(GOOD), '{"prompt": "q", "chosen": '])),
    "not_an_object": (".jsonl", jsonl([json.dumps(GOOD), "[1, 2, 3]"])),
    "missing_field": (".jsonl", jsonl([json.dumps(GOOD), json.dumps({"prompt": "q", "chosen": "a"})])),
    "non_string_field": (
        ".jsonl",
        jsonl([json.dumps(GOOD), json.dumps({"prompt": "q", "chosen": 5, "rejected": "b"})]),
    ),
    "empty_response": (
        ".jsonl",
        jsonl([json.dumps(GOOD), json.dumps({"prompt": "q", "chosen": "  ", "rejected": "b"})]),
    ),
    "identical": (
        ".jsonl",
        jsonl([json.dumps(GOOD), json.dumps({"prompt": "q", "chosen": "same", "rejected": "same"})]),
    ),
    "unknown_role": (
        ".jsonl",
        jsonl(
            [
                json.dumps(
                    {
                        "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                        "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}],
                    }
                ),
                json.dumps(
                    {
                        "chosen": [{"role": "wizard", "content": "q"}, {"role": "assistant", "content": "a"}],
                        "rejected": [
                            {"role": "wizard", "content": "q"},
                            {"role": "assistant", "content": "b"},
                        ],
                    }
                ),
            ]
        ),
    ),
}


def write_case(tmp_path, name):
    suffix, text = CASES[name]
    path = tmp_path / f"{name}{suffix}"
    path.write_text(text, encoding="utf-8")
    return path


def run(path, tmp_path, capsys, *extra):
    code = main(["train", "--data", str(path), "--output", str(tmp_path / "out"), "--max-steps", "1", *extra])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_row_exits_2_naming_file_and_line(name, tmp_path, capsys):
    path = write_case(tmp_path, name)
    code, err = run(path, tmp_path, capsys)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err  # one line, no traceback
    assert "Traceback" not in err and path.name in err and "line 2" in err


def test_undecodable_bytes(tmp_path, capsys):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(
        json.dumps(GOOD).encode()
        + b"\n"
        + '{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}'.encode("latin-1")
        + b"\n"
    )
    code, err = run(path, tmp_path, capsys)
    assert code == 2 and "latin1.jsonl" in err and "line 2" in err


def test_truncated_gzip(tmp_path, capsys):
    data = gzip.compress((json.dumps(GOOD) + "\n").encode() * 200)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    code, err = run(path, tmp_path, capsys)
    assert code == 2 and "cut.jsonl.gz" in err


def test_empty_file(tmp_path, capsys):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    code, err = run(path, tmp_path, capsys)
    assert code == 2 and "empty.jsonl" in err


def test_missing_file(tmp_path, capsys):
    code, err = run(tmp_path / "nope.jsonl", tmp_path, capsys)
    assert code == 2 and "nope.jsonl" in err


def test_bad_model_path(tmp_path, capsys, small_data):
    code = main(
        ["train", "--model", str(tmp_path), "--data", str(small_data[0]), "--output", str(tmp_path / "o")]
    )
    assert code == 2 and "config.json" in capsys.readouterr().err


def test_skip_invalid_trains_and_writes_rejects(tmp_path, capsys, tiny_bert_dir):
    rows = [json.dumps({"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"}) for i in range(8)]
    rows.insert(3, '{"broken": ')
    rows.insert(6, json.dumps({"prompt": "q", "chosen": "same", "rejected": "same"}))
    path = tmp_path / "mixed.jsonl"
    path.write_text(jsonl(rows))
    out = tmp_path / "out"
    code = main(
        [
            "train",
            "--model",
            str(tiny_bert_dir),
            "--data",
            str(path),
            "--skip-invalid",
            "--output",
            str(out),
            "--max-steps",
            "1",
            "--batch-size",
            "2",
            "--save_strategy",
            "no",
            "--disable_tqdm",
            "true",
        ]
    )
    assert code == 0
    rejects = [json.loads(line) for line in (out / "rejected_rows.jsonl").read_text().splitlines()]
    assert len(rejects) == 2 and {r["location"] for r in rejects} == {"line 4", "line 7"}
    meta = json.loads((out / "rewardforge.json").read_text())
    assert meta["data"]["skipped_invalid"]["count"] == 2 and meta["data"]["train"]["pairs"] == 8
    said = capsys.readouterr().out
    assert "skipped 2 invalid row(s)" in said and "1 x identical to 'chosen'" in said
    assert "1 x malformed JSON" in said and "rejected_rows.jsonl" in said


@pytest.mark.parametrize(
    "option",
    [
        ["--columns", "answer=question"],
        ["--columns", "prompt=q,chosen=a,rejected=a"],
        ["--processor", "no_such_module_xyz:Proc"],
        ["--processor", "nocolon"],
        ["--columns", "prompt=q", "--processor", "m:P"],
        ["--data", "hf:bad spec"],
        ["--data", "hf:org/name:"],
    ],
)
def test_a_data_option_mistake_is_one_line_and_exit_2(tmp_path, capsys, option):
    path = tmp_path / "d.jsonl"
    path.write_text(jsonl([json.dumps(GOOD)]))
    code = main(["train", "--model", "none", "--data", str(path), "--output", str(tmp_path / "o"), *option])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.startswith("rewardforge train: error:")
    assert any(w in err for w in ("column", "processor", "Hub spec"))  # named before any model loads


def test_eval_data_with_several_splits_needs_one_named(tmp_path, capsys):
    """--data reads 'train' of a DatasetDict (TRL's convention); --eval-data must name its split."""
    import datasets

    rows = [GOOD | {"id": str(i)} for i in range(3)]
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows), "test": datasets.Dataset.from_list(rows)}
    ).save_to_disk(str(tmp_path / "dd"))
    data, held = str(tmp_path / "d.jsonl"), str(tmp_path / "dd")
    (tmp_path / "d.jsonl").write_text(jsonl([json.dumps(GOOD)]))
    code = main(
        ["train", "--model", "none", "--data", data, "--eval-data", held, "--output", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "holds several splits (test, train); name one, e.g." in err


def test_bad_input_leaves_no_empty_output_folder(tmp_path, capsys):
    """helper 69: every bad-input exit left the --output folder (and its parents) it had made."""
    path = write_case(tmp_path, sorted(CASES)[0])
    out = tmp_path / "runs" / "typo" / "out"
    code = main(["train", "--data", str(path), "--output", str(out), "--max-steps", "1"])
    assert code == 2 and "line 2" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    existing = tmp_path / "mine"
    existing.mkdir()
    code = main(["train", "--data", str(path), "--output", str(existing), "--max-steps", "1"])
    assert code == 2 and existing.is_dir()  # a folder the user made stays
