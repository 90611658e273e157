"""BERT4Rec: cloze masking never shows a target, [mask] appended at inference, padding
invariance, and the masked loss learns a tiny training set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recpress_utils.losses.masked_item import mask_batch, mask_last, masked_item_loss, sessions_from_batch
from recpress_utils.models.bert4rec import BERT4Rec
from recpress_utils.sequences import PAD, Sessions, left_pad, train_batches
from recpress_utils.train import count_parameters

N_ITEMS = 31  # 30 catalogue items + padding; [mask] is id 31


def _sessions(n: int = 8, length: int = 6, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.permutation(np.arange(1, N_ITEMS))[:length] for _ in range(n)]


def _ragged_batch() -> torch.Tensor:
    rng = np.random.default_rng(1)
    return left_pad([rng.integers(1, N_ITEMS, size=n) for n in (1, 2, 3, 5, 8, 8, 4, 6)])


# -- masking ----------------------------------------------------------------------------------
def test_mask_batch_hides_every_target_and_never_masks_padding() -> None:
    items = _ragged_batch()
    mask_id = N_ITEMS
    for seed in range(20):
        masked, targets = mask_batch(items, torch.Generator().manual_seed(seed), mask_id, 0.2)
        has_target = targets != PAD
        assert (masked[has_target] == mask_id).all()  # a target position shows [mask] only
        assert (targets[has_target] == items[has_target]).all()  # target = original item
        assert (masked[~has_target] == items[~has_target]).all()  # the rest is unchanged
        assert (has_target.sum(dim=1) >= 1).all()  # at least one per (non-empty) session
        assert not (has_target & (items == PAD)).any()  # padding never masked
        assert ((masked == mask_id) == has_target).all()


def test_mask_batch_is_deterministic_and_varies_with_the_seed() -> None:
    items = _ragged_batch()
    a = mask_batch(items, torch.Generator().manual_seed(3), N_ITEMS, 0.5)
    b = mask_batch(items, torch.Generator().manual_seed(3), N_ITEMS, 0.5)
    c = mask_batch(items, torch.Generator().manual_seed(4), N_ITEMS, 0.5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_mask_batch_leaves_empty_sessions_alone() -> None:
    items = torch.tensor([[0, 0, 0], [0, 4, 5]])
    masked, targets = mask_batch(items, torch.Generator().manual_seed(0), N_ITEMS, 0.01)
    assert torch.equal(masked[0], items[0]) and (targets[0] == PAD).all()
    assert (targets[1] != PAD).sum() == 1


def test_mask_last_and_session_reconstruction() -> None:
    sessions = [np.array([3, 4, 5, 6]), np.array([7, 8])]
    batch = next(train_batches(Sessions(sessions, [np.zeros_like(s) for s in sessions]), 2,
                               torch.Generator().manual_seed(0)))
    full = sessions_from_batch(*batch)
    assert sorted(map(tuple, full.tolist())) == [(0, 0, 7, 8), (3, 4, 5, 6)]
    truncated = next(train_batches(Sessions(sessions, [np.zeros_like(s) for s in sessions]), 2,
                                   torch.Generator().manual_seed(0), max_len=2))
    assert sorted(map(tuple, sessions_from_batch(*truncated).tolist())) == [(0, 7, 8), (4, 5, 6)]
    masked, targets = mask_last(full, N_ITEMS)
    assert (masked[:, -1] == N_ITEMS).all() and torch.equal(targets[:, -1], full[:, -1])
    assert torch.equal(masked[:, :-1], full[:, :-1]) and (targets[:, :-1] == PAD).all()


def test_loss_feeds_the_model_only_masked_targets() -> None:
    """Intercept what the loss gives the model: every scored position shows [mask]."""
    model = BERT4Rec(N_ITEMS, dropout=0.0)
    seen: list[torch.Tensor] = []
    original = model.hidden
    model.hidden = lambda items: (seen.append(items.clone()), original(items))[1]  # type: ignore
    inputs, targets = left_pad([s[:-1] for s in _sessions()]), left_pad([s[1:] for s in _sessions()])
    loss = masked_item_loss(0.2, seed=0)(model, inputs, targets)
    assert torch.isfinite(loss)
    (fed,) = seen
    full = sessions_from_batch(inputs, targets)
    assert fed.shape == (2 * len(full), full.shape[1])  # cloze copy + last-item copy
    assert (fed[len(full):, -1] == N_ITEMS).all()  # last-item variant
    changed = fed != torch.cat([full, full])
    assert (fed[changed] == N_ITEMS).all()  # only [mask] replaces items


# -- inference --------------------------------------------------------------------------------
def test_last_logits_scores_a_mask_appended_after_the_session() -> None:
    torch.manual_seed(0)
    model = BERT4Rec(N_ITEMS).eval()
    items = _ragged_batch()
    appended = torch.cat([items, torch.full((len(items), 1), model.mask_id)], dim=1)
    with torch.no_grad():
        last = model.last_logits(items)
        full = model(appended)[:, -1]
    assert last.shape == (len(items), N_ITEMS)  # catalogue columns only: no [mask] column
    torch.testing.assert_close(last, full)
    assert torch.isneginf(last[:, PAD]).all()
    ids, _ = model.recommend(items, k=N_ITEMS - 1)
    assert (ids != PAD).all() and (ids < N_ITEMS).all()  # never padding, never [mask]


def test_last_logits_drops_the_oldest_item_at_max_len() -> None:
    torch.manual_seed(0)
    model = BERT4Rec(N_ITEMS, max_len=5).eval()
    items = torch.tensor([[1, 2, 3, 4, 5, 6, 7]])
    with torch.no_grad():
        got = model.last_logits(items)
        want = model(torch.tensor([[4, 5, 6, 7, model.mask_id]]))[:, -1]
    torch.testing.assert_close(got, want)


def test_left_padding_does_not_change_last_logits() -> None:
    torch.manual_seed(0)
    model = BERT4Rec(N_ITEMS).eval()
    session = torch.tensor([5, 9, 2, 17])
    rows = [torch.cat([torch.zeros(pad, dtype=torch.long), session]) for pad in (0, 1, 7)]
    with torch.no_grad():
        outs = [model.last_logits(r[None]) for r in rows]
        batched = model.last_logits(left_pad([session.numpy(), np.array([3])], 9))[:1]
    for out in outs[1:] + [batched]:
        torch.testing.assert_close(out, outs[0], rtol=1e-5, atol=1e-5)


def test_pretrained_embeddings_fill_the_catalogue_rows_only() -> None:
    model = BERT4Rec(N_ITEMS)
    mask_row = model.item_emb.weight[model.mask_id].detach().clone()
    model.init_item_embeddings(torch.ones(N_ITEMS, 64))
    assert torch.equal(model.item_emb.weight[model.mask_id], mask_row)
    assert (model.item_emb.weight[PAD] == 0).all() and (model.item_emb.weight[1] == 1).all()
    with pytest.raises(ValueError):
        model.init_item_embeddings(torch.ones(N_ITEMS + 1, 64))


def test_parameter_count_is_small() -> None:
    assert 150_000 < count_parameters(BERT4Rec(1619)) < 300_000


# -- training ---------------------------------------------------------------------------------
@pytest.fixture
def one_thread():
    """Tiny models train far faster on one thread (no contention with other jobs)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_masked_loss_learns_a_tiny_training_set(one_thread) -> None:
    torch.manual_seed(0)
    sessions = _sessions()
    inputs = left_pad([s[:-1] for s in sessions])
    targets = left_pad([s[1:] for s in sessions])
    model = BERT4Rec(N_ITEMS, emb_dim=32, ffn_dim=64, dropout=0.0)
    loss_fn = masked_item_loss(0.2, seed=0)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(200):
        optimiser.zero_grad()
        loss = loss_fn(model, inputs, targets)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:20])
    ids, _ = model.recommend(inputs, k=3)  # the session without its final item
    finals = torch.tensor([int(s[-1]) for s in sessions])
    hits = (ids == finals[:, None]).any(dim=1)
    assert hits.float().mean() >= 0.75


def test_init_std_gives_the_small_normal_init_with_zero_padding() -> None:
    torch.manual_seed(0)
    small = BERT4Rec(N_ITEMS, emb_dim=16, init_std=0.02)
    torch.manual_seed(0)
    default = BERT4Rec(N_ITEMS, emb_dim=16)
    assert small.item_emb.weight[1:].std().item() == pytest.approx(0.02, rel=0.3)
    assert default.item_emb.weight[1:].std().item() == pytest.approx(1.0, rel=0.3)  # PyTorch's N(0, 1)
    assert torch.count_nonzero(small.item_emb.weight[PAD]) == 0
    assert torch.count_nonzero(small.blocks[0].qkv.bias) == 0
