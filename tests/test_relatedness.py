"""Claim C6 data: top items after a seed item, and the chance levels they are compared with."""

from __future__ import annotations

import numpy as np
import torch

from recpress_utils.models import build_model
from recpress_utils.relatedness import _neighbour_sets, _shares, top_k_after
from recpress_utils.kg import Edges, KnowledgeGraph


def test_top_k_after_excludes_the_seed_item():
    torch.manual_seed(0)
    model = build_model("baseline", 30, emb_dim=8, lstm_dim=8, mlp_hidden=8)
    seeds = np.array([3, 7, 11])
    ids, scores = top_k_after(model, seeds, 5)
    assert ids.shape == (3, 5) and scores.shape == (3, 5)
    assert all(s not in row for s, row in zip(seeds, ids))
    assert (ids > 0).all()
    assert (np.diff(scores, axis=1) <= 0).all()


def test_shares_count_neighbours_and_categories():
    edges = {"co_view": Edges(u=np.array([1, 1]), v=np.array([2, 3]), weight=np.array([1.0, 1.0]))}
    kg = KnowledgeGraph(5, edges, {"co_view": 0.0}, {"co_view": 2}, [None, "a", "a", "b", "a"],
                        [None] * 5)
    neighbours = _neighbour_sets(kg)
    assert neighbours[1] == {2, 3} and neighbours[3] == {1}
    out = _shares(np.array([[2, 4], [1, 4]]), np.array([1, 3]), neighbours, kg.category)
    # seed 1: item 2 neighbour (1/2), same category 2 and 4 (2/2); seed 3: item 1 neighbour (1/2), no category match
    assert out == {"kg_neighbour_share": 0.5, "same_category_share": 0.5}
