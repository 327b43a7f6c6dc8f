"""RewardTrainer: the transformers Trainer with a Bradley-Terry loss.

Building on the Trainer (not a loop of our own) gives DeepSpeed, FSDP, DDP, mixed precision,
gradient accumulation, schedulers, checkpoints, resume and experiment trackers for free; we
only supply the loss, the pair statistics, evaluation that returns both rewards of each pair,
and checkpoints written atomically.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from rewardforge.files import give_new_file_mode
from rewardforge.losses import LossConfig, bradley_terry_loss, bradley_terry_loss_per_pair, pair_statistics
from rewardforge.modeling import META_FILE
from rewardforge.rewards import chunk_item_rewards, gather_rewards

STAGING_DIR = ".staging"
TOTALS_FILE = "rewardforge_totals.json"


class NonFiniteLossError(RuntimeError):
    """Raised when the loss is NaN/inf; the last good checkpoint is left as it is."""


class FollowsPlanOnResume:
    """A Trainer mixin (before the Trainer in the bases): on resume the learning rate is the one
    this run's schedule gives at the checkpoint's step. The Trainer restores the rate as saved,
    the checkpoint's own plan's; a resume that plans more steps ran its first step at the old
    plan's end rate (0 on a linear schedule). With the same plan the two are the same number.
    Used by RewardTrainer and by rlhf's GRPO trainers."""

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        """The saved optimizer and schedule, then this plan's rate at the checkpoint's step."""
        super()._load_optimizer_and_scheduler(checkpoint)  # type: ignore[misc]
        schedule = self.lr_scheduler
        if checkpoint is None or not isinstance(schedule, torch.optim.lr_scheduler.LambdaLR):
            return
        rates = [
            base * rate(schedule.last_epoch) for rate, base in zip(schedule.lr_lambdas, schedule.base_lrs)
        ]
        for group, lr in zip(self.optimizer.param_groups, rates, strict=True):
            group["lr"] = lr
        schedule._last_lr = rates


class RewardTrainer(FollowsPlanOnResume, Trainer):
    # compute_loss gives each micro-batch's pairs their share of the optimizer step's mean (see
    # _get_num_items_in_batch), so the Trainer must not divide it by the accumulation steps again
    loss_is_scaled_for_ga = True

    def __init__(
        self,
        *args: Any,
        loss_config: LossConfig | None = None,
        is_decoder: bool = False,
        checkpoint_meta: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.is_decoder = is_decoder
        self.checkpoint_meta = checkpoint_meta  # written as rewardforge.json into each checkpoint
        self._computed_tokens = 0
        # Run totals (training only): tokens of the pairs' sequences, tokens actually run through
        # the model (after prefix sharing), and positions computed including padding.
        self.totals = {"pair_tokens": 0, "computed_tokens": 0, "padded_positions": 0, "pairs": 0}
        self.loss_config = loss_config or LossConfig()
        self._stats: dict[str, float] = {}
        self._tokens = 0
        self._pairs = 0
        self._window_start = time.perf_counter()
        self._staging_run_dir: str | None = None
        # The summed per-step loss the Trainer sums too (its `train_loss` is this over the steps),
        # kept with each checkpoint with `totals`, so a resumed run reports the whole run's figures.
        self._loss_sum = torch.zeros(())
        self._loss_steps_from = 0  # the first step the loss sum counts (a resume without totals)
        self._totals_before = dict.fromkeys(self.totals, 0)

    # ---- loss -------------------------------------------------------------------------
    def pair_rewards(self, model: torch.nn.Module, inputs: dict[str, Any]):
        n = int(inputs["pair_index"].shape[0])
        rewards = gather_rewards(model, inputs["chunks"], n, 2, decoder=self.is_decoder)
        return rewards[:, 0], rewards[:, 1]

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> int | None:
        """The pairs of one optimizer step on this process (all its micro-batches). Each pair's
        loss is divided by it, so a step whose micro-batches differ in size (the last of an
        epoch) learns as one batch of those pairs would: divided by the accumulation steps, a
        2-pair micro-batch weighed as much as a 4-pair one. (Processes hold equal batches, as
        Accelerate's even batches make them, and DDP averages their gradients.)"""
        if batch_samples and all("pair_index" in b for b in batch_samples):
            return sum(int(b["pair_index"].shape[0]) for b in batch_samples)
        return super()._get_num_items_in_batch(batch_samples, device)

    def _loss_divisor(self, n_pairs: int, num_items_in_batch: Any) -> float:
        """What a micro-batch's summed pair losses are divided by in training: the step's pairs,
        or (not given them) its own pairs times the accumulation steps, as the Trainer would."""
        if num_items_in_batch is not None:
            return float(num_items_in_batch)
        return float(n_pairs * self.current_gradient_accumulation_steps)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        r_chosen, r_rejected = self.pair_rewards(model, inputs)
        margin = inputs.get("margin")
        n_pairs = int(r_chosen.shape[0])
        divisor = self._loss_divisor(n_pairs, num_items_in_batch) if model.training else n_pairs
        if divisor != n_pairs:
            per_pair = bradley_terry_loss_per_pair(
                r_chosen, r_rejected, config=self.loss_config, margin=margin
            )
            loss = per_pair.sum() / divisor
        else:  # the step is this batch (or an evaluation): its mean
            loss = bradley_terry_loss(r_chosen, r_rejected, config=self.loss_config, margin=margin)
        self._check_finite(loss)
        if model.training:
            self._accumulate(r_chosen, r_rejected, inputs)
        if return_outputs:
            return loss, {"r_chosen": r_chosen, "r_rejected": r_rejected}
        return loss

    def _check_finite(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite loss ({loss.item()}) at step {self.state.global_step}; "
                "try a lower learning rate or --dtype fp32"
            )

    def training_step(self, model, inputs, num_items_in_batch=None):
        if len(inputs["chunks"]) == 1:
            loss = super().training_step(model, inputs, num_items_in_batch)
        else:
            loss = self._chunked_training_step(model, inputs, num_items_in_batch)
        self._loss_sum = self._loss_sum.to(loss.device) + loss.detach().float()
        return loss

    def _chunked_training_step(self, model, inputs, num_items_in_batch=None):
        """One forward and one backward per chunk, so only one chunk's activations are alive at a
        time. Chunks hold whole pairs and each chunk's loss is its pairs' share of the step's
        mean, so the summed gradients equal those of the whole batch at once. Gradients are
        synchronised across processes only on the last chunk (`no_sync`), as in gradient
        accumulation."""
        model.train()
        if hasattr(self.optimizer, "train") and callable(self.optimizer.train):
            self.optimizer.train()
        inputs = self._prepare_inputs(inputs)
        scale = self._loss_divisor(int(inputs["pair_index"].shape[0]), num_items_in_batch)
        margin = inputs.get("margin")
        chunks = inputs["chunks"]
        total = torch.zeros((), device=self.args.device)
        seen_items, seen_rewards = [], []
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            with contextlib.nullcontext() if last else self.accelerator.no_sync(model):
                with self.compute_loss_context_manager():
                    items, rewards = chunk_item_rewards(model, chunk, 2, decoder=self.is_decoder)
                    per_pair = bradley_terry_loss_per_pair(
                        rewards[:, 0],
                        rewards[:, 1],
                        config=self.loss_config,
                        margin=None if margin is None else margin[items],
                    )
                    loss = per_pair.sum() / scale
                self._check_finite(loss)
                self.accelerator.backward(loss)
            total += loss.detach()
            seen_items.append(items)
            seen_rewards.append(rewards.detach())
        rewards = torch.cat(seen_rewards)[torch.argsort(torch.cat(seen_items))]
        self._accumulate(rewards[:, 0], rewards[:, 1], inputs)
        return total

    # ---- run totals across a resume ---------------------------------------------------
    def run_loss_sum(self) -> float:
        """The loss summed over every step of the run, before a resume too (mean over processes)."""
        here = self.accelerator.reduce(self._loss_sum.to(self.args.device), reduction="mean")
        return float(here)

    def run_totals(self) -> dict[str, int]:
        """`totals` of the whole run: every process's share, and the steps before a resume."""
        local = torch.tensor(
            [self.totals[k] for k in self.totals], dtype=torch.float64, device=self.args.device
        )
        summed = self.accelerator.reduce(local, reduction="sum").tolist()
        return {k: self._totals_before[k] + int(v) for k, v in zip(self.totals, summed)}

    def run_train_loss(self) -> float | None:
        """The mean training loss over the run's steps, those before a resume too (None: no step)."""
        steps = self.state.global_step - self._loss_steps_from
        return self.run_loss_sum() / steps if steps > 0 else None

    def restore_totals(self, checkpoint: str, step: int) -> bool:
        """The run's totals and loss sum as they were when `checkpoint` (saved at `step`) was
        saved; False for a checkpoint saved without them (this run's counts then start at it)."""
        try:
            saved = json.loads(Path(checkpoint, TOTALS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self._loss_steps_from = step
            return False
        self._totals_before.update(
            {k: int(v) for k, v in saved.get("totals", {}).items() if k in self.totals}
        )
        # the sum goes on from the saved one, so one process adds the same numbers in the same
        # order as a run that was never stopped (a separate total added at the end rounded apart)
        self._loss_sum = torch.tensor(float(saved.get("loss_sum", 0.0)))
        return True

    def _accumulate(self, r_chosen, r_rejected, inputs) -> None:
        n = int(r_chosen.shape[0])
        for key, value in pair_statistics(r_chosen, r_rejected).items():  # summed per pair
            self._stats[key] = self._stats.get(key, 0.0) + value * n
        self._tokens += int(inputs["pair_tokens"].item())
        computed = int(sum(c["real_tokens"].item() for c in inputs["chunks"]))
        self._computed_tokens += computed
        self.totals["pair_tokens"] += int(inputs["pair_tokens"].item())
        self.totals["computed_tokens"] += computed
        self.totals["padded_positions"] += int(sum(c["input_ids"].numel() for c in inputs["chunks"]))
        self.totals["pairs"] += int(r_chosen.shape[0])
        self._pairs += int(r_chosen.shape[0])

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "train_loss" in logs and "train_runtime" in logs:  # the end-of-training summary
            logs["train_loss"] = self.run_train_loss()  # the whole run's, not the steps since a resume
        if self._pairs and "loss" in logs:  # every process logs here (the loss was gathered)
            elapsed = max(time.perf_counter() - self._window_start, 1e-9)
            keys = sorted(self._stats)
            here = [self._stats[k] for k in keys] + [self._pairs, self._tokens, self._computed_tokens]
            summed = torch.tensor(here, dtype=torch.float64, device=self.args.device)
            if self.args.world_size > 1:  # every process's pairs, as the loss has them
                summed = self.accelerator.reduce(summed, reduction="sum")
            *totals, pairs, tokens, computed = summed.tolist()
            for key, total in zip(keys, totals):  # per pair, not per micro-batch
                logs[key] = round(total / max(pairs, 1), 6)
            logs["pairs_per_second"] = round(pairs / elapsed, 3)
            logs["tokens_per_second"] = round(tokens / elapsed, 1)
            logs["computed_tokens_per_second"] = round(computed / elapsed, 1)
            self._stats, self._tokens, self._pairs = {}, 0, 0
            self._computed_tokens = 0
            self._window_start = time.perf_counter()
        super().log(logs, *args, **kwargs)

    # ---- evaluation -------------------------------------------------------------------
    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss, out = self.compute_loss(model, inputs, return_outputs=True)
        scores = torch.stack([out["r_chosen"], out["r_rejected"]], dim=1)
        return loss.detach(), scores.detach(), inputs["pair_index"]

    # ---- atomic checkpoints -----------------------------------------------------------
    def _get_output_dir(self, trial):
        if self._staging_run_dir is not None:
            return self._staging_run_dir
        return super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial):
        """Write the checkpoint into a staging folder and rename it into place when complete,
        so a crash (even kill -9) never leaves a half-written checkpoint-N for --resume."""
        run_dir = super()._get_output_dir(trial)
        staging = os.path.join(run_dir, STAGING_DIR)
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        if self.args.should_save and os.path.isdir(os.path.join(staging, name)):
            shutil.rmtree(os.path.join(staging, name))
        self._staging_run_dir = staging
        totals = {"totals": self.run_totals(), "loss_sum": self.run_loss_sum()}  # every process reduces
        try:
            super()._save_checkpoint(model, trial)
            best = self.state.best_model_checkpoint
            if best and best.startswith(staging):  # where it will be once renamed, also in the saved state
                self.state.best_model_checkpoint = os.path.join(run_dir, os.path.basename(best))
            if self.args.should_save:
                Path(staging, name, TOTALS_FILE).write_text(json.dumps(totals) + "\n", encoding="utf-8")
                if self.checkpoint_meta is not None:
                    meta = {**self.checkpoint_meta, "step": self.state.global_step}
                    Path(staging, name, META_FILE).write_text(
                        json.dumps(meta, indent=2) + "\n", encoding="utf-8"
                    )
                self.state.save_to_json(os.path.join(staging, name, TRAINER_STATE_NAME))
                give_new_file_mode(Path(staging, name).glob("*.safetensors"))  # a checkpoint is a model too
        except BaseException:  # a full disk, Ctrl-C: no half-written checkpoint is left behind
            if self.args.should_save:
                shutil.rmtree(os.path.join(staging, name), ignore_errors=True)
                with contextlib.suppress(OSError):
                    os.rmdir(staging)
            raise
        finally:
            self._staging_run_dir = None
        self.accelerator.wait_for_everyone()
        final = os.path.join(run_dir, name)
        if self.args.should_save:
            if os.path.isdir(final):
                shutil.rmtree(final)
            os.replace(os.path.join(staging, name), final)
            from transformers.trainer_utils import rotate_checkpoints

            rotate_checkpoints(
                output_dir=run_dir,
                save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=False,
            )
        self.accelerator.wait_for_everyone()
