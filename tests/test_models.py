"""Tests for recpress_utils.models: causality, padding, learning, the KG path and the interface."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recpress_utils.models import MODELS, MixedAttention, SequentialRecommender, build_model
from recpress_utils.models.session_knn import SessionKNN
from recpress_utils.sequences import left_pad
from tests.conftest import assert_causal

N_ITEMS = 31  # items 1..30 plus padding
N_PROJECTIONS = 2
TINY = {
    "baseline": {"emb_dim": 16, "lstm_dim": 16, "mlp_hidden": 16},
    "mixed_attention": {"n_projections": N_PROJECTIONS, "emb_dim": 16, "qkv_dim": 16,
                        "n_heads": 2, "max_len": 12, "mlp_hidden": 16},
    "student": {"emb_dim": 16, "qkv_dim": 16, "n_filters": 16, "max_len": 12, "proj_dim": 16},
    "gru4rec": {"emb_dim": 16, "gru_dim": 16},
    "popularity": {"emb_dim": 16},
    "sasrec": {"emb_dim": 16, "n_blocks": 2, "n_heads": 2, "ffn_dim": 32, "max_len": 12},
    "bert4rec": {"emb_dim": 16, "n_blocks": 2, "n_heads": 2, "ffn_dim": 32, "max_len": 12},
    "vsknn": {"k": 5, "sample_size": 20},
    "stan": {"k": 5, "lambda_recency": 10.0},
}
#: Models fitted without gradient steps (popularity, session kNN): nothing to overfit.
UNTRAINED = sorted(name for name, cls in MODELS.items() if cls.default_loss == "counts")
CAUSAL = sorted(name for name, cls in MODELS.items() if cls.causal)


def random_tables(seed: int, n_projections: int = N_PROJECTIONS, m: int = 4) -> dict:
    """Neighbour tables in kg.py's layout; some items have no neighbours, some fewer than m."""
    g = torch.Generator().manual_seed(seed)
    index = torch.randint(1, N_ITEMS, (n_projections, N_ITEMS, m), generator=g)
    counts = torch.randint(0, m + 1, (n_projections, N_ITEMS, 1), generator=g)
    index = index * (torch.arange(m) < counts)
    index[:, 0] = 0
    weight = torch.rand(n_projections, N_ITEMS, m, generator=g) * 3 * (index != 0)
    return {"properties": [f"p{i}" for i in range(n_projections)], "index": index,
            "weight": weight}


def tiny_model(name: str, seed: int = 0) -> SequentialRecommender:
    torch.manual_seed(seed)
    model = build_model(name, N_ITEMS, **TINY[name])
    if isinstance(model, MixedAttention):
        model.set_neighbor_tables(random_tables(seed))
    if isinstance(model, SessionKNN):
        model.fit_counts(sessions(seed + 100, 40, 6))
    return model.eval()



def sessions(seed: int, n: int, length: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, N_ITEMS, size=length) for _ in range(n)]


@pytest.mark.parametrize("name", CAUSAL)
def test_causal(name: str, deterministic) -> None:
    model = tiny_model(name)
    rng = np.random.default_rng(1)
    items = left_pad([rng.integers(1, N_ITEMS, size=n) for n in (8, 5, 3, 8)], 8)
    assert_causal(model, items, N_ITEMS)


def test_only_declared_bidirectional_models_skip_the_causality_test() -> None:
    """A model flagged non-causal must really see later items (else the flag hides nothing)."""
    assert set(MODELS) - set(CAUSAL) == {"bert4rec"}
    model = tiny_model("bert4rec")
    items = left_pad(sessions(8, 2, 6), 6)
    changed = items.clone()
    changed[:, -1] = changed[:, -1] % (N_ITEMS - 1) + 1
    with torch.no_grad():
        assert not torch.allclose(model.hidden(items)[:, 0], model.hidden(changed)[:, 0])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_left_padding_does_not_change_real_positions(name: str, deterministic) -> None:
    model = tiny_model(name)
    rows = sessions(2, 3, 5)
    with torch.no_grad():
        reference = model(left_pad(rows, 5))
        for length in (7, 12):
            logits = model(left_pad(rows + [np.arange(1, length + 1)], length))
            torch.testing.assert_close(logits[:3, -5:], reference, atol=1e-5, rtol=0)
            assert torch.isinf(logits[..., 0]).all() and (logits[..., 0] < 0).all()
            assert torch.isfinite(logits[..., 1:]).all()  # padded query rows too


@pytest.mark.parametrize("name", sorted(set(MODELS) - set(UNTRAINED)))
def test_overfits_a_tiny_set(name: str) -> None:
    model = tiny_model(name).train()
    rows = sessions(3, 8, 6)
    inputs, targets = left_pad([s[:-1] for s in rows]), left_pad([s[1:] for s in rows])
    mask = targets != 0
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2)

    def loss() -> torch.Tensor:
        return F.cross_entropy(model.head(model.hidden(inputs)[mask]), targets[mask])

    start = loss().item()
    for _ in range(300):
        optimiser.zero_grad()
        value = loss()
        value.backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        final = loss().item()
    assert final < 0.3 * start, (start, final)


def test_kg_tables_enter_the_teacher() -> None:
    model = tiny_model("mixed_attention")
    items = left_pad(sessions(4, 4, 6), 8)
    with torch.no_grad():
        with_tables = model(items)
        model.set_neighbor_tables(random_tables(seed=99))
        assert not torch.allclose(model(items), with_tables)
        empty = random_tables(0)
        model.set_neighbor_tables({"index": torch.zeros_like(empty["index"]),
                                   "weight": torch.zeros_like(empty["weight"])})
        assert torch.isfinite(model(items)[..., 1:]).all()


def test_teacher_without_projections_and_gradients_through_empty_neighbours() -> None:
    no_kg = build_model("mixed_attention", N_ITEMS, **{**TINY["mixed_attention"],
                                                        "n_projections": 0})
    items = left_pad(sessions(5, 2, 4), 6)
    assert torch.isfinite(no_kg(items)[..., 1:]).all()
    teacher = tiny_model("mixed_attention").train()
    teacher(items)[..., 1:].sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in teacher.parameters() if p.grad is not None)


def test_teacher_tables_stay_out_of_the_checkpoint_and_old_checkpoints_still_load() -> None:
    model = tiny_model("mixed_attention")
    state = model.state_dict()
    assert not any(k.startswith("neighbor_") for k in state)  # the dataset's, stored once
    tables = {"index": model.neighbor_index, "weight": model.neighbor_weight}
    items = left_pad(sessions(6, 3, 5))
    fresh = build_model("mixed_attention", N_ITEMS, **TINY["mixed_attention"]).eval()
    fresh.set_neighbor_tables(tables)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh(items), model(items))
    # a checkpoint written when the tables were part of the state dict
    legacy = build_model("mixed_attention", N_ITEMS, **TINY["mixed_attention"]).eval()
    legacy.load_state_dict({**state, "neighbor_index": tables["index"], "neighbor_weight": tables["weight"]})
    torch.testing.assert_close(legacy(items), model(items))
    index, weight = legacy.neighbors_for(torch.tensor([[1, 2]]))
    assert index.shape == weight.shape == (1, 2, N_PROJECTIONS, 4)


def test_teacher_rejects_mismatched_tables() -> None:
    model = tiny_model("mixed_attention")
    with pytest.raises(ValueError, match="shape"):
        model.set_neighbor_tables(random_tables(0, n_projections=3))
    bad = random_tables(0)
    bad["index"][0, 1, 0] = N_ITEMS
    with pytest.raises(ValueError, match="indices"):
        model.set_neighbor_tables(bad)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_init_item_embeddings(name: str) -> None:
    model = tiny_model(name)
    vectors = torch.randn(N_ITEMS, model.emb_dim)
    model.init_item_embeddings(vectors)
    assert torch.equal(model.item_emb.weight[1:N_ITEMS], vectors[1:])  # BERT4Rec: + [mask] row
    assert not model.item_emb.weight[0].any()
    with pytest.raises(ValueError, match=rf"\({N_ITEMS}, {model.emb_dim}\)"):
        model.init_item_embeddings(torch.randn(N_ITEMS - 1, model.emb_dim))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_recommend(name: str) -> None:
    model = tiny_model(name).train()
    if hasattr(model, "output"):  # session-kNN models have no head: they never score padding
        with torch.no_grad():
            bias = model.output_bias if hasattr(model, "output_bias") else model.output[-1].bias
            bias[0] = 1e6  # padding would win if it were not excluded
    items = left_pad(sessions(7, 5, 4), 6)
    ids, scores = model.recommend(items, k=N_ITEMS - 1)
    assert ids.shape == scores.shape == (5, N_ITEMS - 1)
    assert (ids != 0).all() and (ids < N_ITEMS).all()
    assert (scores[:, :-1] >= scores[:, 1:]).all()
    assert model.training  # the caller's mode is restored
    with pytest.raises(ValueError, match="k must be"):
        model.recommend(items, k=N_ITEMS)


def test_build_model_rejects_typos() -> None:
    with pytest.raises(ValueError, match="known models: baseline, "):
        build_model("nosuchmodel", N_ITEMS)
    with pytest.raises(ValueError, match="emb_size"):
        build_model("baseline", N_ITEMS, emb_size=32)
    assert isinstance(build_model("mixed_attention", N_ITEMS, n_heads=2), MixedAttention)


def test_teacher_kg_attention_of_an_item_does_not_depend_on_its_batch():
    """Keys and values are projected once per distinct neighbour of the batch and gathered: an
    item's KG attention is the same in a batch of 2 items as among all of them."""
    torch.manual_seed(0)
    model = tiny_model("mixed_attention").eval()
    few = torch.tensor([1, 2])
    many = torch.arange(1, N_ITEMS)
    with torch.no_grad():
        assert torch.allclose(model._kg_attention(few), model._kg_attention(many)[:2], atol=1e-6)
