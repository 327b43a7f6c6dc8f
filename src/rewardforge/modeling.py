"""Loading, adapting and saving reward models: any AutoModelForSequenceClassification with one output.

A reward model here is a plain Hugging Face sequence classifier (num_labels=1,
problem_type="regression"), so `transformers.pipeline("text-classification")` loads the saved
folder with no rewardforge import and returns raw rewards. A GGUF file is converted once by
`rewardforge.gguf`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rewardforge.attention import enable_packed_attention, full_causal_attention
from rewardforge.files import atomic_write_text, give_new_file_mode
from rewardforge.formatting import TextFormat
from rewardforge.gguf import cached_copy_hint, convert_gguf

META_FILE = "rewardforge.json"
FORMAT_KINDS = ("plain", "chat_template")
HEAD_NAMES = ("score", "classifier", "v_head")
DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


class ModelLoadError(RuntimeError):
    """The model could not be found or built; the CLI reports it without a traceback."""


@dataclass
class LoraSettings:
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] | None = None  # None: every linear layer of the backbone


@dataclass
class LoadedModel:
    model: nn.Module
    tokenizer: Any
    text_format: TextFormat
    source: str  # what the user asked for
    path: str  # the local folder actually loaded (GGUF: the converted cache folder)
    is_decoder: bool
    meta: dict[str, Any] = field(default_factory=dict)  # rewardforge.json of a saved RM, if any
    packed: bool = False  # decoder attention reads packed spans (rewardforge.attention)
    fresh_head: bool = False  # the checkpoint had no score head: it was newly initialised
    # responses may share one computed prompt: a decoder whose every layer attends to all earlier
    # tokens (a sliding window or softcapping is not kept by the shared rows' own masks)
    shares_prefix: bool = False


def _head_mismatch(e: BaseException) -> bool:
    text = str(e).lower()  # not PEFT's "mismatched target modules": an adapter on another model
    return "size mismatch" in text or "ignore_mismatched_sizes" in text


def load_failure(e: BaseException) -> str:
    """One line on why loading a model failed (libraries raise multi-line reports)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    first = (lines[0] if lines else "").replace("For details look at the above report!", "").strip()
    if "tokenizer" in first.lower() and first.endswith(":"):  # "...the backend tokenizer from one of:"
        first += " (are the tokenizer files missing from the folder?)"
    text = f"{type(e).__name__}: {first}"
    if _head_mismatch(e):
        return (
            "its weights do not fit a reward model with one output (is it a classifier with "
            f"several labels? a reward model has num_labels=1) ({text})"
        )
    return text


def no_reward_head(name: str) -> str:
    """Why a model without a trained score head cannot score: its head would be random."""
    return (
        f"{name!r} has no trained reward head (its checkpoint holds no score/classifier weights, so "
        "its scores would be random): train one with `rewardforge train --model ...`, or pass a reward model"
    )


def _looks_local(name: str) -> bool:
    """A path the user meant as a local one; a Hub id is 'name' or 'org/name' with no folder 'org' here."""
    if name.startswith((".", "/", "~")) or name.endswith("/") or "\\" in name or name.count("/") > 1:
        return True
    return "/" in name and os.path.isdir(name.split("/", 1)[0])


def resolve_model_path(name_or_path: str) -> str:
    """A local folder, a GGUF file (converted and cached), or a Hub id (left to transformers)."""
    if not name_or_path:
        raise ModelLoadError("no model given (empty --model)")
    if name_or_path.endswith(".gguf"):
        return str(convert_gguf(name_or_path))
    if not os.path.exists(name_or_path) and _looks_local(name_or_path):
        raise ModelLoadError(f"no such model folder or file: {name_or_path}")
    if os.path.exists(name_or_path):
        if not os.path.isdir(name_or_path) or not os.path.isfile(os.path.join(name_or_path, "config.json")):
            from rewardforge.training.output import checkpoints  # (it imports this module)

            newest = checkpoints(Path(name_or_path))[:1] if os.path.isdir(name_or_path) else []
            if newest:
                raise ModelLoadError(
                    f"{name_or_path} is a training run with no model yet (it stopped early?): continue it "
                    f"with the same `rewardforge train` command and --resume, or use a checkpoint "
                    f"as the model: {newest[0]}"
                )
            what = (
                "is a file, not a model folder" if os.path.isfile(name_or_path) else "is not a model folder"
            )
            raise ModelLoadError(f"{name_or_path} {what} (a folder with config.json) nor a .gguf file")
    return name_or_path


def read_meta(path: str) -> dict[str, Any]:
    """A model folder's rewardforge.json ({} when it has none), checked where scoring reads it:
    a damaged file is named, not met later as a traceback or as scores in another format."""
    meta_path = os.path.join(path, META_FILE)
    if not os.path.isfile(meta_path):
        return {}
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{meta_path}: unreadable ({type(e).__name__}: {e})") from None
    problem = _meta_problem(meta)
    if problem:
        raise ModelLoadError(f"{meta_path}: {problem} (written by rewardforge train; restore or delete it)")
    return meta


def _meta_problem(meta: Any) -> str | None:
    if not isinstance(meta, dict):
        return f"expected a JSON object, got {type(meta).__name__}"
    fmt = meta.get("format")
    if fmt is not None:
        if not isinstance(fmt, dict):
            return f"'format' must be an object, got {fmt!r:.60}"
        if fmt.get("kind", "plain") not in FORMAT_KINDS:
            return f"'format.kind' must be one of {', '.join(FORMAT_KINDS)}, got {fmt.get('kind')!r:.60}"
    length = meta.get("max_length")
    if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 1):
        return f"'max_length' must be a whole number of tokens >= 1, got {length!r:.60}"
    for key in ("loss", "metrics"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            return f"{key!r} must be an object, got {meta[key]!r:.60}"
    base = meta.get("base_model")
    if base is not None and not isinstance(base, str):
        return f"'base_model' must be a text, got {base!r:.60}"
    return None


def ensure_pad_token(tokenizer: Any, model: nn.Module | None, text_format: TextFormat) -> None:
    """Give the tokenizer a pad token that can never be the last token of a formatted text.

    Decoder classifiers find the scored token as the last one that is not `pad_token_id`;
    if the pad id could end a text, scores would be read at the wrong place.
    """
    probe = text_format.render(
        tokenizer, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    )
    last = tokenizer(probe)["input_ids"][-1]
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == last:
        candidates = [tokenizer.unk_token_id] + list(getattr(tokenizer, "all_special_ids", []))
        chosen = next((c for c in candidates if c is not None and c != last), None)
        if chosen is not None:
            tokenizer.pad_token = tokenizer.convert_ids_to_tokens(chosen)
        else:
            tokenizer.add_special_tokens({"pad_token": "<|rewardforge_pad|>"})
            if model is not None:
                model.resize_token_embeddings(len(tokenizer))
    if model is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id


def made_afresh(model: nn.Module, loading_info: dict[str, Any]) -> bool:
    """Whether from_pretrained (`output_loading_info=True`) initialised weights outside the
    backbone: a head the checkpoint does not hold (a score head, or an LM head)."""
    backbone = f"{model.base_model_prefix}."
    return any(not key.startswith(backbone) for key in loading_info.get("missing_keys", ()))


def head_module_names(model: nn.Module) -> list[str]:
    """The classifier's own modules: every child with weights besides the backbone (`score`,
    `classifier`, DistilBERT's `pre_classifier`, DeBERTa's `pooler`, BART's `classification_head`)."""
    backbone = getattr(model, "base_model_prefix", "")
    return [
        name
        for name, child in model.named_children()
        if name != backbone and next(child.parameters(), None) is not None
    ]


def _backbone_linears(model: nn.Module) -> list[str]:
    """Full names of the backbone's linear layers. GPT-2 style models write theirs as
    transformers' Conv1D, which PEFT adapts too."""
    from transformers.pytorch_utils import Conv1D

    heads = tuple(f"{h}." for h in head_module_names(model))
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear | Conv1D) and not f"{name}.".startswith(heads)
    ]


def default_lora_targets(model: nn.Module) -> list[str]:
    """Every linear layer of the backbone, by leaf name (per architecture), never the head."""
    return sorted({name.rsplit(".", 1)[-1] for name in _backbone_linears(model)})


def apply_lora(model: nn.Module, settings: LoraSettings) -> nn.Module:
    """Wrap in a PEFT LoRA model; the score head stays fully trainable and is always saved."""
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers.pytorch_utils import Conv1D

    heads = head_module_names(model)
    # full names by default: a leaf name such as "out_proj" or "dense" would also match the head's
    targets = settings.target_modules or _backbone_linears(model)
    names = [name for name, _ in model.named_modules()]
    # PEFT wraps what any name matches and says nothing of a name that matches nothing (a typo)
    unmatched = [t for t in targets if not any(n == t or n.endswith(f".{t}") for n in names if t)]
    if unmatched:
        raise ModelLoadError(
            f"LoRA target module {unmatched[0]!r} matches no module of {type(model).__name__} (its linear "
            f"layers: {', '.join(default_lora_targets(model)) or 'none'}; set them with --lora-target-modules)"
        )
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets,
        modules_to_save=heads,
        # Conv1D (GPT-2) stores its weight transposed
        fan_in_fan_out=any(
            isinstance(m, Conv1D) and (n in targets or n.rsplit(".", 1)[-1] in targets)
            for n, m in model.named_modules()
        ),
    )
    try:
        with warnings.catch_warnings():  # PEFT calls a deprecated transformers property
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            peft_model = get_peft_model(model, config)
    except (ValueError, TypeError) as exc:  # PEFT's NoMatchingPeftModuleError and other target mistakes
        found = ", ".join(default_lora_targets(model)) or "none"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        asked = settings.target_modules or default_lora_targets(model)
        raise ModelLoadError(
            f"LoRA cannot wrap {type(model).__name__} with target modules {sorted(asked)}: "
            f"{first} (its linear layers: {found}; set them with --lora-target-modules)"
        ) from None
    for name, param in peft_model.named_parameters():
        if any(f".{h}." in f".{name}" for h in heads) and "original_module" not in name:
            param.requires_grad_(True)
    return peft_model


def bf16_supported() -> bool:
    """True on GPUs with bf16 and on CPUs with native bf16 matmul (avx512_bf16 / AMX)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str) -> str:
    if precision not in {"auto", "fp32", "bf16"}:
        raise ModelLoadError(f"unknown precision {precision!r}; choose auto, fp32 or bf16")
    if precision == "auto":
        return "bf16" if bf16_supported() else "fp32"
    return precision


def disable_dropout(model: nn.Module) -> None:
    """Zero every dropout: the two rewards of a pair must come from the same function, or the
    difference the loss sees is partly noise (TRL does the same by default). Besides dropout
    layers, many decoders keep a rate as a plain number their forward reads in training
    (Llama's `attention_dropout`, StarCoder2's `residual_dropout`, OPT's `dropout`): zeroed too.
    The config, and so the saved model, keeps the user's rates."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        for name, value in list(vars(module).items()):
            if "dropout" in name.lower() and type(value) is float:
                setattr(module, name, 0.0)


# Decoders whose rewards we read ourselves (explicit position ids, 4D masks for prefix sharing,
# the head's output at the last real token), each checked against the model's own forward and
# `pipeline` (tests/test_architectures.py and session probes). Others, e.g. ALiBi models (bloom,
# falcon) whose padded batches this reading gets wrong, run their own forward and pooling:
# correct scores, without prefix sharing.
READ_AT_LAST_TOKEN = {
    "llama",
    "qwen2",
    "qwen3",
    "mistral",
    "mixtral",
    "gemma",
    "gemma2",
    "gemma3",
    "gemma3_text",
    "phi",
    "phi3",
    "gpt2",
    "gpt_neox",
    "opt",
    "olmo",
    "olmo2",
    "smollm3",
    "stablelm",
    "starcoder2",
    "granite",
}


def is_decoder_config(config: Any) -> bool:
    """Whether we read the rewards ourselves. Not "any *ForCausalLM": a Falcon or BLOOM checkpoint
    says that too, and reading theirs our way gives padded batches other scores."""
    return getattr(config, "model_type", "") in READ_AT_LAST_TOKEN


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)


def _build_classifier(
    path: str, kwargs: dict[str, Any], name: str, fresh_head_ok: bool
) -> tuple[nn.Module, bool]:
    """from_pretrained, again without the attention choice if the model refuses it, or (training
    only) with a new head if the saved one has another number of outputs. Also says whether the
    head was newly initialised (missing from the checkpoint, or replaced)."""
    from transformers import AutoModelForSequenceClassification

    def build(**extra: Any) -> tuple[nn.Module, bool]:
        # transformers' load report would list the missing head; the callers say what it means
        with quiet_transformers():
            model, info = AutoModelForSequenceClassification.from_pretrained(
                path, output_loading_info=True, **extra
            )
        return model, made_afresh(model, info) or bool(info.get("mismatched_keys"))

    try:
        return build(**kwargs)
    except (ValueError, TypeError) as e:
        if "attn_implementation" not in kwargs or "attn" not in str(e).lower():
            raise
        return build(**{k: v for k, v in kwargs.items() if k != "attn_implementation"})
    except RuntimeError as e:
        if not (fresh_head_ok and _head_mismatch(e)):
            raise
        print(
            f"[rewardforge] {name}: its classification head has another size; a new one-output head is trained"
        )
        return build(ignore_mismatched_sizes=True, **kwargs)


def load_reward_model(
    name_or_path: str,
    *,
    dtype: str = "fp32",
    lora: LoraSettings | None = None,
    gradient_checkpointing: bool = False,
    seed: int | None = None,
    attn_implementation: str | None = "sdpa",
    keep_dropout: bool = False,
    fresh_head_ok: bool = False,
) -> LoadedModel:
    """Build the classifier with one output. The seed is set before any weight is created, so a
    fresh score head is the same on every run with the same seed. `fresh_head_ok` (training)
    replaces a saved head of another size; a scorer must not, as it would score at random."""
    from transformers import AutoConfig, AutoTokenizer, set_seed

    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}; choose fp32 or bf16")
    name_or_path = os.fspath(name_or_path)
    if _is_adapter_folder(name_or_path):
        loaded = _load_adapter(
            name_or_path,
            dtype=dtype,
            attn_implementation=attn_implementation,
            seed=seed,
            keep_dropout=keep_dropout,
        )
        loaded.model.requires_grad_(True)  # PEFT froze the base; merged, it trains as a full model
        # a new adapter trained on top records this folder as its base (PEFT reads name_or_path),
        # so it loads as the model that was trained, not as the first base plus the new adapter
        loaded.model.name_or_path = loaded.model.config._name_or_path = name_or_path
        return dataclasses.replace(
            loaded,
            model=_for_training(loaded.model, lora=lora, gradient_checkpointing=gradient_checkpointing),
        )
    path = resolve_model_path(name_or_path)
    try:
        config = AutoConfig.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError) as e:
        where = "" if os.path.exists(path) else " (not a local folder, and the Hub could not provide it)"
        raise ModelLoadError(f"cannot load model {name_or_path!r}{where}: {load_failure(e)}") from None
    _check_tokenizer(tokenizer, config, name_or_path, path)
    meta = read_meta(path)
    config.num_labels = 1
    config.problem_type = "regression"
    config.id2label, config.label2id = {0: "reward"}, {"reward": 0}
    if seed is not None:
        set_seed(seed)
    kwargs: dict[str, Any] = {"config": config, "dtype": DTYPES[dtype]}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model, fresh_head = _build_classifier(path, kwargs, name_or_path, fresh_head_ok)
    except Exception as e:  # noqa: BLE001 - torn weights raise safetensors' and pickle's own errors
        raise ModelLoadError(
            f"cannot build a one-output classifier from {name_or_path!r}: {load_failure(e)}{cached_copy_hint(path)}"
        ) from None
    text_format = saved_format(meta, tokenizer)
    ensure_pad_token(tokenizer, model, text_format)
    if not keep_dropout:
        disable_dropout(model)
    tokenizer.padding_side = "right"
    is_decoder = is_decoder_config(config)
    # responses share a computed prompt only where every layer sees all earlier tokens; packed
    # spans (a faster way to share) also need the attention to go through AttentionInterface
    shares_prefix = is_decoder and full_causal_attention(config)
    packed = shares_prefix and enable_packed_attention(model)
    model = _for_training(model, lora=lora, gradient_checkpointing=gradient_checkpointing)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        text_format=text_format,
        source=name_or_path,
        path=path,
        is_decoder=is_decoder,
        meta=meta,
        packed=packed,
        fresh_head=fresh_head,
        shares_prefix=shares_prefix,
    )


def _for_training(model: nn.Module, *, lora: LoraSettings | None, gradient_checkpointing: bool) -> nn.Module:
    """Gradient checkpointing and LoRA, as training asks for them (a scorer asks for neither)."""
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if lora is not None:
        if gradient_checkpointing:
            model.enable_input_require_grads()
        model = apply_lora(model, lora)
    return model


def saved_format(meta: dict[str, Any], tokenizer: Any) -> TextFormat:
    """The text format a model was trained with; with none recorded (trained elsewhere, or an
    old rewardforge.json), its tokenizer's chat template if it has one, else the plain format."""
    return TextFormat.from_dict(meta["format"]) if meta.get("format") else TextFormat.for_tokenizer(tokenizer)


def _check_tokenizer(tokenizer: Any, config: Any, name: str, path: str) -> None:
    """A folder with no tokenizer files of its own can still give a tokenizer (BERT's class
    builds one of five special tokens): every word would be [UNK], every score the same. (A
    small vocabulary of its own, beside a config's default vocab_size, is fine.)"""
    if not os.path.isdir(path) or any(_is_tokenizer_file(f) for f in os.listdir(path)):
        return
    vocab = getattr(config, "vocab_size", None)
    if isinstance(vocab, int) and vocab >= 1000 and len(tokenizer) < vocab // 10:
        raise ModelLoadError(
            f"{name!r}: its tokenizer knows {len(tokenizer)} tokens for a model of {vocab}: are the "
            "tokenizer files (tokenizer.json, vocab.txt, tokenizer_config.json) missing from the folder?"
        )


def _is_tokenizer_file(name: str) -> bool:
    """tokenizer.json/_config.json, vocab.txt/.json, merges.txt, *.model / *.spm (SentencePiece)."""
    return name.startswith(("tokenizer", "vocab", "merges", "special_tokens")) or name.endswith(
        (".model", ".spm")
    )


def _is_adapter_folder(path: str) -> bool:
    folder = Path(path)
    return (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file()


def _load_adapter(
    path: str, *, dtype: str, attn_implementation: str | None, seed: int | None, keep_dropout: bool
) -> LoadedModel:
    """A `train --lora --save-adapter` folder: its base model with the adapter (and the trained
    head it saves) merged in, scored as the merged save would be."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    try:
        base = json.loads((Path(path) / "adapter_config.json").read_text(encoding="utf-8"))[
            "base_model_name_or_path"
        ]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(f"{path}: unreadable adapter_config.json ({e})") from None
    if not isinstance(base, str) or not base:
        raise ModelLoadError(
            f"{path}: adapter_config.json names no base model (base_model_name_or_path {base!r})"
        )
    meta = read_meta(path)
    recorded = meta.get("base_model")
    gguf = isinstance(recorded, str) and recorded.endswith(".gguf") and os.path.isfile(recorded)
    if gguf and not os.path.exists(base):  # the GGUF's converted copy left the cache (or the run moved)
        base = recorded  # converted again, as training did
    try:
        loaded = load_reward_model(
            base,
            dtype=dtype,
            attn_implementation=attn_implementation,
            fresh_head_ok=True,
            seed=seed,
            keep_dropout=keep_dropout,
        )
    except ModelLoadError as e:  # the adapter is fine; the model it was trained on is not there
        raise ModelLoadError(
            f"{path} is a LoRA adapter, and its base model {base!r} (base_model_name_or_path in "
            f"adapter_config.json) cannot be loaded: {e}"
        ) from None
    try:
        with warnings.catch_warnings():  # PEFT calls a deprecated transformers property
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model = PeftModel.from_pretrained(loaded.model, path).merge_and_unload()
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as e:  # noqa: BLE001 - torn adapter weights raise safetensors' own errors
        raise ModelLoadError(f"cannot apply the LoRA adapter {path} to {base!r}: {load_failure(e)}") from None
    text_format = saved_format(meta, tokenizer)
    ensure_pad_token(tokenizer, model, text_format)
    tokenizer.padding_side = "right"
    return dataclasses.replace(
        loaded, model=model, tokenizer=tokenizer, text_format=text_format, source=path, path=path, meta=meta,
        fresh_head=False,  # the adapter saves the trained head (modules_to_save)
    )  # fmt: skip


def position_limit(model: nn.Module) -> int | None:
    """The longest sequence the model's position embeddings cover (None if it does not say)."""
    positions = getattr(model.config, "max_position_embeddings", None) or getattr(
        model.config, "n_positions", None
    )
    if not isinstance(positions, int) or positions <= 0:
        return None
    # RoBERTa-style embeddings (XLM-R, MPNet, ...) number positions from padding_idx + 1: of
    # roberta-base's 514, 512 are usable
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    embeddings = getattr(getattr(inner, "base_model", inner), "embeddings", None)
    padding_idx = getattr(embeddings, "padding_idx", None)
    if isinstance(padding_idx, int) and hasattr(embeddings, "create_position_ids_from_input_ids"):
        positions -= padding_idx + 1
    return positions if positions > 0 else None


def save_reward_model(
    model: nn.Module,
    tokenizer: Any,
    output_dir: str | os.PathLike,
    meta: dict[str, Any],
    *,
    save_adapter: bool = False,
    weights: bool = True,
) -> None:
    """Save a standard HF folder (+ rewardforge.json). LoRA is merged unless `save_adapter`.
    `weights=False`: they are saved already (an adapter saved before its model was merged), and
    rewardforge.json, written last, completes the folder.

    Files are written into a staging folder first and moved in one by one with os.replace, so
    an interrupted save never leaves a half-written weight file under its final name.
    """
    output_dir = Path(output_dir)
    if weights:
        save_hf_folder(model, tokenizer, output_dir, merge_lora=not save_adapter, problem_type="regression")
    atomic_write_text(output_dir / META_FILE, json.dumps(meta, indent=2, default=str) + "\n")


# Weight files of a saved model or adapter: a save removes those it did not write itself, so an
# adapter from an earlier save is never loaded beside (or instead of) the merged model.
# What save_pretrained writes for weights (shards numbered as it numbers them), by exact name: a
# user's model_backup.safetensors beside them is not one.
WEIGHT_FILE = re.compile(
    r"(?:model|pytorch_model)(?:-\d{5}-of-\d{5})?\.(?:safetensors|bin)"
    r"|(?:model\.safetensors|pytorch_model\.bin)\.index\.json|adapter_model\.(?:safetensors|bin)|adapter_config\.json"
)


def _adapter_card(path: Path) -> bool:
    """The model card PEFT writes beside an adapter (README.md naming `library_name: peft`): left
    beside a merged model it would describe an adapter that is not there. A user's README stays."""
    if path.name != "README.md":
        return False
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:2000]
    except OSError:
        return False
    return head.startswith("---") and "library_name: peft" in head


def save_hf_folder(
    model: nn.Module,
    tokenizer: Any,
    output_dir: str | os.PathLike,
    *,
    merge_lora: bool,
    problem_type: str | None = None,
) -> nn.Module:
    """save_pretrained (model + tokenizer) into a staging folder, then move each file into place
    with os.replace: an interrupted save never leaves a half-written file under its final name.
    LoRA is merged first when `merge_lora`. Returns the model that was saved."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    to_save = model.merge_and_unload() if merge_lora and hasattr(model, "merge_and_unload") else model
    if problem_type:
        to_save.config.problem_type = problem_type
    staging = Path(tempfile.mkdtemp(prefix=".save-", dir=output_dir))
    try:
        with warnings.catch_warnings():  # PEFT looks for a config.json in an adapter base: none there
            warnings.filterwarnings("ignore", message="Could not find a config file", category=UserWarning)
            to_save.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        written = {item.name for item in staging.iterdir()}
        give_new_file_mode(item for item in staging.iterdir() if item.is_file())
        for item in staging.iterdir():
            dest = output_dir / item.name
            if dest.is_dir():
                shutil.rmtree(dest)
            os.replace(item, dest)
        for stale in output_dir.iterdir():  # another kind of save before (an adapter, shards): not ours now
            if (
                stale.is_file()
                and stale.name not in written
                and (WEIGHT_FILE.fullmatch(stale.name) or _adapter_card(stale))
            ):
                stale.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return to_save
