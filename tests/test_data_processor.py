"""User processors: loaded from a file path or a module, returning pairs, dicts or None."""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import pytest

from rewardforge.data import (
    DataError,
    DataOptionError,
    PreferencePair,
    PreferenceProcessor,
    load_pairs,
    load_processor,
)

VOTES = textwrap.dedent(
    """
    from rewardforge.data import PreferencePair, PreferenceProcessor


    class Votes(PreferenceProcessor):
        def to_pair(self, record):
            if record["votes_a"] == record["votes_b"]:
                return None  # a tie: skipped on purpose
            if record["votes_a"] < 0 or record["votes_b"] < 0:
                raise ValueError("negative votes")
            a_wins = record["votes_a"] > record["votes_b"]
            return {
                "prompt": record["question"],
                "chosen": record["a"] if a_wins else record["b"],
                "rejected": record["b"] if a_wins else record["a"],
                "margin": abs(record["votes_a"] - record["votes_b"]),
            }


    class Pairs(PreferenceProcessor):
        def to_pair(self, record):
            return PreferencePair(
                prompt=[{"role": "user", "content": record["q"]}],
                chosen=[{"role": "assistant", "content": record["good"]}],
                rejected=[{"role": "assistant", "content": record["bad"]}],
                id=record.get("id"),
            )


    class OwnReader(Pairs):
        def read(self, spec):
            for i, line in enumerate(open(spec, encoding="utf-8"), start=1):
                q, good, bad = line.rstrip("\\n").split("|")
                yield f"line {i}", {"q": q, "good": good, "bad": bad}


    class NotAProcessor:
        def to_pair(self, record):
            return None
    """
)

VOTE_ROWS = [
    {"question": "Tea or coffee?", "a": "Tea", "b": "Coffee", "votes_a": 5, "votes_b": 2},
    {"question": "Cats or dogs?", "a": "Cats", "b": "Dogs", "votes_a": 3, "votes_b": 3},
    {"question": "Up or down?", "a": "Up", "b": "Down", "votes_a": -1, "votes_b": 4},
    {"question": "Sun or rain?", "a": "Sun", "b": "Rain", "votes_a": 0, "votes_b": 9},
]


@pytest.fixture
def processor_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_formats.py"
    path.write_text(VOTES, encoding="utf-8")
    return path


@pytest.fixture
def votes(tmp_path: Path) -> str:
    path = tmp_path / "votes.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in VOTE_ROWS), encoding="utf-8")
    return str(path)


def test_processor_from_a_file_path(processor_file, votes):
    loaded = load_pairs(votes, processor=f"{processor_file}:Votes", skip_invalid=True)
    assert loaded.shape == "processor:Votes/explicit_prompt"
    assert [(p.chosen_text, p.rejected_text, p.margin) for p in loaded.pairs] == [
        ("Tea", "Coffee", 3.0),
        ("Rain", "Sun", 9.0),
    ]
    assert loaded.skipped_by_processor == 1
    assert [(r.location, r.reason) for r in loaded.rejected] == [("line 3", "negative votes")]
    assert loaded.pairs[1].source == f"{votes}:line 4"


def test_processor_value_error_is_an_invalid_row(processor_file, votes):
    with pytest.raises(DataError, match=r"votes\.jsonl:line 3: negative votes"):
        load_pairs(votes, processor=f"{processor_file}:Votes")


def test_processor_from_a_module(tmp_path, monkeypatch, votes):
    package = f"procpkg_{uuid.uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "formats.py").write_text(VOTES, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    processor = load_processor(f"{package}.formats:Votes")
    assert isinstance(processor, PreferenceProcessor)
    assert len(load_pairs(votes, processor=f"{package}.formats:Votes", skip_invalid=True)) == 2


def test_processor_returning_preference_pairs_and_reading_its_own_files(processor_file, tmp_path):
    path = tmp_path / "pipes.txt"  # an extension the built-in readers do not know
    path.write_text("2+2?|4|5\nSky?|Blue|Blue\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"pipes\.txt:line 2: field 'rejected': identical to 'chosen'"):
        load_pairs(str(path), processor=f"{processor_file}:OwnReader")
    loaded = load_pairs(str(path), processor=f"{processor_file}:OwnReader", skip_invalid=True)
    assert loaded.shape == "processor:OwnReader"
    assert isinstance(loaded.pairs[0], PreferencePair) and loaded.pairs[0].chosen_text == "4"


def test_processor_that_skips_everything(processor_file, tmp_path):
    path = tmp_path / "ties.jsonl"
    path.write_text(json.dumps(VOTE_ROWS[1]) + "\n")
    with pytest.raises(DataError, match="the processor skipped all 1 records"):
        load_pairs(str(path), processor=f"{processor_file}:Votes")


def test_a_record_the_processor_fails_on_is_an_invalid_row_named_by_the_exception(processor_file, tmp_path):
    """A KeyError from user code on a record without the field is that row's fault: exit 2 with
    file and line by default, a rejected row with --skip-invalid, never a traceback."""
    path = tmp_path / "odd.jsonl"
    good = {"question": "Q", "a": "yes", "b": "no", "votes_a": 3, "votes_b": 1}
    path.write_text(json.dumps({"question": "Q"}) + "\n" + json.dumps(good) + "\n")
    with pytest.raises(DataError, match=r"odd.jsonl:line 1: Votes.to_pair raised KeyError: 'votes_a'"):
        load_pairs(str(path), processor=f"{processor_file}:Votes")
    got = load_pairs(str(path), processor=f"{processor_file}:Votes", skip_invalid=True)
    assert len(got.pairs) == 1 and [r.location for r in got.rejected] == ["line 1"]


def test_load_processor_errors(processor_file, tmp_path):
    with pytest.raises(DataError, match="processor file not found"):
        load_processor(f"{tmp_path / 'missing.py'}:Votes")
    with pytest.raises(DataOptionError, match="has no attribute 'Nope'"):
        load_processor(f"{processor_file}:Nope")
    with pytest.raises(ValueError, match="is not a subclass of rewardforge.data.PreferenceProcessor"):
        load_processor(f"{processor_file}:NotAProcessor")
    with pytest.raises(ValueError, match="processor module 'no_such_module_xyz' not found"):
        load_processor("no_such_module_xyz:Votes")
    with pytest.raises(ValueError, match="bad processor reference"):
        load_processor(str(processor_file))
    with pytest.raises(DataOptionError, match="columns and processor cannot be combined"):
        load_pairs("x.jsonl", processor=f"{processor_file}:Votes", columns={"prompt": "q"})


def test_base_class_docstring_has_an_example():
    doc = PreferenceProcessor.__doc__ or ""
    assert "def to_pair" in doc and "return None" in doc and "ValueError" in doc


@pytest.mark.parametrize(
    "id_value, field",
    [("['x']", "id"), ("1", None)],
    ids=["list-id-refused", "int-id-as-text"],
)
def test_a_processors_pair_has_its_id_and_category_checked(processor_file, tmp_path, id_value, field):
    """A PreferencePair from user code passed its id and category through unchecked: a list
    became a per-category key "['math']" in the metrics."""
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"q": "2+2?", "good": "4", "bad": "5", "id": eval(id_value)}) + "\n")
    if field:
        with pytest.raises(DataError, match=r"line 1: field 'id': expected a string or a number"):
            load_pairs(str(path), processor=f"{processor_file}:Pairs")
    else:
        assert load_pairs(str(path), processor=f"{processor_file}:Pairs").pairs[0].id == "1"


def test_a_numpy_id_from_user_code_is_a_number():
    import numpy as np

    from rewardforge.data.shapes import check_pair

    pair = PreferencePair(
        prompt=[{"role": "user", "content": "q"}],
        chosen=[{"role": "assistant", "content": "a"}],
        rejected=[{"role": "assistant", "content": "b"}],
        id=np.int64(7),
        category=np.float64(2.0),
    )
    checked = check_pair(pair)
    assert (checked.id, checked.category) == ("7", "2")


def test_the_documented_example_reads_csv_in_the_right_direction(tmp_path):
    """The docstring's Votes compared CSV text: "10" > "9" is false, so Gravel was chosen."""
    doc = PreferenceProcessor.__doc__
    code = textwrap.dedent(doc[doc.index("::\n") + 3 : doc.index("The class is instantiated")])
    (tmp_path / "my_format.py").write_text(code)
    data = tmp_path / "votes.csv"
    data.write_text(
        "question,a,b,votes_a,votes_b\nBest fruit?,Mango,Gravel,10,9\nBest pet?,Dog,Rock,12,3\nTie?,x,y,5,5.0\n"
    )
    loaded = load_pairs(str(data), processor=f"{tmp_path / 'my_format.py'}:Votes")
    assert [(p.chosen_text, p.rejected_text) for p in loaded.pairs] == [("Mango", "Gravel"), ("Dog", "Rock")]
    assert loaded.skipped_by_processor == 1


def test_processor_imports_as_python_would_and_names_what_is_missing(tmp_path, monkeypatch, votes):
    """helper 86: `--processor procs:Votes` from the folder holding procs.py was "not found" (the
    console script does not put the current folder on the path); a file importing a helper beside
    it failed; a module whose own import failed was called "not found"."""
    import sys

    name = f"procs_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / f"{name}.py").write_text(VOTES, encoding="utf-8")
    helper = f"helper_{uuid.uuid4().hex[:8]}"
    (folder / f"{helper}.py").write_text("SCALE = 1\n")
    (folder / "uses_helper.py").write_text(f"from {helper} import SCALE\n" + VOTES, encoding="utf-8")
    (folder / f"{name}_broken.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(folder))])
    assert len(load_pairs(votes, processor=f"{name}:Votes", skip_invalid=True)) == 2
    assert len(load_pairs(votes, processor=f"{folder / 'uses_helper.py'}:Votes", skip_invalid=True)) == 2
    with pytest.raises(DataOptionError, match=f"processor module '{name}_broken' raised on import: "
                                              "ModuleNotFoundError: No module named 'no_such_dependency_xyz'"):  # fmt: skip
        load_processor(f"{name}_broken:Votes")


def test_a_processors_dict_under_another_datasets_names_is_told_to_return_ours(tmp_path):
    """helper 86: {question, chosen, rejected} from a processor was told "read it with --columns
    prompt=question", which --processor refuses; a processor returns rewardforge's names
    (helper 87: reading other names per record misread a record whose question was null)."""
    proc = tmp_path / "p.py"
    proc.write_text(
        "from rewardforge.data import PreferenceProcessor\n"
        "class Q(PreferenceProcessor):\n"
        "    def to_pair(self, r):\n"
        "        return {'question': r['q'], 'chosen': r['a'], 'rejected': r['b']}\n"
    )
    path = tmp_path / "d.jsonl"
    path.write_text(
        json.dumps({"q": "Why is the sky blue?", "a": "Because of scattering.", "b": "No."}) + "\n"
    )
    with pytest.raises(DataError, match="return it as 'prompt' from Q.to_pair") as caught:
        load_pairs(str(path), processor=f"{proc}:Q")
    assert "--columns" not in str(caught.value)


def test_margins_from_scores_with_a_processors_pairs_need_each_pair_to_have_one(tmp_path):
    """helper 86: a processor mixing dicts (scored) and PreferencePairs (no margin) trained the
    pairs at margin 0 under --margin-from-scores; only all-pairs output was refused."""
    proc = tmp_path / "p.py"
    proc.write_text(
        "from rewardforge.data import PreferenceProcessor, PreferencePair\n"
        "class Mixed(PreferenceProcessor):\n"
        "    def to_pair(self, r):\n"
        "        if r['n'] == 0:\n"
        "            return {'prompt': 'p', 'chosen': 'a', 'rejected': 'b', 'score_chosen': 9, 'score_rejected': 1}\n"
        "        m = 2.0 if r['n'] == 1 else None\n"
        "        u, a = {'role': 'user', 'content': 'p'}, {'role': 'assistant', 'content': f\"c{r['n']}\"}\n"
        "        return PreferencePair([u], [a], [{'role': 'assistant', 'content': 'd'}], margin=m)\n"
    )
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(3)))
    loaded = load_pairs(str(path), processor=f"{proc}:Mixed", margin_from_scores=True, skip_invalid=True)
    assert [p.margin for p in loaded.pairs] == [8.0, 2.0]
    assert [r.location for r in loaded.rejected] == ["line 3"] and "without a margin" in loaded.rejected[
        0
    ].reason
