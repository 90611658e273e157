"""Session-kNN peers (V-SkNN, STAN): hand-computed scores, a loop-by-loop reference, the index."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recpress_utils.models import build_model
from recpress_utils.models.session_knn import STAN, VSKNN
from recpress_utils.sequences import left_pad

TRAIN = [np.array([1, 2, 3]), np.array([2, 3, 4]), np.array([5, 6]), np.array([1, 3, 5, 3])]


def fitted(name: str, n_items: int = 8, train=TRAIN, **settings):
    model = build_model(name, n_items, **settings)
    model.fit_counts(train)
    return model


def test_vsknn_scores_by_hand():
    """Query (1, 3): weights 0.9 and 1.0 (linear decay); sessions 0 and 3 share both items
    (similarity 1.9), session 1 only item 3 (1.0). With k = 2 the neighbours are 3 and 0."""
    scores = fitted("vsknn", k=2).last_logits(left_pad([np.array([1, 3])]))[0]
    expected = [3.8, 1.9, 3.8, 0.0, 1.9, 0.0, 0.0]  # items 1..7
    torch.testing.assert_close(scores[1:], torch.tensor(expected), atol=1e-6, rtol=0)
    assert torch.isinf(scores[0])


def test_stan_scores_by_hand():
    """lambda 4: item 1 (one step back) weighs exp(-1/4); sessions 0 and 3 then have cosine
    similarity (exp(-1/4) + 1) / sqrt(2 * 3); in each, the shared item r = 3 sits at position 3
    (session 0) and 4 (session 3: 3's last occurrence), and items further from it count less."""
    model = fitted("stan", k=2, lambda_position=4.0, lambda_neighbour=4.0)
    scores = model.last_logits(left_pad([np.array([1, 3])]))[0].double()
    sim = (math.exp(-0.25) + 1) / math.sqrt(6)
    item1 = sim * (math.exp(-2 / 4) + math.exp(-3 / 4))  # distance 2 in session 0, 3 in session 3
    assert scores[1].item() == pytest.approx(item1, rel=1e-6)
    assert scores[2].item() == pytest.approx(sim * math.exp(-1 / 4), rel=1e-6)
    assert scores[3].item() == pytest.approx(2 * sim, rel=1e-6)
    assert scores[5].item() == pytest.approx(sim * math.exp(-1 / 4), rel=1e-6)
    assert scores[4].item() == 0.0 and scores[6].item() == 0.0


def reference_scores(model, train: list[np.ndarray], query: np.ndarray) -> np.ndarray:
    """The algorithms written loop by loop, one training session at a time."""
    query = [int(i) for i in query if i != 0]
    length, scores = len(query), np.zeros(model.n_items)
    last = {item: p for p, item in enumerate(query, start=1)}
    stan = isinstance(model, STAN)
    weight = {i: (math.exp((p - length) / model.lambda_position) if stan
                  else max(0.1, 1 - 0.1 * (length - p))) for i, p in last.items()}
    candidates = []
    for index, session in enumerate(train):
        items = set(int(i) for i in session)
        sim = sum(w for i, w in weight.items() if i in items)
        if sim == 0:
            continue
        if stan:
            sim /= math.sqrt(len(last) * len(items))
            if model.lambda_recency is not None:
                sim *= math.exp(-(len(train) - 1 - index) / model.lambda_recency)
        candidates.append((index, sim))
    if not stan:
        candidates = candidates[-model.sample_size:]
    neighbours = sorted(candidates, key=lambda c: (-c[1], -c[0]))[:model.k]
    for index, sim in neighbours:
        session = [int(i) for i in train[index]]
        position = {item: p for p, item in enumerate(session, start=1)}
        shared = next(position[i] for i in reversed(query) if i in position)
        for item, p in position.items():
            scores[item] += sim * (math.exp(-abs(p - shared) / model.lambda_neighbour) if stan else 1.0)
    return scores


@pytest.mark.parametrize("name, settings", [
    ("vsknn", {"k": 5, "sample_size": 12}),
    ("vsknn", {"k": 50, "sample_size": 1000}),
    ("stan", {"k": 7, "lambda_position": 2.0, "lambda_neighbour": 1.5, "lambda_recency": 30.0}),
    ("stan", {"k": 3}),
])
def test_vectorised_scores_equal_the_loop_reference(name, settings):
    rng = np.random.default_rng(0)
    n_items = 25
    train = [rng.integers(1, n_items, size=rng.integers(1, 9)) for _ in range(80)]
    queries = [rng.integers(1, n_items, size=rng.integers(1, 7)) for _ in range(30)]
    model = fitted(name, n_items, train, **settings)
    scores = model.last_logits(left_pad(queries, 10)).double().numpy()
    for row, query in enumerate(queries):
        np.testing.assert_allclose(scores[row, 1:], reference_scores(model, train, query)[1:],
                                   rtol=1e-5, atol=1e-6)


def test_vsknn_samples_the_most_recent_candidates():
    """sample_size 1: of the two sessions holding item 1, only the newer one (index 3) counts."""
    scores = fitted("vsknn", k=10, sample_size=1).last_logits(left_pad([np.array([1])]))[0]
    assert scores[5] > 0 and scores[2] == 0  # item 5 is in session 3 only, item 2 in session 0 only


def test_the_index_is_saved_with_the_model(tmp_path):
    model = fitted("stan", k=2)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    fresh = build_model("stan", 8, k=2)
    fresh.load_state_dict(torch.load(tmp_path / "model.pt"))
    items = left_pad([np.array([1, 3]), np.array([6])])
    torch.testing.assert_close(fresh.last_logits(items), model.last_logits(items))


def test_an_unfitted_model_and_bad_ids_fail_clearly():
    with pytest.raises(RuntimeError, match="fit_counts"):
        build_model("vsknn", 8).last_logits(left_pad([np.array([1])]))
    with pytest.raises(ValueError, match=r"item ids must be in \[1, 7\]"):
        build_model("vsknn", 8).fit_counts([np.array([1, 8])])
    with pytest.raises(ValueError, match="k must be"):
        VSKNN(8, k=0)


def test_a_query_without_neighbours_ties_everything_at_zero():
    """Item 7 is in no training session: every score ties at 0 (a miss, ranked pessimistically)."""
    scores = fitted("vsknn").last_logits(left_pad([np.array([7])]))[0]
    assert (scores[1:] == 0).all()
