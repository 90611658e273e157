"""Node2Vec embeddings: determinism, layout, fallbacks, graph structure, mode rule, walk weights.

pecanpy compiles its numba walkers for every graph (several seconds), so the embedding is
computed once per module and reused.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recpress_utils.embeddings import (
    Node2VecConfig, fill_missing, neighbor_vs_random_cosine, node2vec_embeddings, select_mode, walk_graph,
)
from recpress_utils.kg import Edges, KnowledgeGraph

N_ITEMS = 26  # items 1..25: two communities 1..10 and 13..22, items 23..25 outside the graph
CFG = Node2VecConfig(dim=8, walk_length=20, num_walks=20, epochs=3, mode="SparseOTF")  # the default dataset's mode


def _two_communities() -> KnowledgeGraph:
    pairs = [(i, j) for lo in (1, 13) for i in range(lo, lo + 10) for j in range(i + 1, lo + 10)]
    pairs.append((10, 13))  # one bridge
    u, v = (np.array(c) for c in zip(*pairs))
    category = [None] + ["A"] * 10 + [None] * 2 + ["B"] * 10 + ["A", "Z", None]
    edges = {"co_view": Edges(u, v, np.full(len(u), 2.0)), "co_cart": Edges.empty(),
             "same_category": Edges(np.array([1]), np.array([23]), np.array([1.0]))}
    return KnowledgeGraph(N_ITEMS, edges, {"co_view": 1.0, "co_cart": None, "same_category": None},
                          {"co_view": len(u), "co_cart": 0, "same_category": None}, category, [None] * N_ITEMS)


@pytest.fixture(scope="module")
def runs() -> tuple[KnowledgeGraph, list[tuple[torch.Tensor, dict]]]:
    kg = _two_communities()
    return kg, [node2vec_embeddings(kg, CFG, seed=7, threads=2) for _ in range(2)]


def test_same_seed_gives_identical_embeddings(runs):
    _, [(a, info_a), (b, info_b)] = runs
    assert torch.equal(a, b)
    assert info_a == info_b and info_a["numba_threads"] >= 1


def test_shape_dtype_and_padding_row(runs):
    _, [(emb, info), _] = runs
    assert emb.shape == (N_ITEMS, CFG.dim) and emb.dtype == torch.float32
    assert not emb[0].any()
    assert info["nodes"] == 20 and info["edges"] == 2 * 45 + 1


def test_fallbacks_in_the_full_run(runs):
    kg, [(emb, info), _] = runs
    # 11, 12: no category -> random; 23: category A -> mean of 1..10; 24: Z (no graph item) and 25: none -> random
    assert info["fallback"] == {"graph": 20, "category_mean": 1, "random": 4}
    assert torch.allclose(emb[23], emb[1:11].mean(dim=0), atol=1e-6)
    mean_norm = torch.cat([emb[1:11], emb[13:23]]).norm(dim=1).mean()
    for i in (11, 12, 24, 25):
        assert emb[i].norm() == pytest.approx(float(mean_norm), rel=1e-5)


def test_fill_missing_rules():
    nodes = np.array([1, 2, 4])
    node_emb = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 4.0]], dtype=np.float32)
    category = [None, "x", "x", "x", "y", "y", None]
    out, counts = fill_missing(nodes, node_emb, 7, category, seed=0)
    assert counts == {"graph": 3, "category_mean": 2, "random": 1}
    assert out[3].tolist() == [2.0, 0.0]  # mean of graph items 1, 2 (category x)
    assert out[5].tolist() == [0.0, 4.0]  # the only graph item of y
    assert out[6].norm() == pytest.approx((1 + 3 + 4) / 3)  # random, scaled to the mean norm
    again, _ = fill_missing(nodes, node_emb, 7, category, seed=0)
    assert torch.equal(out, again) and not out[0].any()


def test_neighbours_closer_than_random_pairs(runs):
    kg, [(emb, _), _] = runs
    check = neighbor_vs_random_cosine(emb, kg, n_pairs=300, seed=0)
    assert check["neighbour_pairs"] == 91
    assert check["neighbour_mean"] > check["random_mean"] + 0.2
    unit = torch.nn.functional.normalize(emb, dim=1)
    within, across = (unit[1:11] @ unit[1:11].T).mean(), (unit[1:11] @ unit[13:23].T).mean()
    assert within > across + 0.3


def test_walk_graph_weights_are_pmi_minus_alpha_max_over_properties():
    n = 5
    kg = KnowledgeGraph(
        n, {"co_view": Edges(np.array([1, 2]), np.array([2, 3]), np.array([1.5, 2.0])),
            "co_cart": Edges(np.array([1, 3]), np.array([2, 4]), np.array([3.0, 3.5])),
            "same_brand": Edges(np.array([1]), np.array([4]), np.array([1.0]))},
        {"co_view": 1.0, "co_cart": 2.5, "same_brand": None}, {}, [None] * n, [None] * n)
    adj = walk_graph(kg).toarray()
    assert np.allclose(adj, adj.T)
    assert adj[1, 2] == pytest.approx(max(1.5 - 1.0, 3.0 - 2.5))
    assert adj[2, 3] == pytest.approx(1.0) and adj[3, 4] == pytest.approx(1.0)
    assert adj[1, 4] == 0, "attribute relations are not walked"


def _ring(n: int, k: int) -> sp.csr_matrix:
    """Each node linked to its k nearest on each side of a ring."""
    rows = np.repeat(np.arange(n), 2 * k)
    cols = (rows + np.tile(np.r_[np.arange(1, k + 1), -np.arange(1, k + 1)], n)) % n
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))


def test_mode_selection_rule():
    assert select_mode(_ring(20, 4)) == "DenseOTF"  # density 8/19 >= 0.2
    assert select_mode(_ring(5000, 2)) == "PreComp"  # small and very sparse: density 4/4999 < 0.001
    assert select_mode(_ring(20_000, 2)) == "SparseOTF"  # very sparse but large
    assert select_mode(_ring(1000, 5)) == "SparseOTF"  # small but mid-density (10/999)


def test_config_from_dict_rejects_unknown_keys():
    assert Node2VecConfig.from_dict({"dim": 32}).dim == 32
    with pytest.raises(ValueError, match="dimension"):
        Node2VecConfig.from_dict({"dimension": 32})
    with pytest.raises(ValueError, match="mode"):
        Node2VecConfig(mode="Fast")


def test_empty_walk_graph_falls_back_to_unit_random_vectors():
    kg = KnowledgeGraph(4, {"co_view": Edges.empty(), "same_brand": Edges(np.array([1]), np.array([2]), np.array([1.0]))},
                        {"co_view": None, "same_brand": None}, {"co_view": 0, "same_brand": None},
                        [None, "a", "a", None], [None] * 4)
    emb, info = node2vec_embeddings(kg, CFG, seed=0, threads=1)
    assert info["mode"].startswith("none") and info["fallback"] == {"graph": 0, "category_mean": 0, "random": 3}
    assert torch.allclose(emb[1:].norm(dim=1), torch.ones(3)) and not emb[0].any()
    with pytest.raises(ValueError, match="no edges"):
        neighbor_vs_random_cosine(emb, kg, n_pairs=10, seed=0)
