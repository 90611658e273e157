"""Knowledge graph: PMI and alpha against brute force, no leakage, projections, tables, file format."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from recpress_utils.data.prepare import PrepareConfig, prepare_from_raw
from recpress_utils.data.synthetic import SyntheticConfig, write_events_csv
from recpress_utils.kg import (
    incidence, pmi_pairs,
    Edges, KGConfig, KnowledgeGraph, attribute_edges, build_kg, kg_stats, run_build_kg,
)
from recpress_utils.report.tables import kg_properties
from recpress_utils.sequences import Sessions

VIEW, REMOVE, CART, PURCHASE = 0, 1, 2, 3


def _sessions(rows: list[list[tuple[int, int]]]) -> Sessions:
    """Sessions from [(item, action), ...] lists."""
    return Sessions([np.array([i for i, _ in r], dtype=np.int64) for r in rows],
                    [np.array([a for _, a in r], dtype=np.int8) for r in rows])


def _items(n: int, **columns) -> pd.DataFrame:
    """items.parquet-like frame for items 1..n; popularity decreasing with the index by default."""
    df = pd.DataFrame({"item_idx": np.arange(1, n + 1), "train_count": np.arange(n, 0, -1),
                       "category_id": 7, "category_code": "c", "brand": "b"})
    for k, v in columns.items():
        df[k] = v
    return df


def _random_sessions(seed: int, n_sessions: int = 80, n_items: int = 14) -> Sessions:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_sessions):
        length = int(rng.integers(2, 7))
        items = rng.choice(np.arange(1, n_items + 1), size=length, p=None)  # repeats allowed
        actions = rng.choice([VIEW, REMOVE, CART, PURCHASE], size=length, p=[0.5, 0.1, 0.25, 0.15])
        rows.append(list(zip(items.tolist(), actions.tolist())))
    return _sessions(rows)


#: Pairs whose brute-force PMI is this close to alpha are "at the boundary": whether they clear
#: ``PMI > alpha`` depends on the last bit of a float expression, so tests never compare them.
BOUNDARY = 1e-9


def _boundary(sessions: Sessions, min_action: int, min_cooc: int, percentile: float) -> set:
    """Candidate pairs whose brute-force PMI lies within BOUNDARY of alpha."""
    pmi, alpha = _brute_force_all(sessions, min_action, min_cooc, percentile)
    return {k for k, v in pmi.items() if abs(v - alpha) <= BOUNDARY}


def _brute_force(sessions: Sessions, min_action: int, min_cooc: int, percentile: float):
    """Loops over sessions and pairs: {(i, j): PMI} kept, and alpha."""
    pmi, alpha = _brute_force_all(sessions, min_action, min_cooc, percentile)
    return {k: v for k, v in pmi.items() if v > alpha}, alpha


def _brute_force_all(sessions: Sessions, min_action: int, min_cooc: int, percentile: float):
    """Loops over sessions and pairs: every candidate {(i, j): PMI}, and alpha."""
    n_sessions = len(sessions)
    df, cooc = Counter(), Counter()
    for items, actions in zip(sessions.items, sessions.actions):
        present = sorted({int(i) for i, a in zip(items, actions) if a >= min_action})
        df.update(present)
        cooc.update(itertools.combinations(present, 2))
    pmi = {}
    for (i, j), c in cooc.items():
        if c >= min_cooc:
            pmi[(i, j)] = np.log((c / n_sessions) / ((df[i] / n_sessions) * (df[j] / n_sessions)))
    if not pmi:
        return {}, None
    return pmi, np.percentile(list(pmi.values()), percentile)


def _as_dict(e: Edges) -> dict[tuple[int, int], float]:
    return {(int(a), int(b)): float(w) for a, b, w in zip(e.u, e.v, e.weight)}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("prop,min_action", [("co_view", VIEW), ("co_cart", CART)])
def test_pmi_and_threshold_match_brute_force(seed, prop, min_action):
    train = _random_sessions(seed)
    cfg = KGConfig(min_cooccurrence=2, percentile=25.0, properties=(prop,))
    kg = build_kg(train, _items(14), cfg)
    expected, alpha = _brute_force(train, min_action, 2, 25.0)
    assert len(expected) > 5, "the random sessions should produce a non-trivial graph"
    assert kg.alpha[prop] == pytest.approx(alpha)
    got = _as_dict(kg.edges[prop])
    boundary = _boundary(train, min_action, 2, 25.0)
    assert got.keys() - boundary == expected.keys() - boundary
    assert np.allclose([got[k] for k in expected.keys() & got.keys()],
                       [expected[k] for k in expected.keys() & got.keys()])
    assert all(u < v for u, v in got)


def test_equal_counts_give_bit_equal_pmi_and_the_same_side_of_alpha():
    """(1, 2) and (3, 4): co-count 2 in S = 10 sessions, df's (2, 5) and (5, 2). Summing logs in
    the counts' order, log 2 + log 10 - log 2 - log 5 != ... - log 5 - log 2 in the last bit;
    the PMI must be bit-equal, so a threshold at that value keeps or drops both."""
    rows = ([[(1, VIEW), (2, VIEW)]] * 2 + [[(3, VIEW), (4, VIEW)]] * 2
            + [[(2, VIEW)]] * 3 + [[(3, VIEW)]] * 3)
    x = incidence(_sessions(rows), 5)
    u, v, pmi = pmi_pairs(x, 2)
    got = {(int(a), int(b)): w for a, b, w in zip(u, v, pmi)}
    assert set(got) == {(1, 2), (3, 4)}
    assert got[(1, 2)] == got[(3, 4)]  # exact on purpose: the point is bit-equality
    assert got[(1, 2)] == pytest.approx(np.log(2 * 10 / (2 * 5)))
    kg = build_kg(_sessions(rows), _items(4), KGConfig(min_cooccurrence=2, percentile=50.0, properties=("co_view",)))
    kept = set(_as_dict(kg.edges["co_view"]))
    assert ((1, 2) in kept) == ((3, 4) in kept)


def test_min_cooccurrence_and_percentile_are_applied():
    train = _random_sessions(3)
    for min_cooc, pct in [(1, 25.0), (3, 50.0), (2, 0.0)]:
        kg = build_kg(train, _items(14), KGConfig(min_cooccurrence=min_cooc, percentile=pct, properties=("co_view",)))
        expected, alpha = _brute_force(train, VIEW, min_cooc, pct)
        boundary = _boundary(train, VIEW, min_cooc, pct)
        assert set(_as_dict(kg.edges["co_view"])) - boundary == set(expected) - boundary
        assert kg.alpha["co_view"] == pytest.approx(alpha)


def test_co_cart_uses_only_carted_or_purchased_steps():
    rows = (
        [[(1, VIEW), (2, VIEW)]] * 6  # viewed together only
        + [[(3, CART), (4, PURCHASE), (5, VIEW)]] * 3  # 3 and 4 carted together
        + [[(3, REMOVE), (6, CART), (4, CART)]] * 2  # remove_from_cart is not a cart
        + [[(6, CART), (7, PURCHASE), (1, VIEW)]] * 2
        + [[(8, VIEW), (9, VIEW)]] * 4
    )
    train = _sessions(rows)
    kg = build_kg(train, _items(9), KGConfig(percentile=0.0, properties=("co_view", "co_cart")))
    cart_pairs = set(_as_dict(kg.edges["co_cart"]))
    # S = 17; PMI(3,4) = log(3*17/(3*5)), PMI(4,6) = log(2*17/(5*4)) = alpha (the minimum), PMI(6,7) = log(2*17/(4*2))
    assert cart_pairs == {(3, 4), (6, 7)}
    assert cart_pairs == set(_brute_force(train, CART, 2, 0.0)[0])
    assert (1, 2) not in cart_pairs and (3, 6) not in cart_pairs
    assert (1, 2) in set(_as_dict(kg.edges["co_view"]))


def test_empty_co_cart_is_reported_not_an_error():
    train = _sessions([[(1, VIEW), (2, VIEW)]] * 3)
    kg = build_kg(train, _items(2), KGConfig())
    assert len(kg.edges["co_cart"]) == 0 and kg.alpha["co_cart"] is None
    stats = kg_stats(kg)
    assert stats["edges"]["co_cart"] == 0 and stats["nodes"]["co_cart"] == 0


def test_attribute_relations_capped_and_most_popular_first():
    n, top_m = 12, 3
    counts = np.array([5, 9, 9, 1, 7, 3, 2, 8, 4, 6, 10, 0])  # ties 2 & 3: lower index first
    items = _items(n, train_count=counts, brand=[None] * 6 + ["x"] * 5 + [""])
    kg = build_kg(_sessions([[(1, VIEW), (2, VIEW)]]), items, KGConfig(top_m=top_m))
    popularity = np.r_[0, counts]

    def chosen(i: int, group: list[int]) -> set[tuple[int, int]]:
        others = sorted((j for j in group if j != i), key=lambda j: (-popularity[j], j))[:top_m]
        return {(min(i, j), max(i, j)) for j in others}

    cat_group = list(range(1, n + 1))
    expected = set().union(*(chosen(i, cat_group) for i in cat_group))
    assert set(_as_dict(kg.edges["same_category"])) == expected
    heads = set(sorted(cat_group, key=lambda j: (-popularity[j], j))[:top_m + 1])
    deg = Counter(np.concatenate([kg.edges["same_category"].u, kg.edges["same_category"].v]).tolist())
    assert all(deg[i] == top_m for i in cat_group if i not in heads), "a non-head links to exactly top_m"
    assert np.all(kg.edges["same_category"].weight == 1.0)
    brand_group = list(range(7, 12))  # null and empty brands get no edge
    assert set(_as_dict(kg.edges["same_brand"])) == set().union(*(chosen(i, brand_group) for i in brand_group))


def test_category_falls_back_to_category_id():
    items = _items(4, category_code=["a", None, "", "a"], category_id=[1, 2, 2, 3])
    kg = build_kg(_sessions([[(1, VIEW), (2, VIEW)]]), items, KGConfig(properties=("same_category",)))
    assert kg.category[1:] == ["a", "id:2", "id:2", "a"]
    assert set(_as_dict(kg.edges["same_category"])) == {(1, 4), (2, 3)}


def test_attribute_edges_scale_linearly():
    n, top_m = 20_000, 5  # one category of 20k items must not become a 200M-edge clique
    e = attribute_edges(["big"] * n, np.arange(n, 0, -1).astype(float), top_m)
    assert len(e) <= n * top_m


def _kg(edges: dict[str, list[tuple[int, int, float]]], n_items: int) -> KnowledgeGraph:
    parts = {p: Edges(*(np.array(c) for c in zip(*rows))) for p, rows in edges.items()}
    return KnowledgeGraph(n_items, parts, {p: None for p in edges}, {p: 0 for p in edges},
                          [None] * n_items, [None] * n_items)


def test_neighbor_tables_shape_sorting_padding():
    kg = _kg({"co_view": [(1, 2, 0.5), (1, 3, 2.0), (1, 4, 0.5), (2, 3, 1.0), (1, 5, 0.1)],
              "same_brand": [(2, 4, 1.0)]}, n_items=6)
    t = kg.neighbor_tables(n_items=7, top_m=3)
    assert t["properties"] == ["co_view", "same_brand"]
    assert t["index"].shape == (2, 7, 3) and t["index"].dtype == torch.int64
    assert t["weight"].shape == (2, 7, 3) and t["weight"].dtype == torch.float32
    assert t["index"][0, 1].tolist() == [3, 2, 4]  # weight desc, ties by index asc; 5 cut by top_m
    assert t["weight"][0, 1].tolist() == [2.0, 0.5, 0.5]
    assert t["index"][0, 2].tolist() == [3, 1, 0] and t["weight"][0, 2].tolist() == [1.0, 0.5, 0.0]
    assert t["index"][1, 4].tolist() == [2, 0, 0]
    assert not t["index"][:, 0].any() and not t["weight"][:, 0].any()  # padding item
    assert not t["index"][:, 6].any()  # an item with no edges is all padding


def test_edge_list_file_round_trips_as_parquet(tmp_path):
    train = _random_sessions(5)
    kg = build_kg(train, _items(14, brand=["p", "q"] * 7), KGConfig(top_m=4))
    path = tmp_path / "graph.parquet"
    kg.write(path)
    back = KnowledgeGraph.read(path, _items(14, brand=["p", "q"] * 7))
    assert back.n_items == kg.n_items and back.properties == kg.properties and back.alpha == kg.alpha
    assert back.candidates == kg.candidates and back.brand[1] == "p"
    for p in kg.properties:
        for name in ("u", "v", "weight"):
            assert np.array_equal(getattr(back.edges[p], name), getattr(kg.edges[p], name)), (p, name)
    # the file is an ordinary edge list any parquet reader opens, one row an edge
    table = pd.read_parquet(path)
    assert list(table.columns) == ["u", "v", "property", "weight"] and (table["u"] < table["v"]).all()
    assert Counter(table["property"]) == {p: len(e) for p, e in kg.edges.items() if len(e)}
    kg.write(tmp_path / "again.parquet")
    assert (tmp_path / "again.parquet").read_bytes() == path.read_bytes(), "byte-stable output"
    pd.DataFrame({"u": [1]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="other.parquet: not a RecPress KG file"):
        KnowledgeGraph.read(tmp_path / "other.parquet")


def test_config_from_dict_rejects_unknown_keys():
    assert KGConfig.from_dict({"top_m": 5, "properties": ["co_view"]}) == KGConfig(top_m=5, properties=("co_view",))
    with pytest.raises(ValueError, match="min_coocurrence"):
        KGConfig.from_dict({"min_coocurrence": 3})
    with pytest.raises(ValueError, match="co_buy"):
        KGConfig(properties=("co_view", "co_buy"))


# --- end to end on a prepared directory: validation and test never shape the graph ---------

@pytest.fixture
def prepared(tmp_path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    cfg = SyntheticConfig.from_dict({"n_items": 300, "n_sessions": 2000, "n_users": 800,
                                     "n_categories": 8, "n_brands": 30})
    write_events_csv(cfg, root / "events.csv")
    prepare_from_raw(root / "events.csv", root / "prepared", PrepareConfig(min_item_support=3))
    return root / "prepared"


def _outputs(kg_dir: Path) -> tuple[bytes, dict, dict]:
    stats = json.loads((kg_dir / "kg_stats.json").read_text())
    stats.pop("timing")
    return (kg_dir / "graph.parquet").read_bytes(), torch.load(kg_dir / "neighbors.pt"), stats


def _add_pair_sessions(path: Path, a: int, b: int, copies: int = 50) -> None:
    df = pd.read_parquet(path)
    extra = pd.concat([df.iloc[[0]]] * copies, ignore_index=True)
    extra["session_id"] = [f"leak{k}" for k in range(copies)]
    extra["items"] = [[a, b]] * copies
    extra["actions"] = [[CART, PURCHASE]] * copies
    pd.concat([df, extra], ignore_index=True).to_parquet(path)


def test_validation_and_test_sessions_do_not_change_the_graph(prepared, tmp_path):
    stats = run_build_kg(prepared, tmp_path / "before", KGConfig())
    assert {"graph.parquet", "neighbors.pt", "kg_stats.json"} <= {p.name for p in (tmp_path / "before").iterdir()}
    assert stats["edges"]["co_view"] > 0 and stats["timing"]["pmi_seconds"] >= 0
    n = pd.read_parquet(prepared / "items.parquet")["item_idx"].max()
    a, b = 1, int(n)  # a popular and the rarest item: a new, strong pair if it were counted
    for split in ("valid", "test"):
        _add_pair_sessions(prepared / f"{split}.parquet", a, b)
    run_build_kg(prepared, tmp_path / "after", KGConfig())
    g1, t1, s1 = _outputs(tmp_path / "before")
    g2, t2, s2 = _outputs(tmp_path / "after")
    assert g1 == g2 and s1 == s2
    assert t1["properties"] == t2["properties"]
    assert torch.equal(t1["index"], t2["index"]) and torch.equal(t1["weight"], t2["weight"])
    # the same sessions in *train* do change it: the check above is sensitive
    _add_pair_sessions(prepared / "train.parquet", a, b)
    run_build_kg(prepared, tmp_path / "leaky", KGConfig())
    assert _outputs(tmp_path / "leaky")[0] != g1


def test_the_report_says_which_properties_the_data_has():
    """Views only and no brand (as MovieLens): co_cart and same_brand are listed, marked absent."""
    train = _sessions([[(1, VIEW), (2, VIEW), (3, VIEW)]] * 3 + [[(3, VIEW), (4, VIEW)]] * 3)
    items = _items(4, brand=None, category_code=["drama", "drama", "comedy", "comedy"])
    table = kg_properties(kg_stats(build_kg(train, items, KGConfig())))
    assert list(table.index) == ["co_view", "co_cart", "same_category", "same_brand"]
    assert table["in this data"].to_dict() == {"co_view": True, "co_cart": False,
                                               "same_category": True, "same_brand": False}
    assert table.loc["same_category", "edges"] == 2 and table.loc["same_brand", "items linked"] == 0
    assert table.loc["co_view", "alpha (PMI)"] is not None and table["meaning"].str.len().min() > 10
