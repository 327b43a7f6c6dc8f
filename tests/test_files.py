"""`AtomicFile`, through which every output is written (helper round 39: `score --output
/dev/null` replaced the device with a regular file; a symlink was replaced by a file; a full
disk at the last write left the temporary file behind, and so did kill -9)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest

from rewardforge.files import AtomicFile, atomic_write_text


def temporaries(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_fifo_is_written_into_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen([sys.executable, "-c", f"print(open({str(fifo)!r}).read(), end='')"],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        atomic_write_text(fifo, "through the pipe\n")
        assert reader.communicate(timeout=30)[0] == "through the pipe\n"
    finally:
        reader.kill()  # a reader still waiting on the pipe
    assert fifo.is_fifo() and temporaries(tmp_path) == []


def test_a_symlink_stays_and_its_target_is_replaced(tmp_path):
    target = tmp_path / "real.jsonl"
    target.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    atomic_write_text(link, "new\n")
    assert link.is_symlink() and target.read_text() == "new\n"


def test_a_failing_last_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")
    f = AtomicFile(out)
    f.write("new\n")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        f.commit()
    assert out.read_text() == "old\n" and temporaries(tmp_path) == []


def test_temporaries_of_a_killed_writer_are_cleared_by_the_next(tmp_path):
    out = tmp_path / "out.jsonl"
    code = f"from rewardforge.files import AtomicFile; f = AtomicFile({str(out)!r}); f.write('x'); f.fh.flush(); import os; os._exit(9)"
    subprocess.run([sys.executable, "-c", code], check=False)
    assert len(temporaries(tmp_path)) == 1  # the killed writer's
    with AtomicFile(out) as live:
        live.write("done\n")
        assert len(temporaries(tmp_path)) == 1  # this writer's own, not the dead one's
    assert out.read_text() == "done\n" and temporaries(tmp_path) == []


def test_files_written_together_are_all_new_or_all_old(tmp_path, monkeypatch):
    """eval's files were renamed one by one: a full disk left new scores beside old metrics."""
    from rewardforge.files import write_together

    old = {"scores.jsonl": "old scores\n", "metrics.json": "old metrics\n", "report.html": "old report\n"}
    for name, text in old.items():
        (tmp_path / name).write_text(text)
    real_fsync, calls = os.fsync, []

    def fills_up(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fills_up)
    new = {
        tmp_path / "scores.jsonl": "new\n",
        tmp_path / "metrics.json": "new\n",
        tmp_path / "report.html": None,
    }
    with pytest.raises(OSError, match="No space"):
        write_together(new)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == old  # no temporaries either
    monkeypatch.setattr(os, "fsync", real_fsync)
    write_together(new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "scores.jsonl"]


def test_a_full_disk_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys, tiny_bert_dir):
    from rewardforge.cli import main

    items = tmp_path / "items.jsonl"
    items.write_text('{"prompt": "Hi?", "response": "Hello."}\n')

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    code = main(
        ["score", "--model", str(tiny_bert_dir), "--input", str(items), "--output", str(tmp_path / "o.jsonl")]
    )
    err = capsys.readouterr().err
    assert code == 1 and "No space left on device" in err and "Traceback" not in err
    assert temporaries(tmp_path) == [] and not (tmp_path / "o.jsonl").exists()


def test_dev_stdout_appends_to_what_the_shell_opened(tmp_path):
    """`--output /dev/stdout >> app.txt` renamed a file over app.txt: its earlier lines were lost."""
    log = tmp_path / "app.txt"
    log.write_text("PREVIOUS\n")
    code = "from rewardforge.files import atomic_write_text; atomic_write_text('/dev/stdout', 'scores\\n')"
    with open(log, "a") as shell_redirect:
        subprocess.run([sys.executable, "-c", code], stdout=shell_redirect, check=True)
    assert log.read_text() == "PREVIOUS\nscores\n" and temporaries(tmp_path) == []


def test_a_folder_in_a_files_place_fails_before_any_file_is_replaced(tmp_path):
    from rewardforge.files import write_together

    (tmp_path / "scores.jsonl").write_text("old\n")
    (tmp_path / "metrics.json").mkdir()
    with pytest.raises(IsADirectoryError):
        write_together({tmp_path / "scores.jsonl": "new\n", tmp_path / "metrics.json": "new\n"})
    assert (tmp_path / "scores.jsonl").read_text() == "old\n" and temporaries(tmp_path) == []


def test_only_the_files_own_dead_temporaries_are_cleared(tmp_path):
    import socket

    other = tmp_path / f".a.{socket.gethostname()}-99999.{socket.gethostname()}-{os.getpid()}.abc.tmp"
    other.write_text("a live writer of the file a.HOST-99999\n")
    with AtomicFile(tmp_path / "a") as f:
        f.write("x")
    assert other.exists()


def test_a_symlink_loop_as_output_is_one_line(tmp_path, capsys):
    from rewardforge.cli import main

    (tmp_path / "loopA").symlink_to(tmp_path / "loopB")
    (tmp_path / "loopB").symlink_to(tmp_path / "loopA")
    items = tmp_path / "items.jsonl"
    items.write_text('{"prompt": "Hi?", "response": "Hello."}\n')
    code = main(
        [
            "score",
            "--model",
            str(tmp_path / "no-model"),
            "--input",
            str(items),
            "--output",
            str(tmp_path / "loopA"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "symlink loop" in err and "Traceback" not in err


def test_a_regular_file_under_proc_is_replaced_not_appended(tmp_path, monkeypatch):
    """Any /proc or /dev path was opened for appending: /proc/self/cwd/x got old and new lines."""
    if not os.path.isdir("/proc/self/cwd"):
        pytest.skip("needs Linux /proc")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.jsonl").write_text("OLD\n")
    atomic_write_text("/proc/self/cwd/keep.jsonl", "NEW\n")
    assert (tmp_path / "keep.jsonl").read_text() == "NEW\n"


@pytest.mark.parametrize("how", ["link", "double-slash"])
def test_a_link_to_dev_stdout_appends_as_dev_stdout_does(tmp_path, how):
    log = tmp_path / "app.txt"
    log.write_text("PREVIOUS\n")
    target = "//dev/stdout"
    if how == "link":
        (tmp_path / "lnk").symlink_to("/dev/stdout")
        target = str(tmp_path / "lnk")
    code = f"from rewardforge.files import atomic_write_text; atomic_write_text({target!r}, 'scores\\n')"
    with open(log, "a") as shell_redirect:
        subprocess.run([sys.executable, "-c", code], stdout=shell_redirect, check=True)
    assert log.read_text() == "PREVIOUS\nscores\n"


def test_dev_stdout_shares_the_shells_offset_when_opened_with_truncate(tmp_path):
    """With `> out.txt`, /dev/stdout was opened anew (its own offset at the end): the program's
    later prints landed over the scores. Writing through a copy of descriptor 1 keeps one offset,
    and what Python had buffered for stdout goes out first."""
    out = tmp_path / "out.txt"
    code = (
        "from rewardforge.files import atomic_write_text\n"
        "print('before')\n"  # buffered, not yet flushed
        "atomic_write_text('/dev/stdout', 'scores 1\\nscores 2\\n')\n"
        "print('after')\n"
    )
    with open(out, "w") as shell_redirect:
        subprocess.run([sys.executable, "-c", code], stdout=shell_redirect, check=True)
    assert out.read_text() == "before\nscores 1\nscores 2\nafter\n"


@pytest.mark.parametrize("parts", [("fd", "1"), ("dev", "fd", "1"), ("dev", "stdout")])
def test_stdout_through_a_linked_folder_is_stdout(tmp_path, parts):
    """`fdlink/1` with fdlink -> /proc/self/fd replaced the file the shell opened with `>>`."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs Linux /proc")
    (tmp_path / "fd").symlink_to("/proc/self/fd")
    (tmp_path / "dev").symlink_to("/dev")
    target = str(tmp_path.joinpath(*parts))
    log = tmp_path / "app.txt"
    log.write_text("PREVIOUS\n")
    inode = log.stat().st_ino
    code = f"from rewardforge.files import atomic_write_text; atomic_write_text({target!r}, 'scores\\n')"
    with open(log, "a") as shell_redirect:
        subprocess.run([sys.executable, "-c", code], stdout=shell_redirect, check=True)
    assert log.read_text() == "PREVIOUS\nscores\n" and log.stat().st_ino == inode


def test_a_replaced_file_keeps_its_mode(tmp_path):
    """The atomic replace gave a private (0600) scores file the default 0644."""
    private = tmp_path / "scores.jsonl"
    private.write_text("old\n")
    private.chmod(0o600)
    atomic_write_text(private, "new\n")
    assert private.read_text() == "new\n" and (private.stat().st_mode & 0o777) == 0o600


# ---- helper round 46: descriptors that are not the shell's, and several outputs on one stream ----
def score_in_shell(
    model, tmp_path, redirects: str, *options: str, shell: str = "{command} {redirects}"
) -> subprocess.CompletedProcess:
    """`rewardforge score` of one valid and one invalid item, run by bash as `shell` says."""
    items = tmp_path / "items.jsonl"
    items.write_text('{"prompt": "Hi?", "response": "Hello."}\n{"prompt": "Hi?", "response": ""}\n')
    command = " ".join(
        [sys.executable, "-m", "rewardforge.cli", "score", "--model", str(model), "--input", str(items),
         "--no-progress", *options]
    )  # fmt: skip
    line = shell.format(command=command, redirects=redirects)
    return subprocess.run(["bash", "-c", line], capture_output=True, text=True, cwd=tmp_path)


def scores_to_stdout(model, tmp_path, redirects: str, rejects: str, **shell) -> subprocess.CompletedProcess:
    """Scores to /dev/stdout and rejects to the stream `rejects`, both as the shell opened them."""
    return score_in_shell(
        model, tmp_path, redirects, "--output", "/dev/stdout", "--skip-invalid", "--rejects", rejects, **shell
    )


@pytest.mark.parametrize(
    ("redirects", "rejects", "problem"),
    [
        (">&-", "/dev/stdout", "descriptor 1 was not open when rewardforge started"),
        ("", "/dev/fd/7", "descriptor 7 was not open when rewardforge started"),
        ("1<ro.txt", "/dev/stdout", "descriptor 1 is open for reading only"),
    ],
)
def test_a_descriptor_the_shell_did_not_open_for_writing_is_refused_first(
    tiny_bert_dir, tmp_path, redirects, rejects, problem
):
    """With stdout closed, /dev/stdout named the temporary file of --output: the rejects were
    written into the scores, exit 0. A closed descriptor was a traceback after the scoring."""
    (tmp_path / "ro.txt").write_text("")
    out = tmp_path / "scores.jsonl"
    done = score_in_shell(
        tiny_bert_dir, tmp_path, redirects, "--output", str(out), "--skip-invalid", "--rejects", rejects
    )
    assert done.returncode == 2, done.stderr
    assert f"--rejects {rejects}: {problem}" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


def test_stdout_and_stderr_into_one_file_are_not_the_same_output(tiny_bert_dir, tmp_path):
    """--output /dev/stdout --rejects /dev/stderr with 2>&1 was refused as one file."""
    done = scores_to_stdout(tiny_bert_dir, tmp_path, "> both.txt 2>&1", "/dev/stderr")
    text = (tmp_path / "both.txt").read_text()
    assert done.returncode == 0, text
    assert text.count('"score"') == 1 and '"reason"' in text and "1 items scored" in text


def test_outputs_linked_to_one_stream_come_out_in_the_order_written(tmp_path):
    """Each file had its own buffer on the stream: a long text went out before a short one."""
    for name in ("a", "b"):
        (tmp_path / name).symlink_to("/dev/stdout")
    code = (
        "from pathlib import Path; from rewardforge.files import write_together\n"
        f"write_together({{Path({str(tmp_path / 'a')!r}): 'A' * 3000 + '\\n', "
        f"Path({str(tmp_path / 'b')!r}): 'B' * 20001 + '\\n'}})\n"
    )
    out = tmp_path / "out.txt"
    with open(out, "w") as shell_redirect:
        subprocess.run([sys.executable, "-c", code], stdout=shell_redirect, check=True)
    assert out.read_text() == "A" * 3000 + "\n" + "B" * 20001 + "\n"


def test_one_file_opened_twice_by_the_shell_is_refused_as_one_output(tiny_bert_dir, tmp_path):
    """`>f 3>f`: two openings, two offsets; the rejects landed over the scores, exit 0."""
    done = scores_to_stdout(tiny_bert_dir, tmp_path, "> same.txt 3> same.txt", "/dev/fd/3")
    assert done.returncode == 2 and "--rejects /dev/fd/3 is the --output file" in done.stderr


def test_the_inherited_descriptors_leave_out_the_listings_own():
    """os.listdir(fd) lists through a copy of fd: that number was recorded as inherited."""
    code = (
        "from rewardforge import files; files.note_inherited_descriptors(); "
        "print(sorted(files.INHERITED_DESCRIPTORS))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[0, 1, 2]"


def test_two_openings_one_byte_apart_are_still_two(tiny_bert_dir, tmp_path):
    """The offset test moved the first by one byte onto the second's offset: taken for one."""
    done = scores_to_stdout(tiny_bert_dir, tmp_path, "3> same.txt", "/dev/fd/3")
    assert done.returncode == 0  # the same command without the shared file works
    shifted = scores_to_stdout(
        tiny_bert_dir,
        tmp_path,
        "3> same.txt",
        "/dev/fd/3",
        shell="{{ printf a; {command} {redirects}; }} > same.txt",
    )
    assert shifted.returncode == 2 and "--rejects /dev/fd/3 is the --output file" in shifted.stderr


def test_two_appending_openings_of_one_file_are_accepted(tiny_bert_dir, tmp_path):
    """>>f 3>>f: every write goes to the end, so nothing lands over anything."""
    done = scores_to_stdout(tiny_bert_dir, tmp_path, ">> both.txt 3>> both.txt", "/dev/fd/3")
    text = (tmp_path / "both.txt").read_text()
    assert done.returncode == 0, done.stderr
    assert text.count('"score"') == 1 and text.count('"reason"') == 1


def test_a_dash_is_standard_input_and_output(tiny_bert_dir, tmp_path):
    """`--output -` made a file named `-`, and `--input -` was 'unsupported file type'."""
    items = '{"prompt": "Hi?", "response": "Hello."}\n{"prompt": "Hi?", "response": ""}\n'
    command = [
        sys.executable,
        "-m",
        "rewardforge.cli",
        "score",
        "--model",
        str(tiny_bert_dir),
        "--no-progress",
    ]
    run = subprocess.run(
        [*command, "--input", "-", "--output", "-", "--skip-invalid", "--rejects", "rejects.jsonl"],
        input=items, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    (line,) = run.stdout.splitlines()
    assert json.loads(line)["location"] == "line 1" and isinstance(json.loads(line)["score"], float)
    (rejected,) = (tmp_path / "rejects.jsonl").read_text().splitlines()
    assert json.loads(rejected)["location"] == "line 2" and json.loads(rejected)["source"] == "-"
    assert not (tmp_path / "-").exists()
    # a bad line from standard input is named like any file's
    run = subprocess.run(
        [*command, "--input", "-", "--output", "-"], input=items, capture_output=True, text=True
    )
    assert run.returncode == 2 and "-:line 2: field 'response': empty response" in run.stderr


def test_bon_output_dash_is_a_stream_that_needs_its_summary_named(tmp_path, capsys):
    from rewardforge import cli

    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "Hi"}\n')
    argv = ["bon", "--policy", "p", "--rm", "r", "--prompts", str(prompts), "--output", "-"]
    assert cli.main(argv) == 2
    assert (
        "--output - is a stream: name the summary file with --summary FILE"  # as typed (helper round 61)
        in capsys.readouterr().err
    )


def test_bon_greedy_with_several_candidates_is_refused(tmp_path, capsys):
    """`bon --greedy --n 4` made one candidate per prompt without a word (helper round 61)."""
    from rewardforge import cli

    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "Hi"}\n')
    argv = [
        "bon",
        "--policy",
        "p",
        "--rm",
        "r",
        "--prompts",
        str(prompts),
        "--output",
        str(tmp_path / "o.jsonl"),
    ]
    assert cli.main([*argv, "--greedy", "--n", "4"]) == 2
    assert "--greedy makes one candidate per prompt; drop --n 4 or --greedy" in capsys.readouterr().err


@pytest.mark.parametrize("rejects", ["-", "/dev/stdout", "/dev/fd/1"])
def test_one_stream_named_twice_is_one_output(tiny_bert_dir, tmp_path, rejects):
    """`--output - --rejects -` mixed the rejects into the scores (and bon's `--output -
    --summary -` kept only the summary: one dict key)."""
    done = score_in_shell(
        tiny_bert_dir, tmp_path, "", "--output", "-", "--skip-invalid", "--rejects", rejects
    )
    assert done.returncode == 2 and "is the --output file" in done.stderr


def test_bon_output_and_summary_on_one_stream_are_refused(tmp_path, capsys):
    from rewardforge import cli

    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "Hi"}\n')
    argv = ["bon", "--policy", "p", "--rm", "r", "--prompts", str(prompts), "--output", "-", "--summary", "-"]
    assert cli.main(argv) == 2
    assert "--summary /dev/stdout is the --output file" in capsys.readouterr().err


def test_standard_input_closed_is_refused_before_the_model_loads(tiny_bert_dir, tmp_path):
    """With `<&-`, descriptor 0 was the next file opened: it scored its own output file."""
    own = tmp_path / "own.jsonl"
    own.write_text('{"prompt": "Hi?", "response": "Hello."}\n')
    line = (
        f"{sys.executable} -m rewardforge.cli score --model {tiny_bert_dir} --input - --output - <&- >> {own}"
    )
    done = subprocess.run(["bash", "-c", line], capture_output=True, text=True)
    assert done.returncode == 2 and "standard input was not open when rewardforge started" in done.stderr
    assert "Loading" not in done.stderr and own.read_text().count("\n") == 1


def test_a_signal_as_the_temporary_file_is_made_leaves_none_behind(tmp_path, monkeypatch):
    """The suite's SIGTERM test caught it under load: a signal right after mkstemp left the
    temporary file with no owner (score also opened its files before its try)."""
    import signal
    import tempfile

    class Stop(Exception):
        pass

    def stop(signum, frame):
        raise Stop

    real = tempfile.mkstemp

    def mkstemp_then_sigterm(*args, **kwargs):
        made = real(*args, **kwargs)
        signal.raise_signal(signal.SIGTERM)  # arrives before AtomicFile holds the name
        return made

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_then_sigterm)
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        with pytest.raises(Stop):
            AtomicFile(tmp_path / "out.jsonl")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert list(tmp_path.iterdir()) == []
