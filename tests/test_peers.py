"""Tests for the peer models (Popularity, GRU4Rec, SASRec) and SASRec's losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recpress_utils import losses
from recpress_utils.losses import (bce_one_negative, full_cross_entropy, sampled_cross_entropy,
                                   sampled_softmax_loss, scores_for)
from recpress_utils.models import GRU4Rec, Popularity, SASRec
from recpress_utils.sequences import left_pad
from tests.conftest import assert_causal

N_ITEMS = 31
CLASSES = {
    "gru4rec": (GRU4Rec, {"emb_dim": 16, "gru_dim": 16}),
    "gru4rec_tied": (GRU4Rec, {"emb_dim": 16, "gru_dim": 16, "tied": True}),
    "sasrec": (SASRec, {"emb_dim": 16, "n_heads": 2, "ffn_dim": 32, "max_len": 12}),
    "popularity": (Popularity, {"emb_dim": 16}),
}


def make(name: str, seed: int = 0):
    torch.manual_seed(seed)
    cls, kwargs = CLASSES[name]
    return cls(N_ITEMS, **kwargs).eval()


def tiny_set(seed: int = 3, n: int = 8, length: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    rows = [rng.integers(1, N_ITEMS, size=int(rng.integers(3, length + 1))) for _ in range(n)]
    return left_pad([s[:-1] for s in rows], length - 1), left_pad([s[1:] for s in rows], length - 1)



# -- models -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CLASSES))
def test_causal_and_padding_invariant(name: str, deterministic) -> None:
    model = make(name)
    rng = np.random.default_rng(1)
    rows = [rng.integers(1, N_ITEMS, size=n) for n in (8, 5, 3, 8)]
    items = left_pad(rows, 8)
    base, _ = assert_causal(model, items, N_ITEMS)
    with torch.no_grad():
        longer = model(left_pad(rows, 11))
        torch.testing.assert_close(longer[:, -8:][items != 0], base[items != 0],
                                   atol=1e-5, rtol=0)
        assert torch.isinf(base[..., 0]).all() and torch.isfinite(base[..., 1:]).all()
        torch.testing.assert_close(model.last_logits(items), base[:, -1])


def test_sasrec_shares_input_and_output_item_embeddings() -> None:
    model = make("sasrec")
    items = left_pad([np.array([1, 2, 3]), np.array([4, 5])], 4)
    # the only (n_items x ...) tensors are the item embedding and the fixed zero bias
    item_sized = [n for n, p in model.named_parameters() if p.shape[0] == N_ITEMS]
    assert item_sized == ["item_emb.weight"]
    assert not any(p.requires_grad for p in model.output.parameters())
    with torch.no_grad():
        h = model.hidden(items)
        logits = model.head(h)
        torch.testing.assert_close(logits[..., 1:], (h @ model.item_emb.weight.T)[..., 1:])
        # changing an item's embedding that is NOT in the input changes only its logit column
        model.item_emb.weight[7] += torch.randn(model.emb_dim)  # (not a constant: LN output sums to 0)
        changed = model(items)
    assert not torch.allclose(changed[..., 7], logits[..., 7])
    torch.testing.assert_close(changed[..., 8:], logits[..., 8:])
    model.item_emb.weight.grad = None
    model.train()
    model(items)[..., 1:].sum().backward()
    assert model.item_emb.weight.grad[9].abs().sum() > 0  # output-side gradient for unseen item


def test_tied_gru4rec_scores_with_its_input_embeddings_and_a_learned_bias() -> None:
    """The official GRU4Rec's constrained embedding: no separate output matrix; the item
    embeddings score, start small, and an item's output-side gradient reaches its embedding."""
    model = make("gru4rec_tied")
    item_sized = sorted(n for n, p in model.named_parameters() if p.shape[0] == N_ITEMS)
    assert item_sized == ["item_emb.weight", "output.0.bias"]
    assert model.item_emb.weight.abs().max() <= (6 / (N_ITEMS + 16)) ** 0.5
    items = left_pad([np.array([1, 2, 3]), np.array([4, 5])], 4)
    with torch.no_grad():
        model.output[0].bias.normal_()
        h = model.hidden(items)
        torch.testing.assert_close(model.head(h)[..., 1:], (h @ model.item_emb.weight.T + model.output[0].bias)[..., 1:])
    weight, bias = model.item_output()
    assert weight is model.item_emb.weight and bias is model.output[0].bias
    model.train()
    model(items)[..., 1:].sum().backward()
    assert model.item_emb.weight.grad[9].abs().sum() > 0  # item 9 is not in the input
    with pytest.raises(ValueError, match="emb_dim"):
        GRU4Rec(N_ITEMS, emb_dim=16, gru_dim=32, tied=True)
    assert GRU4Rec(N_ITEMS, gru_dim=32, tied=True).emb_dim == 32  # the embedding width follows the GRU's


def test_untied_gru4rec_is_unchanged_by_the_tied_option() -> None:
    """The default head is the plain linear layer of before: same weights from the same seed."""
    torch.manual_seed(0)
    model = GRU4Rec(N_ITEMS, emb_dim=16, gru_dim=16)
    items = left_pad([np.array([1, 2, 3])], 3)
    with torch.no_grad():
        h = model.hidden(items)
        expected = h @ model.output[0].weight.T + model.output[0].bias
        torch.testing.assert_close(model.head(h)[..., 1:], expected[..., 1:])
    assert isinstance(model.output[0], torch.nn.Linear)


def test_recurrent_models_share_one_padding_helper() -> None:
    import recpress_utils.models.baseline as baseline
    import recpress_utils.models.gru4rec as gru4rec
    from recpress_utils.models.layers import shift_rows
    assert gru4rec.shift_rows is baseline.shift_rows is shift_rows


def test_popularity_ranks_by_count_ties_by_index() -> None:
    model = make("popularity")
    train = [np.array([5, 3, 5, 7]), np.array([3, 5, 9]), np.array([7, 2])]
    counts = model.fit_counts(train)
    assert counts[5] == 3 and counts[3] == 2 and counts[7] == 2 and counts[0] == 0
    items = left_pad([np.array([1, 2]), np.array([4])], 3)
    ids, scores = model.recommend(items, k=6)
    expected = [5, 3, 7, 2, 9, 1]  # 3 ; 2, 2 ; 1, 1 ; then count 0 by index
    assert ids.tolist() == [expected, expected]
    assert (scores[:, :-1] >= scores[:, 1:]).all()
    logits = model(items)
    torch.testing.assert_close(logits[0, -1, 1:], torch.log1p(torch.tensor(counts[1:])).float())
    with pytest.raises(ValueError, match="item ids"):
        model.fit_counts([np.array([N_ITEMS])])


def test_popularity_ties_are_ranked_pessimistically_in_the_metrics() -> None:
    """Equal counts are real ties: the evaluated rank puts the target after its equals, so
    popularity earns its true score and no more (its recommend list keeps an index order)."""
    from recpress_utils.metrics import target_ranks
    model = make("popularity")
    model.fit_counts([np.array([5, 3, 5, 7]), np.array([3, 5, 9]), np.array([7, 2])])
    items = left_pad([np.array([1, 2])] * 4, 3)
    logits = model(items)[:, -1].double()
    # counts: 5 -> 3; 3, 7 -> 2; 2, 9 -> 1; every other item 0 (N_ITEMS - 1 real items)
    ranks = target_ranks(logits, torch.tensor([5, 3, 7, 1])).tolist()
    assert ranks == [1, 3, 3, N_ITEMS - 1]


def test_popularity_learns_counts_with_cross_entropy_when_counts_unset() -> None:
    model = make("popularity").train()
    inputs, targets = tiny_set()
    loss_fn = full_cross_entropy()
    optimiser = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(200):
        optimiser.zero_grad()
        loss_fn(model, inputs, targets).backward()
        optimiser.step()
    counts = np.bincount(targets[targets != 0].numpy(), minlength=N_ITEMS)
    bias = model.output[-1].bias.detach()
    most = int(np.argmax(counts[1:])) + 1
    assert int(bias[1:].argmax()) + 1 == most or counts[int(bias[1:].argmax()) + 1] == counts[most]


# -- losses -------------------------------------------------------------------------------------
LOSSES = {
    "full": lambda: full_cross_entropy(),
    "bce": lambda: bce_one_negative(seed=0),
    "sampled": lambda: sampled_cross_entropy(n_negatives=8, seed=0),
}


def fit_steps(model, loss_fn, inputs, targets, steps: int = 60) -> list[float]:
    """A few AdamW steps on one batch; every loss value must be finite. Returns the values."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2)
    values = []
    for _ in range(steps):
        optimiser.zero_grad()
        value = loss_fn(model, inputs, targets)
        assert torch.isfinite(value)
        value.backward()
        optimiser.step()
        values.append(value.item())
    return values


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_loss_is_finite_and_decreases_on_tiny_sasrec(loss_name: str) -> None:
    model = make("sasrec").train()
    inputs, targets = tiny_set()
    values = fit_steps(model, LOSSES[loss_name](), inputs, targets)
    assert np.mean(values[-10:]) < 0.6 * np.mean(values[:5]), (values[:5], values[-10:])
    # the sampled losses must also improve the real (full) objective
    model.eval()
    with torch.no_grad():
        full = full_cross_entropy()(model, inputs, targets).item()
    assert full < np.log(N_ITEMS - 1) * 0.8


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_losses_are_deterministic_given_the_seed(loss_name: str) -> None:
    model = make("sasrec")
    inputs, targets = tiny_set()
    a, b = LOSSES[loss_name](), LOSSES[loss_name]()
    for _ in range(3):
        assert torch.equal(a(model, inputs, targets), b(model, inputs, targets))


def test_bce_uses_exactly_one_negative_per_positive_and_no_full_logits(monkeypatch) -> None:
    model = make("sasrec")
    inputs, targets = tiny_set()
    calls = []

    def spy(model_, hidden, item_ids):
        calls.append(item_ids.clone())
        return scores_for(model_, hidden, item_ids)

    def no_head(*_):
        raise AssertionError("BCE must not compute logits over all items")

    monkeypatch.setattr(losses.sampled, "scores_for", spy)
    monkeypatch.setattr(model, "head", no_head)
    for _ in range(20):
        value = bce_one_negative(seed=len(calls))(model, inputs, targets)
        assert torch.isfinite(value)
    positives = targets[targets != 0]
    for ids in calls:
        assert ids.shape == (len(positives), 2)
        assert torch.equal(ids[:, 0], positives)
        assert (ids[:, 1] != ids[:, 0]).all()
        assert ((ids[:, 1] >= 1) & (ids[:, 1] < N_ITEMS)).all()
    negatives = torch.cat([ids[:, 1] for ids in calls])
    assert set(negatives.tolist()) == set(range(1, N_ITEMS))  # every item can be drawn

    # and the value is the BCE of exactly those two scores
    generator = torch.Generator().manual_seed(0)
    negative = losses.one_negative_per_positive(positives, N_ITEMS, generator)
    with torch.no_grad():
        h = model.hidden(inputs)[targets != 0]
        pos = (h * model.item_emb.weight[positives]).sum(-1)
        neg = (h * model.item_emb.weight[negative]).sum(-1)
        expected = -(torch.nn.functional.logsigmoid(pos)
                     + torch.nn.functional.logsigmoid(-neg)).mean()
    monkeypatch.undo()
    torch.testing.assert_close(bce_one_negative(seed=0)(model, inputs, targets), expected)


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_sampled_ce_with_all_items_as_negatives_is_full_ce(name: str) -> None:
    model = make(name)
    inputs, targets = tiny_set()
    mask = targets != 0
    with torch.no_grad():
        full = full_cross_entropy()(model, inputs, targets)
        hidden = model.hidden(inputs)[mask]
        every_item = torch.arange(1, N_ITEMS)
        sampled = sampled_softmax_loss(model, hidden, targets[mask], every_item)
        torch.testing.assert_close(sampled, full)
        # scores_for agrees with the head on chosen items, both index layouts
        ids = torch.randint(1, N_ITEMS, (len(hidden), 3))
        head = model.head(hidden)
        torch.testing.assert_close(scores_for(model, hidden, ids), head.gather(1, ids))
        torch.testing.assert_close(scores_for(model, hidden, every_item), head[:, 1:])


def test_sampled_ce_masks_negatives_equal_to_the_positive() -> None:
    model = make("sasrec")
    inputs, targets = tiny_set()
    mask = targets != 0
    with torch.no_grad():
        hidden = model.hidden(inputs)[mask]
        positives = targets[mask]
        # the pool holds every positive: with masking, each row's own positive is excluded
        pool = torch.unique(positives)
        value = sampled_softmax_loss(model, hidden, positives, pool)
        pos = scores_for(model, hidden, positives[:, None])
        others = scores_for(model, hidden, pool).masked_fill(pool == positives[:, None],
                                                             float("-inf"))
        expected = (torch.logsumexp(torch.cat([pos, others], 1), 1) - pos[:, 0]).mean()
    torch.testing.assert_close(value, expected)
    with pytest.raises(ValueError):
        sampled_cross_entropy(n_negatives=0)


def test_cold_test_targets_are_scored_as_misses(tiny_prepared) -> None:
    """stats.json's cold test targets join the test metrics as zeros (and are recorded)."""
    from recpress_utils.runs import evaluate_test
    from recpress_utils.sequences import load_sessions
    from recpress_utils.train import TrainConfig
    test = load_sessions(tiny_prepared, "test")
    from recpress_utils.models import Popularity
    from recpress_utils.sequences import n_items
    model = Popularity(n_items(tiny_prepared)).eval()
    model.fit_counts(load_sessions(tiny_prepared, "train").items)
    cfg = TrainConfig()
    plain = evaluate_test(model, test, cfg)
    cold = evaluate_test(model, test, cfg, cold_targets=len(test))
    assert cold["test_cold_targets"] == len(test) and cold["test_sessions"] == len(test)
    for key in ("test", "test_rest"):
        for name, value in plain[key].items():
            assert cold[key][name] == pytest.approx(value / 2, abs=1e-12), name
