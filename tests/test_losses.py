"""Tests for the large-catalogue losses: logQ-corrected sampled softmax and chunked full CE."""

from __future__ import annotations

import math

import pyarrow.parquet as pq
import pytest
import torch

from recpress_utils import losses
from recpress_utils.losses import full, sampled
from recpress_utils.losses import (build_loss, check_loss, chunked_cross_entropy, full_cross_entropy,
                                   popularity_distribution, sampled_softmax, sampled_softmax_loss,
                                   scores_for)
from recpress_utils.models import MODELS
from recpress_utils.runs import ModelSpec, train_counts, train_run
from recpress_utils.train import TrainConfig
from tests.test_peers import N_ITEMS, fit_steps, make, tiny_set


class FixedItems(torch.nn.Module):
    """Only an output layer: item j's vector is row j of ``weight`` (no bias)."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = weight
        self.n_items = len(weight)

    def item_output(self) -> tuple[torch.Tensor, None]:
        return self.weight, None


def zipf_counts(n_items: int, exponent: float = 1.2) -> torch.Tensor:
    counts = torch.zeros(n_items, dtype=torch.float64)
    counts[1:] = 1.0 / torch.arange(1, n_items, dtype=torch.float64) ** exponent
    return counts


# -- sampled softmax with the logQ correction ----------------------------------------------------
def test_sampled_softmax_is_the_softmax_of_logq_corrected_logits_by_hand() -> None:
    # items 1..4 score 0.5, 1.0, 0.0, 2.0 for both rows; counts 6, 3, 2, 1 -> q = 1/2, 1/4, 1/6,
    # 1/12; N = 4 negatives -> expected counts N q = 2, 1, 2/3, 1/3
    model = FixedItems(torch.tensor([[0.0, 0.0], [0.5, 0.0], [1.0, 0.0], [0.0, 0.0], [2.0, 0.0]]))
    hidden = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    q = popularity_distribution(torch.tensor([0, 6, 3, 2, 1]))
    torch.testing.assert_close(q, torch.tensor([0, 1 / 2, 1 / 4, 1 / 6, 1 / 12], dtype=torch.float64))
    pool = torch.tensor([1, 1, 3, 2])
    positives = torch.tensor([4, 1])
    value = sampled_softmax_loss(model, hidden, positives, pool, torch.log(4 * q).float())
    e = math.e
    # row 1, positive 4: 2 - log(1/3) against 0.5 - log 2 (twice), 0 - log(2/3), 1 - log 1
    row1 = -math.log(3 * e**2 / (3 * e**2 + 2 * e**0.5 / 2 + 1.5 + e))
    # row 2, positive 1: 0.5 - log 2; both pooled copies of item 1 are accidental hits, removed
    row2 = -math.log((e**0.5 / 2) / (e**0.5 / 2 + 1.5 + e))
    assert value.item() == pytest.approx((row1 + row2) / 2, rel=1e-6)
    # without the correction it is the plain sampled CE over the same candidates
    plain = sampled_softmax_loss(model, hidden, positives, pool)
    row1 = -math.log(e**2 / (e**2 + 2 * e**0.5 + 1 + e))
    row2 = -math.log(e**0.5 / (e**0.5 + 1 + e))
    assert plain.item() == pytest.approx((row1 + row2) / 2, rel=1e-6)


def test_logq_correction_brings_the_expected_gradient_close_to_the_full_softmax() -> None:
    """Monte-Carlo: the mean gradient over many popularity pools, with and without correction,
    against the full softmax gradient ``softmax(o) - onehot(pos)`` (tolerances, not equality)."""
    n_items, n_negatives, n_pools = 200, 50, 2000
    generator = torch.Generator().manual_seed(0)
    q = popularity_distribution(zipf_counts(n_items))
    model = FixedItems(torch.eye(n_items))  # hidden row = its logits, so d loss / d hidden = d / d logits
    logits = torch.randn(3, n_items, generator=generator)
    positives = torch.tensor([2, 50, 180])  # a popular, a middling and a rare positive
    rows = torch.arange(3)
    full = torch.softmax(logits[:, 1:], dim=1)
    full[rows, positives - 1] -= 1
    log_expected = torch.log(n_negatives * q).float()
    gradient = {True: torch.zeros_like(full), False: torch.zeros_like(full)}
    for _ in range(n_pools):
        pool = torch.multinomial(q, n_negatives, replacement=True, generator=generator)
        for corrected in gradient:
            hidden = logits.clone().requires_grad_(True)
            value = sampled_softmax_loss(model, hidden, positives, pool,
                                         log_expected if corrected else None)
            # x 3: the loss is a mean over the three rows, the full gradient is per row
            gradient[corrected] += 3 * torch.autograd.grad(value, hidden)[0][:, 1:] / n_pools

    def negative_phase(g: torch.Tensor) -> torch.Tensor:
        """Where a row pushes down the other items, as a distribution."""
        g = g.clone()
        g[rows, positives - 1] = 0
        return g / g.sum(dim=1, keepdim=True)

    def distance(g: torch.Tensor) -> torch.Tensor:
        return 0.5 * (negative_phase(g) - negative_phase(full)).abs().sum(dim=1)

    corrected, plain = distance(gradient[True]), distance(gradient[False])
    # uncorrected popularity pools push popular items down far too hard (~0.5-0.65 total variation)
    assert (plain > 0.4).all(), plain
    assert (corrected < 0.3).all() and (corrected < 0.5 * plain).all(), (corrected, plain)
    error = {k: ((g - full).norm() / full.norm()).item() for k, g in gradient.items()}
    assert error[True] < 0.8 * error[False], error


def test_sampled_softmax_draws_one_popularity_pool_per_batch(monkeypatch) -> None:
    model = make("sasrec")
    inputs, targets = tiny_set()
    counts = zipf_counts(N_ITEMS)
    q = popularity_distribution(counts, uniform_mix=0.3)
    pools = []

    def spy(model_, hidden, item_ids):
        if item_ids.dim() == 1:
            pools.append(item_ids.clone())
        return scores_for(model_, hidden, item_ids)

    monkeypatch.setattr(sampled, "scores_for", spy)
    loss_fn = sampled_softmax(counts, n_negatives=64, uniform_mix=0.3, seed=5)
    values = [loss_fn(model, inputs, targets) for _ in range(300)]
    assert len(pools) == 300 and all(p.shape == (64,) for p in pools)
    drawn = torch.cat(pools)
    assert drawn.min() >= 1
    frequency = torch.bincount(drawn, minlength=N_ITEMS).double() / len(drawn)
    assert 0.5 * (frequency - q).abs().sum() < 0.03  # sampling noise at 19,200 draws is ~0.01
    # each value is the corrected sampled softmax over exactly the pool it drew
    mask = targets != 0
    with torch.no_grad():
        hidden = model.hidden(inputs)[mask]
    monkeypatch.undo()
    log_expected = torch.log(64 * q).float()
    for pool, value in list(zip(pools, values))[:5]:
        expected = sampled_softmax_loss(model, hidden, targets[mask], pool, log_expected)
        torch.testing.assert_close(value, expected)
    # and the same seed draws the same pools
    again = sampled_softmax(counts, n_negatives=64, uniform_mix=0.3, seed=5)
    assert all(torch.equal(again(model, inputs, targets), v) for v in values[:3])


def test_popularity_distribution_mixes_counts_with_uniform() -> None:
    counts = torch.tensor([7, 3, 1, 0])  # the padding count is ignored
    torch.testing.assert_close(popularity_distribution(counts, 0.5),
                               torch.tensor([0, 3 / 8 + 1 / 6, 1 / 8 + 1 / 6, 1 / 6],
                                            dtype=torch.float64))
    with pytest.raises(ValueError, match="uniform_mix > 0"):
        popularity_distribution(counts)  # item 3 could never be drawn
    with pytest.raises(ValueError, match="uniform_mix"):
        popularity_distribution(counts, 1.5)
    with pytest.raises(ValueError, match="item_counts"):
        popularity_distribution(torch.tensor([5, 0, 0]))


def test_alpha_flattens_the_popularity_skew_and_keeps_unseen_items_undrawn() -> None:
    """counts ** alpha (GRU4Rec's sample_alpha): 1 is popularity, 0 uniform over the items seen in
    training; an unseen item stays at 0 (0 ** 0 would be 1) and still needs uniform_mix."""
    counts = torch.tensor([9, 16, 4, 0])
    torch.testing.assert_close(popularity_distribution(counts, 0.5, alpha=0.5),
                               torch.tensor([0, 0.5 * 4 / 6 + 1 / 6, 0.5 * 2 / 6 + 1 / 6, 1 / 6], dtype=torch.float64))
    torch.testing.assert_close(popularity_distribution(counts, 0.0 + 1e-9, alpha=0.0)[1:3].float(),
                               torch.tensor([0.5, 0.5]), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="uniform_mix > 0"):
        popularity_distribution(counts, alpha=0.0)
    with pytest.raises(ValueError, match="alpha"):
        popularity_distribution(counts, 0.5, alpha=2.0)


def test_sampled_softmax_lowers_the_full_cross_entropy() -> None:
    model = make("sasrec").train()
    inputs, targets = tiny_set()
    fit_steps(model, sampled_softmax(zipf_counts(N_ITEMS), n_negatives=16, seed=0), inputs, targets)
    model.eval()
    with torch.no_grad():
        assert full_cross_entropy()(model, inputs, targets).item() < 0.8 * math.log(N_ITEMS - 1)
    with pytest.raises(ValueError, match="item ids"):
        sampled_softmax(zipf_counts(N_ITEMS + 1))(model, inputs, targets)


# -- chunked full cross-entropy ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
@pytest.mark.parametrize("positions", ["all", "last"])
@pytest.mark.parametrize("chunk_items", [1, 7, N_ITEMS - 1, 4 * N_ITEMS])  # 7 does not divide 30
def test_chunked_ce_equals_the_full_ce_and_its_gradients(name: str, positions: str,
                                                         chunk_items: int) -> None:
    model = make(name)  # eval: no dropout, so both losses see the same hidden states
    inputs, targets = tiny_set()
    params = [p for p in model.parameters() if p.requires_grad]
    full = full_cross_entropy(positions)(model, inputs, targets)
    chunked = chunked_cross_entropy(chunk_items, positions)(model, inputs, targets)
    torch.testing.assert_close(chunked, full, atol=1e-5, rtol=0)
    for got, want in zip(torch.autograd.grad(chunked, params), torch.autograd.grad(full, params)):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_chunked_ce_never_holds_more_than_a_chunk_of_logits(monkeypatch) -> None:
    model = make("gru4rec")
    inputs, targets = tiny_set()
    widths = []
    chunks = full._item_chunks

    def spy(*args):
        for start, logits in chunks(*args):
            widths.append((start, logits.shape[1]))
            yield start, logits

    def no_head(*_):
        raise AssertionError("the chunked CE must not compute all logits at once")

    monkeypatch.setattr(full, "_item_chunks", spy)
    monkeypatch.setattr(model, "head", no_head)
    chunked_cross_entropy(chunk_items=8)(model, inputs, targets).backward()
    # items 1..30 (padding never scored) in chunks of 8, once forward and once backward
    assert widths == [(1, 8), (9, 8), (17, 8), (25, 6)] * 2
    with pytest.raises(ValueError):
        chunked_cross_entropy(chunk_items=0)


# -- by name, and through a run ------------------------------------------------------------------
def test_new_losses_are_built_by_name_with_their_settings() -> None:
    model = make("gru4rec")
    inputs, targets = tiny_set()
    counts = zipf_counts(N_ITEMS)
    built = build_loss("sampled_softmax", seed=2, settings={"n_negatives": 16, "uniform_mix": 0.1},
                       item_counts=counts)
    direct = sampled_softmax(counts, n_negatives=16, uniform_mix=0.1, seed=2)
    assert torch.equal(built(model, inputs, targets), direct(model, inputs, targets))
    chunked = build_loss("chunked_cross_entropy", seed=0, positions="last",
                         settings={"chunk_items": 5})
    torch.testing.assert_close(chunked(model, inputs, targets),
                               full_cross_entropy("last")(model, inputs, targets))
    with pytest.raises(ValueError, match="item_counts"):
        build_loss("sampled_softmax", seed=0)
    with pytest.raises(ValueError, match="bad settings"):
        build_loss("chunked_cross_entropy", seed=0, settings={"n_negatives": 5})
    for name in ("sampled_softmax", "chunked_cross_entropy"):
        check_loss(name, MODELS["sasrec"])
        check_loss(name, MODELS["baseline"])
        with pytest.raises(ValueError, match="no item_output"):
            check_loss(name, torch.nn.Linear)


@pytest.mark.parametrize("name", ["baseline", "mixed_attention", "student"])
def test_the_paper_models_score_chosen_items_through_their_mlp(name: str) -> None:
    """The head's MLP, then its last layer: scoring a few items equals those columns of the logits,
    so the sampled losses and the exact chunked CE train the paper's models too."""
    torch.manual_seed(0)
    small = {"baseline": {"emb_dim": 16, "lstm_dim": 16, "mlp_hidden": 12},
             "mixed_attention": {"n_projections": 0, "emb_dim": 16, "qkv_dim": 16, "max_len": 12, "mlp_hidden": 12},
             "student": {"emb_dim": 16, "qkv_dim": 16, "n_filters": 8, "max_len": 12, "proj_dim": 16}}
    model = MODELS[name](N_ITEMS, **small[name]).eval()
    inputs, targets = tiny_set()
    hidden = model.hidden(inputs)[targets != 0]
    items = torch.tensor([1, 4, 7])
    torch.testing.assert_close(scores_for(model, losses.output_states(model, hidden), items),
                               model.head(hidden)[:, items])
    torch.testing.assert_close(chunked_cross_entropy(chunk_items=4)(model, inputs, targets),
                               full_cross_entropy()(model, inputs, targets))


def test_train_counts_are_the_items_table_counts(tiny_prepared) -> None:
    counts = train_counts(tiny_prepared)
    items = pq.read_table(tiny_prepared / "items.parquet").to_pandas()
    assert counts[0] == 0 and len(counts) == len(items) + 1
    assert counts[items["item_idx"].to_numpy()].tolist() == items["train_count"].tolist()


@pytest.mark.parametrize("name, entry", [
    ("sasrec_logq", {"architecture": "sasrec", "loss": "sampled_softmax",
                     "loss_settings": {"n_negatives": 32, "uniform_mix": 0.1},
                     "settings": {"emb_dim": 16}}),
    ("gru4rec_chunked", {"architecture": "gru4rec", "loss": "chunked_cross_entropy",
                         "loss_settings": {"chunk_items": 50},
                         "settings": {"emb_dim": 16, "gru_dim": 16}}),
])
def test_new_losses_train_through_the_shared_run(tiny_prepared, tmp_path, name, entry) -> None:
    spec = ModelSpec.from_config(name, entry)
    cfg = TrainConfig(epochs=2, batch_size=64, lr=3e-3, patience=2)
    metrics = train_run(spec, tiny_prepared, tmp_path, cfg, seed=1, threads=1, progress=False)[2]
    assert metrics["spec"]["loss"] == spec.loss and len(metrics["history"]) == 2
    assert 0.0 < metrics["test"]["NDCG@10"] <= 1.0
