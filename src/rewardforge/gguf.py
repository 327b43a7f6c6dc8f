"""GGUF files as models: `--model file.gguf` is dequantized once into a plain Hugging Face folder
in rewardforge's cache (`REWARDFORGE_CACHE`, default ~/.cache/rewardforge), which every later run
loads as it is. Half-written conversions of killed runs are cleared."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch


def cache_dir() -> Path:
    root = os.environ.get("REWARDFORGE_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "rewardforge"
    )
    return Path(root)


def convert_gguf(gguf_path: str | os.PathLike) -> Path:
    """Dequantize a GGUF file once into a plain HF folder (cached); return the folder.

    transformers marks a GGUF-loaded model as quantized and the Trainer then refuses to train it;
    saving it with the quantizer markers cleared gives an ordinary trainable checkpoint.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rewardforge.modeling import ModelLoadError, load_failure  # (modeling imports this module)

    gguf_path = Path(gguf_path).resolve()
    if not gguf_path.is_file():
        raise ModelLoadError(f"GGUF file not found: {gguf_path}")
    stat = gguf_path.stat()
    key = hashlib.sha256(f"{gguf_path}|{stat.st_size}|{int(stat.st_mtime)}".encode()).hexdigest()[:16]
    target = cache_dir() / "gguf" / f"{gguf_path.stem}-{key}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(target.parent)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        kwargs = {"gguf_file": gguf_path.name}
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), **kwargs)
            model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), dtype=torch.float32, **kwargs)
        except Exception as e:  # noqa: BLE001 - the gguf reader fails in many ways on a bad file
            raise ModelLoadError(
                f"{gguf_path} is not a GGUF model transformers can read ({load_failure(e)})"
            ) from None
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            os.rename(staging, target)
        except OSError:  # another process converted it first
            if not (target / "config.json").is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


STALE_STAGING_SECONDS = 6 * 3600  # a conversion takes minutes; older halves were killed


def _remove_stale_staging(folder: Path) -> None:
    """Half-written conversions left by a killed run (hundreds of MB each); a running one is young."""
    now = time.time()
    for old in folder.glob(".convert-*"):
        try:
            if now - old.stat().st_mtime > STALE_STAGING_SECONDS:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            continue


def cached_copy_hint(path: str) -> str:
    """A hint when a failed folder is a GGUF file's converted copy: it may be damaged."""
    cache = cache_dir() / "gguf"
    if Path(path).resolve().parent == cache.resolve():
        return f" (this is the converted copy of a GGUF file; delete {path} to convert it again)"
    return ""
