"""Bad options and outputs of `rewardforge score/serve/bon/rlhf`: exit 2 with one clear line, before
any long work, never overwriting data. Through the real entry point, `rewardforge.cli.main`."""

from __future__ import annotations

import errno
import json
import tempfile
from pathlib import Path

import pytest

from rewardforge import cli


def run_cli(*argv: str) -> int:
    return cli.main(list(argv))


@pytest.fixture
def prompts(tmp_path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Question {i}?"}) + "\n" for i in range(3)))
    return path


def bon_args(tmp_path: Path, prompts: Path, *extra: str) -> list[str]:
    policy, rm = str(tmp_path / "no-policy"), str(tmp_path / "no-rm")  # never loaded
    return ["bon", "--policy", policy, "--rm", rm, "--prompts", str(prompts), *extra]


def rlhf_args(tmp_path: Path, prompts: Path, *extra: str, policy=None, rm=None) -> list[str]:
    policy = str(policy or tmp_path / "no-policy")
    rm = str(rm or tmp_path / "no-rm")
    return ["rlhf", "--policy", policy, "--rm", rm, "--prompts", str(prompts), *extra]


# ---- numbers are checked while parsing: nan, inf and out-of-range values name the option ------
SERVE = ["serve", "--model", "never-loaded"]
BON = ["bon", "--policy", "p", "--rm", "r", "--prompts", "p.jsonl", "--output", "o.jsonl"]
RLHF = ["rlhf", "--policy", "p", "--rm", "r", "--prompts", "p.jsonl", "--output", "o"]
SCORE = ["score", "--model", "m", "--input", "i.jsonl", "--output", "o.jsonl"]


@pytest.mark.parametrize(
    ("argv", "option", "value", "wanted"),
    [
        (SERVE, "--port", "70000", "an integer from 0 to 65535"),  # used to listen on 70000 % 65536
        (SERVE, "--port", "-1", "an integer from 0 to 65535"),
        (SERVE, "--max-wait-ms", "nan", "a finite number from 0 to 60000"),  # 500 on every request
        (SERVE, "--max-wait-ms", "inf", "a finite number from 0 to 60000"),  # hung, even on SIGTERM
        (SERVE, "--graceful-timeout", "nan", "a finite number from 0 to 3600"),
        (SERVE, "--max-body-mb", "-1", "a finite number > 0 and <= 1048576"),  # named max_body_bytes
        (SERVE, "--max-body-mb", "inf", "a finite number > 0 and <= 1048576"),
        (SERVE, "--max-body-mb", "1e308", "a finite number > 0 and <= 1048576"),  # OverflowError traceback
        (SERVE, "--max-text-chars", "99999999999999999999", "an integer from 1 to 2147483648"),  # SchemaError
        (SERVE, "--max-batch-size", "0", "an integer >= 1"),  # named max_batch_size
        (SERVE, "--max-queue", "0", "an integer >= 1"),
        (SERVE, "--threads", "-1", "an integer >= 1"),
        (SERVE, "--max-length", "0", "an integer >= 1"),
        (SCORE, "--max-length", "-1", "an integer >= 1"),  # silently used the model's length
        (SCORE, "--chunk-size", "0", "an integer >= 1"),
        (BON, "--threads", "-1", "an integer >= 1"),
        (BON, "--max-prompts", "0", "an integer >= 1"),  # used one prompt
        (BON, "--max-prompts", "-1", "an integer >= 1"),
        (BON, "--temperature", "0", "a finite number > 0"),
        (BON, "--temperature", "-1", "a finite number > 0"),
        (BON, "--temperature", "nan", "a finite number > 0"),
        (BON, "--top-p", "0", "a finite number > 0 and <= 1"),
        (BON, "--top-p", "2", "a finite number > 0 and <= 1"),
        (BON, "--rm-batch-size", "0", "an integer >= 1"),
        (BON, "--seed", "-1", "an integer from 0 to 4294967295"),
        (RLHF, "--threads", "-2", "an integer >= 1"),
        (RLHF, "--learning-rate", "0", "a finite number > 0"),  # silently trained at 1e-5
        (RLHF, "--learning-rate", "-1", "a finite number > 0"),
        (RLHF, "--learning-rate", "nan", "a finite number > 0"),
        (RLHF, "--learning-rate", "inf", "a finite number > 0"),
        (RLHF, "--temperature", "0", "a finite number > 0"),
        (RLHF, "--temperature", "nan", "a finite number > 0"),
        (RLHF, "--max-prompts", "0", "an integer >= 1"),
        (RLHF, "--rm-batch-size", "0", "an integer >= 1"),
        (RLHF, "--seed", "-1", "an integer from 0 to 4294967295"),
        (RLHF, "--lora-alpha", "-4", "an integer >= 1"),  # accepted
        (RLHF, "--lora-r", "0", "an integer >= 1"),  # PEFT's own message
        (RLHF, "--epsilon-max", "-1", "a finite number > 0"),  # checked only after the RM loaded
        # helper 79: argparse read these as options: "expected one argument"
        (RLHF, "--learning-rate", "-1e-3", "a finite number > 0"),
        (BON, "--temperature", "-1e-1", "a finite number > 0"),
        (SERVE, "--max-wait-ms", "-.5", "a finite number from 0 to 60000"),
    ],
)
def test_bad_numbers_exit_2_naming_the_option(capsys, argv, option, value, wanted):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(*argv, option, value)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {option}: expected {wanted}, got " in err and "Traceback" not in err


def test_good_numbers_still_parse():
    from rewardforge.commands import bon, rlhf, serve

    args = serve.build_parser().parse_args(["--model", "m", "--port", "0", "--max-wait-ms", "0"])
    assert args.port == 0 and args.max_wait_ms == 0.0
    args = serve.build_parser().parse_args(["--model", "m", "--port", "65535", "--max-body-mb", "0.05"])
    assert args.port == 65535 and args.max_body_mb == 0.05
    args = bon.build_parser().parse_args(BON[1:] + ["--top-p", "1", "--temperature", "0.7"])
    assert args.top_p == 1.0 and args.temperature == 0.7 and args.max_prompts is None
    args = rlhf.build_parser().parse_args(RLHF[1:] + ["--learning-rate", "3e-6"])
    assert args.learning_rate == 3e-6
    assert rlhf.build_parser().parse_args(RLHF[1:]).learning_rate is None  # the default is kept


def test_tiny_body_limit_is_at_least_one_byte():
    from rewardforge.commands import serve

    args = serve.build_parser().parse_args(["--model", "m", "--max-body-mb", "1e-9"])
    assert serve.settings_from_args(args).max_body_bytes == 1


# ---- devices -------------------------------------------------------------------------------------
def test_resolve_device():
    import torch

    from rewardforge.inference import available_devices, resolve_device

    assert resolve_device("cpu") == torch.device("cpu") and "cpu" in available_devices()
    with pytest.raises(ValueError, match="'bogus' is not a device name; available here: cpu"):
        resolve_device("bogus")
    with pytest.raises(ValueError, match="'meta' is not available on this machine"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda' is not available on this machine"):
            resolve_device("cuda")


@pytest.mark.parametrize("device", ["bogus", "cuda:9"])
def test_serve_and_bon_refuse_an_unknown_device(tmp_path, prompts, capsys, device):
    assert run_cli(*SERVE, "--port", "0", "--device", device) == 2
    err = capsys.readouterr().err
    assert f"rewardforge serve: error: --device {device!r}" in err and "available here: cpu" in err
    assert (
        run_cli(*bon_args(tmp_path, prompts, "--output", str(tmp_path / "o.jsonl"), "--device", device)) == 2
    )
    assert f"rewardforge bon: error: --device {device!r}" in capsys.readouterr().err


# ---- model loading: one line naming the model, never a traceback ----------------------------------
def test_from_pretrained_wraps_load_failures_and_keeps_model_load_errors(monkeypatch, tmp_path):
    from rewardforge import inference
    from rewardforge.modeling import ModelLoadError

    def mismatch(*args, **kwargs):
        raise RuntimeError("size mismatch for classifier.weight: torch.Size([2, 32]) vs torch.Size([1, 32])")

    monkeypatch.setattr(inference, "load_reward_model", mismatch)
    with pytest.raises(ModelLoadError, match=r"cannot load the reward model 'm/nl2': .*num_labels=1"):
        inference.RewardModel.from_pretrained("m/nl2")
    original = ModelLoadError("cannot load model 'x': the loader's own words")

    def refuse(*args, **kwargs):
        raise original

    monkeypatch.setattr(inference, "load_reward_model", refuse)
    with pytest.raises(ModelLoadError) as info:
        inference.RewardModel.from_pretrained("x")
    assert info.value is original  # not re-wrapped or obscured
    with pytest.raises(ValueError, match="not a device name"):  # checked before loading
        inference.RewardModel.from_pretrained("x", device="bogus")


def test_score_with_a_two_label_classifier_or_a_broken_gguf(tiny_bert_dir, tmp_path, capsys, monkeypatch):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    monkeypatch.setenv("REWARDFORGE_CACHE", str(tmp_path / "cache"))
    nl2 = tmp_path / "nl2"
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    config.num_labels = 2
    BertForSequenceClassification(config).save_pretrained(nl2)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(nl2)
    broken = tmp_path / "trunc.gguf"
    broken.write_bytes(b"GGUF\x03\x00\x00\x00\x01\x00")
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"response": "Hello."}) + "\n")
    for model in (nl2, broken):
        argv = ["score", "--model", str(model), "--input", str(items), "--output", str(tmp_path / "o.jsonl")]
        assert run_cli(*argv) == 2
        err = capsys.readouterr().err
        # the last line is the one-line error (an uncaught exception would end with its own line;
        # transformers' load report, and logging noise from pytest's captured streams, may precede it)
        last = err.strip().splitlines()[-1]
        assert last.startswith("rewardforge score: error: ") and model.name in last, err


# ---- bon: the output is checked before any generation --------------------------------------------
def test_bon_output_checked_before_generation(tmp_path, prompts, capsys, monkeypatch):
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    assert run_cli(*bon_args(tmp_path, prompts, "--output", str(tmp_path / "adir"))) == 2
    assert f"--output {tmp_path / 'adir'} is a folder; give a file name" in capsys.readouterr().err
    assert run_cli(*bon_args(tmp_path, prompts, "--output", str(tmp_path / "afile" / "b.jsonl"))) == 2
    assert f"{tmp_path / 'afile'} is not a folder" in capsys.readouterr().err
    (tmp_path / "b.summary.json").mkdir()
    assert run_cli(*bon_args(tmp_path, prompts, "--output", str(tmp_path / "b.jsonl"))) == 2
    assert f"summary file {tmp_path / 'b.summary.json'} is a folder" in capsys.readouterr().err
    before = prompts.read_text()
    assert run_cli(*bon_args(tmp_path, prompts, "--output", str(prompts))) == 2
    assert "is the --prompts file" in capsys.readouterr().err and prompts.read_text() == before
    policy = tmp_path / "policy.gguf"  # a model file would be replaced by the results
    policy.write_bytes(b"GGUF")
    argv = ["bon", "--policy", str(policy), "--rm", "r", "--prompts", str(prompts), "--output", str(policy)]
    assert run_cli(*argv) == 2
    assert "is the --policy file" in capsys.readouterr().err and policy.read_bytes() == b"GGUF"
    rm = tmp_path / "rm"  # nor among a model folder's files
    rm.mkdir()
    argv = [
        "bon",
        "--policy",
        "p",
        "--rm",
        str(rm),
        "--prompts",
        str(prompts),
        "--output",
        str(rm / "b.jsonl"),
    ]
    assert run_cli(*argv) == 2
    assert "would write among the files of the --rm folder" in capsys.readouterr().err

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    assert run_cli(*bon_args(tmp_path, prompts, "--output", str(tmp_path / "ro" / "b.jsonl"))) == 2
    err = capsys.readouterr().err
    assert f"cannot write in {tmp_path}: Read-only file system" in err and "Traceback" not in err


# ---- rlhf: never overwrite a model it did not write; output checked before any work ---------------
def fake_model(folder: Path, *, rewardforge_rm: bool = False) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(b"weights")
    if rewardforge_rm:  # what `rewardforge train` leaves: rewardforge.json and its own run_config
        (folder / "rewardforge.json").write_text("{}")
        (folder / "run_config.json").write_text('{"rewardforge": {}, "training_arguments": {}}')
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_rlhf_refuses_to_overwrite_the_rm_the_policy_or_another_model(tmp_path, prompts, capsys):
    rm = fake_model(tmp_path / "rm", rewardforge_rm=True)
    policy = fake_model(tmp_path / "policy")
    other = fake_model(tmp_path / "some_model")
    saved = {f: snapshot(f) for f in (rm, policy, other)}
    spelled = tmp_path / "x" / ".." / "rm"  # the same folder, spelled differently
    cases = [
        (spelled, f"--output {spelled} is the --rm model"),
        (policy, f"--output {policy} is the --policy model"),
        (
            other,
            f"--output {other} already holds a model (config.json) that `rewardforge rlhf` did not write",
        ),
    ]
    for out, message in cases:
        assert run_cli(*rlhf_args(tmp_path, prompts, "--output", str(out), rm=rm, policy=policy)) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    # a reward model folder is refused even when it is not this run's --rm
    assert run_cli(*rlhf_args(tmp_path, prompts, "--output", str(rm), policy=policy)) == 2
    assert "already holds a model" in capsys.readouterr().err
    assert {f: snapshot(f) for f in (rm, policy, other)} == saved


def test_rlhf_own_output_is_accepted_for_resume(tmp_path, prompts, capsys):
    """A folder a previous `rewardforge rlhf` wrote (policy + run_config.json) is not refused."""
    out = fake_model(tmp_path / "run")
    (out / "run_config.json").write_text(json.dumps({"options": {}, "grpo_config": {}, "setup": {}}))
    assert run_cli(*rlhf_args(tmp_path, prompts, "--output", str(out), "--resume")) == 2
    err = capsys.readouterr().err
    assert "--resume: no checkpoint in" in err and "already holds a model" not in err


def test_rlhf_output_file_or_unwritable_is_refused(tmp_path, prompts, capsys, monkeypatch):
    (tmp_path / "afile").write_text("x")
    assert run_cli(*rlhf_args(tmp_path, prompts, "--output", str(tmp_path / "afile"))) == 2
    assert f"--output {tmp_path / 'afile'} exists and is not a folder" in capsys.readouterr().err
    assert run_cli(*rlhf_args(tmp_path, prompts, "--output", str(tmp_path / "afile" / "run"))) == 2
    assert f"{tmp_path / 'afile'} is not a folder" in capsys.readouterr().err

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    assert run_cli(*rlhf_args(tmp_path, prompts, "--output", str(tmp_path / "ro" / "run"))) == 2
    err = capsys.readouterr().err
    assert f"cannot write in {tmp_path}: Read-only file system" in err and "Traceback" not in err
    assert not (tmp_path / "ro").exists()


@pytest.mark.parametrize(
    ("key", "option"),
    [
        ("max_steps", "--steps"),
        ("learning_rate", "--learning-rate"),
        ("temperature", "--temperature"),
        ("beta", "--kl-coeff"),  # was silently replaced by --kl-coeff's value
        ("num_generations", "--group-size"),
        ("output_dir", "--output"),
    ],
)
def test_rlhf_grpo_arg_refuses_what_an_option_sets(tmp_path, prompts, capsys, key, option):
    out = tmp_path / "run"
    assert run_cli(*rlhf_args(tmp_path, prompts, "--output", str(out), "--grpo-arg", f"{key}=abc")) == 2
    err = capsys.readouterr().err
    assert f"--grpo-arg {key}: rewardforge sets this from {option}" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("arg", "wanted"),
    [
        ("top_p=abc", "expected float"),
        ("top_k=true", "expected int"),
        ("mask_truncated_completions=yes", "expected bool"),
        ("nosuch=1", "--grpo-arg nosuch: GRPOConfig has no such field"),  # helper 80: named no option
        (
            "scale_rewards=no",
            "expected one of batch, group, none, true or false",
        ),  # helper 88: TRL's traceback
    ],
)
def test_rlhf_grpo_arg_of_the_wrong_type_is_one_line_before_any_work(tmp_path, prompts, capsys, arg, wanted):
    """`--grpo-arg top_p=abc` failed deep in generation, after the run folder was made."""
    out = tmp_path / "run"
    assert run_cli(*rlhf_args(tmp_path, prompts, "--output", str(out), "--grpo-arg", arg)) == 2
    err = capsys.readouterr().err
    assert wanted in err and "Traceback" not in err and not out.exists()


@pytest.mark.parametrize(
    ("options", "needs"),
    [
        (["--save-adapter"], "--lora"),
        (["--lora-r", "8"], "--lora"),
        (["--epsilon-max", "3"], "--algo scalerl"),
    ],
)
def test_rlhf_options_of_another_setting_are_refused(tmp_path, prompts, capsys, options, needs):
    """They were ignored: a full model was trained and saved; GRPO ran with no CISPO cap (helper 80)."""
    out = tmp_path / "run"
    assert run_cli(*rlhf_args(tmp_path, prompts, "--output", str(out), *options)) == 2
    err = capsys.readouterr().err
    assert f"need {needs}" in err or f"needs {needs}" in err
    assert not out.exists()


def test_rlhf_learning_rate_default_and_overrides_reach_the_config(tmp_path, prompts, monkeypatch):
    """None keeps the default (1e-5, 1e-4 with LoRA); 0 is an error, not the default."""
    from rewardforge.rlhf import recipes
    from rewardforge.rlhf.run import RLHFOptions, run_rlhf
    from rewardforge.training.run import UsageError

    seen: list[dict] = []

    class Stop(Exception):
        pass

    def capture(rm, **common):
        seen.append(common)
        raise Stop

    monkeypatch.setattr(recipes, "make_grpo_with_rm", capture)

    def run(**kw):
        base = dict(policy="p", rm="r", prompts=str(prompts), output=str(tmp_path / "run"))
        with pytest.raises(Stop):
            run_rlhf(RLHFOptions(**{**base, **kw}), printer=lambda *a, **k: None)
        return seen[-1]

    assert run()["learning_rate"] == 1e-5
    assert run(lora=True)["learning_rate"] == 1e-4
    assert run(learning_rate=3e-6)["learning_rate"] == 3e-6
    common = run(grpo_overrides={"top_p": 0.9, "use_cpu": True})
    assert common["top_p"] == 0.9 and common["use_cpu"] is True
    # TRL takes scale_rewards=true/false (group / none); it was refused as "expected str"
    assert run(grpo_overrides={"scale_rewards": False})["scale_rewards"] == "none"
    assert run(grpo_overrides={"scale_rewards": True})["scale_rewards"] == "group"
    assert run(grpo_overrides={"scale_rewards": "batch"})["scale_rewards"] == "batch"
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(UsageError, match="--learning-rate must be a finite number > 0"):
            run_rlhf(RLHFOptions("p", "r", str(prompts), str(tmp_path / "run"), learning_rate=bad))
    with pytest.raises(UsageError, match="--temperature must be a finite number > 0"):
        run_rlhf(RLHFOptions("p", "r", str(prompts), str(tmp_path / "run"), temperature=0.0))


def test_scorer_max_length_beyond_the_position_embeddings_is_capped(tiny_bert_dir):
    """`score --max-length 100000` on a 512-position BERT crashed with a tensor-size error."""
    import json as _json

    from rewardforge.inference import RewardModel

    positions = _json.loads((tiny_bert_dir / "config.json").read_text())["max_position_embeddings"]
    with pytest.warns(UserWarning, match=f"reads at most {positions} tokens"):
        rm = RewardModel.from_pretrained(str(tiny_bert_dir), max_length=100_000)
    assert rm.max_length == positions
    assert isinstance(rm.score("q " * 50, "word " * (positions * 2)), float)


@pytest.mark.parametrize("command", ["score", "serve", "bon", "rlhf", "eval"])
def test_option_mistakes_are_one_line_without_the_usage_block(capsys, command):
    from rewardforge import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--no-such-option"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "usage:" not in err
    assert err.count("\n") == 1 and err.startswith(f"rewardforge {command}: error: ")


def test_a_policy_without_a_language_model_head_is_refused(tmp_path, smollm2_dir):
    """A reward model passed as --policy generated from a random LM head."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from rewardforge.modeling import ModelLoadError
    from rewardforge.rlhf.policy import load_policy

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, num_labels=1, tie_word_embeddings=False,
    )  # fmt: skip
    LlamaForSequenceClassification(config).save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    with pytest.raises(ModelLoadError, match="has no language-model head"):
        load_policy(str(tmp_path / "rm"))


# ---- a stream as output: the files named after it would land beside the device ----------------
def test_bon_to_a_stream_needs_summary_and_score_needs_rejects(tmp_path, prompts, capsys):
    """`bon --output /dev/stdout` wrote /dev/stdout.summary.json, a regular file in /dev; `score
    --skip-invalid` put its rejects there too (/proc/self/fd/1 could not work at all)."""
    import os

    stream = tmp_path / "pipe"
    os.mkfifo(stream)  # no reader: nothing may be written before the option error
    assert run_cli(*bon_args(tmp_path, prompts, "--output", str(stream))) == 2
    assert (
        f"--output {stream} is a stream: name the summary file with --summary FILE" in capsys.readouterr().err
    )
    assert (
        run_cli(
            *bon_args(
                tmp_path,
                prompts,
                "--output",
                str(tmp_path / "b.jsonl"),
                "--summary",
                str(tmp_path / "b.jsonl"),
            )
        )
        == 2
    )
    assert "is the --output file" in capsys.readouterr().err
    score = ["score", "--model", str(tmp_path / "m"), "--input", str(prompts), "--output", str(stream)]
    assert run_cli(*score, "--skip-invalid") == 2
    assert (
        f"--output {stream} is a stream: name the rejects file with --rejects FILE" in capsys.readouterr().err
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe", "prompts.jsonl"]


def test_serve_warns_of_an_open_port_only_once_it_listens(capsys, monkeypatch):
    """The no-API-key warning was printed for a host it then failed to listen on."""
    from rewardforge import cli

    monkeypatch.delenv("REWARDFORGE_API_KEY", raising=False)
    assert cli.main(["serve", "--model", "never-loaded", "--host", "999.1.1.1"]) == 2
    err = capsys.readouterr().err
    assert "cannot listen on 999.1.1.1" in err and "warning" not in err


@pytest.mark.parametrize("command", ["train", "eval", "score", "serve", "bon", "rlhf"])
def test_help_says_the_defaults(command, capsys):
    """`train --help` gave no default for --max-length, --beta or the LoRA sizes, and several
    options of the other commands had no text at all (helper round 61)."""
    from rewardforge.cli import main

    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    expected = {
        "train": ["turns first, pairs are never dropped. (default: 512)", "--resume [CHECKPOINT]",
                  "--no-prefix-sharing Turn prefix sharing off"],
        "eval": ["0 (none), or 100 to 100000 (default: 1000)"],
        "score": ["--dtype {fp32,bf16} weights dtype (default: fp32)"],
        "serve": ["--max-messages MAX_MESSAGES", "(default: 1024)", "server log detail (default: info)"],
        "bon": ["prompts per generate() call (default: 4)"],
        "rlhf": ["sampling temperature (default: 1.0)", "(default: replace)", "the loss (see above) (default: grpo)"],
    }[command]  # fmt: skip
    for words in expected:
        assert words in text, words
    assert "(default: [])" not in text and "(default: None)" not in text


def test_negative_numbers_join_their_option_but_a_list_of_them_stays_a_list():
    """helper 81: `--label_names -1 -2` became `--label_names=-1 -2`, and -2 an unknown option."""
    from rewardforge.cli import negative_values_joined

    assert negative_values_joined(["--learning-rate", "-1e-3", "--lora"]) == [
        "--learning-rate=-1e-3",
        "--lora",
    ]
    assert negative_values_joined(["--beta", "-Infinity"]) == ["--beta=-Infinity"]
    assert negative_values_joined(["--label_names", "-1", "-2"]) == ["--label_names", "-1", "-2"]
    assert negative_values_joined(["--x=-1", "--y", "a"]) == ["--x=-1", "--y", "a"]
