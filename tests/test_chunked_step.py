"""A training step split into chunks (one backward each) gives the gradients of the whole batch."""

import random

import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    LlamaConfig,
    LlamaForSequenceClassification,
    TrainingArguments,
)

from rewardforge.losses import LossConfig
from rewardforge.packing import group_rows, plain_row
from rewardforge.training.collator import PairCollator
from rewardforge.training.trainer import RewardTrainer

VOCAB = 64


def _model(decoder: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    if decoder:
        config = LlamaConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            num_labels=1,
            pad_token_id=0,
        )
        return LlamaForSequenceClassification(config)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=1,
        pad_token_id=0,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BertForSequenceClassification(config)


def _features(n: int, seed: int = 0, margins: bool = False) -> list[dict]:
    rng = random.Random(seed)
    feats = []
    for i in range(n):
        prompt = [rng.randrange(1, VOCAB) for _ in range(rng.randint(3, 40))]
        chosen = prompt + [rng.randrange(1, VOCAB) for _ in range(rng.randint(1, 30))]
        rejected = prompt + [rng.randrange(1, VOCAB) for _ in range(rng.randint(1, 30))]
        feats.append(
            {
                "index": i,
                "chosen_ids": chosen,
                "rejected_ids": rejected,
                "prefix_len": len(prompt),
                "margin": rng.uniform(0, 1) if margins else None,
            }
        )
    return feats


def test_pairs_stay_together_in_chunks():
    feats = _features(40, seed=1)
    batch = PairCollator(0, share_prefix=False, max_tokens_per_batch=256)(feats)
    assert len(batch["chunks"]) > 3
    seen = []
    for chunk in batch["chunks"]:
        index, side = chunk["read_index"].tolist(), chunk["read_side"].tolist()
        for j in set(index):
            assert sorted(s for i, s in zip(index, side) if i == j) == [0, 1]
        seen += list(set(index))
    assert sorted(seen) == list(range(40))


def test_grouping_bounds_added_padding_not_a_pairs_own():
    """A pair whose responses differ a lot in length is padded anyway; that must not make every
    later pair start a chunk of its own."""
    units = [[plain_row([1] * 10, i, 0), plain_row([1] * 40, i, 1)] for i in range(8)]
    chunks = group_rows(units, 10_000)
    assert len(chunks) == 1 and len(chunks[0]) == 16


def _step_grads(model, feats, *, decoder, max_tokens, loss_config, tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, disable_tqdm=True)
    trainer = RewardTrainer(
        model=model,
        args=args,
        data_collator=PairCollator(0, share_prefix=decoder, max_tokens_per_batch=max_tokens),
        is_decoder=decoder,
        loss_config=loss_config,
    )
    trainer.current_gradient_accumulation_steps = 1
    model.zero_grad()
    batch = trainer.data_collator(feats)
    loss = trainer.training_step(model, batch)
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return len(batch["chunks"]), loss.item(), grads, dict(trainer.totals)


@pytest.mark.parametrize("decoder", [True, False])
def test_chunked_backward_equals_whole_batch(decoder, tmp_path):
    feats = _features(24, seed=2, margins=True)
    config = LossConfig(beta=1.5, center_coeff=0.01, label_smoothing=0.1)
    model = _model(decoder)
    model.train()
    n_whole, loss_whole, g_whole, _ = _step_grads(
        model, feats, decoder=decoder, max_tokens=None, loss_config=config, tmp_path=tmp_path
    )
    n_chunked, loss_chunked, g_chunked, totals = _step_grads(
        model, feats, decoder=decoder, max_tokens=300, loss_config=config, tmp_path=tmp_path
    )
    assert n_whole == 1 and n_chunked >= 3
    assert loss_chunked == pytest.approx(loss_whole, abs=1e-6)
    assert g_whole.keys() == g_chunked.keys() and len(g_whole) > 0
    for name in g_whole:
        torch.testing.assert_close(g_chunked[name], g_whole[name], atol=1e-6, rtol=1e-5, msg=name)
    assert totals["pairs"] == 24


@pytest.mark.parametrize(("decoder", "max_tokens"), [(False, None), (True, None), (False, 150)])
def test_accumulated_micro_batches_of_unequal_size_learn_as_one_batch(decoder, max_tokens, tmp_path):
    """helper 78: each micro-batch's mean was divided by the accumulation steps, so at an
    epoch's last step (micro-batches of 4 and 2 pairs) the 2 pairs weighed as much as the 4;
    accuracy and margin were logged as means of micro-batch means."""
    feats = _features(6, seed=3, margins=True)
    config = LossConfig(beta=1.5, center_coeff=0.01, label_smoothing=0.1)
    model = _model(decoder)
    model.train()
    _, loss_whole, g_whole, _ = _step_grads(
        model, feats, decoder=decoder, max_tokens=None, loss_config=config, tmp_path=tmp_path
    )
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, disable_tqdm=True)
    collator = PairCollator(0, share_prefix=decoder, max_tokens_per_batch=max_tokens)
    trainer = RewardTrainer(
        model=model, args=args, data_collator=collator, is_decoder=decoder, loss_config=config
    )
    trainer.current_gradient_accumulation_steps = 2
    micro = [collator(feats[:4]), collator(feats[4:])]
    num_items = trainer._get_num_items_in_batch(micro, torch.device("cpu"))
    assert num_items == 6
    model.zero_grad()
    loss = sum(trainer.training_step(model, batch, num_items).item() for batch in micro)
    assert loss == pytest.approx(loss_whole, abs=1e-6)
    for name, grad in g_whole.items():
        torch.testing.assert_close(
            dict(model.named_parameters())[name].grad, grad, atol=1e-6, rtol=1e-5, msg=name
        )
    logs: dict = {"loss": loss}
    trainer.log(logs)
    with torch.no_grad():
        r = [trainer.pair_rewards(model, trainer._prepare_inputs(collator(feats)))]
    diff = (r[0][0] - r[0][1]).float()
    assert logs["margin"] == pytest.approx(diff.mean().item(), abs=1e-5)  # per pair
    assert logs["accuracy"] == pytest.approx((diff > 0).float().mean().item(), abs=1e-5)
