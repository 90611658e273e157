"""Item-item knowledge graph from training sessions (SPEC section 3, paper eqs. 3-4).

The graph is heterogeneous: every edge has one *property* p, and the models see one
projection G_p per property (one attention block each in the teacher). Properties:

* ``co_view``: items in the same training session (any action);
* ``co_cart``: items both carted or purchased in the same training session (action >= cart);
  on view-heavy data this projection is sparse or empty, which is reported, not hidden;
* ``same_category`` / ``same_brand``: attribute relations from ``items.parquet``.

Co-occurrence properties are weighted by PMI over sessions (S = all training sessions):
``PMI(i, j) = log(Pr(i, j) / (Pr(i) Pr(j)))`` with ``Pr(i) = df_i / S`` and
``Pr(i, j) = C_ij / S``, C = X^T X for the binary session x item incidence X. Pairs seen
together fewer than ``min_cooccurrence`` times are dropped first; alpha is the
``percentile``-th percentile of the remaining PMI values and only pairs with PMI > alpha are
kept. Each property computes its own alpha.

Attribute relations would be cliques of thousands of items on real data, so each item is
linked to at most ``top_m`` other items of its group: the group's most popular ones by
training count (ties: lower item index). They carry no co-occurrence statistic, so their
weight is 1.0. A missing or empty ``category_code`` falls back to ``category_id``; a missing
brand gives no brand edge.

Only training sessions ever enter :func:`build_kg`, so validation and test cannot leak in.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
import torch

from recpress_utils.data.rees46 import EVENT_STRENGTH
from recpress_utils.io import atomic_path, write_json
from recpress_utils.sequences import Sessions, load_sessions
from recpress_utils.settings import Settings

#: Co-occurrence properties and the weakest action a step needs to count for them.
CO_OCCURRENCE: dict[str, int] = {"co_view": EVENT_STRENGTH["view"], "co_cart": EVENT_STRENGTH["cart"]}
#: Attribute properties and the items.parquet column(s) that define their groups.
ATTRIBUTES: tuple[str, ...] = ("same_category", "same_brand")
PROPERTIES: tuple[str, ...] = (*CO_OCCURRENCE, *ATTRIBUTES)
#: What an edge of each property says, for the reports.
MEANING: dict[str, str] = {
    "co_view": "both items in one training session (PMI-weighted)",
    "co_cart": "both items carted or bought in one training session (PMI-weighted)",
    "same_category": "same category (MovieLens: the movie's first genre); the group's top_m most popular",
    "same_brand": "same brand; the group's top_m most popular",
}
ATTRIBUTE_WEIGHT = 1.0
#: The graph's file in a KG folder (:meth:`KnowledgeGraph.write`).
GRAPH_FILE = "graph.parquet"
_META_KEY = "recpress_kg"


@dataclass(frozen=True)
class KGConfig(Settings):
    """Knowledge-graph settings; see the module docstring for what each does."""

    KIND = "KG"

    min_cooccurrence: int = 2
    percentile: float = 25.0
    top_m: int = 20
    properties: tuple[str, ...] = PROPERTIES

    def __post_init__(self) -> None:
        object.__setattr__(self, "properties", tuple(self.properties))  # YAML gives lists
        unknown = sorted(set(self.properties) - set(PROPERTIES))
        if unknown:
            raise ValueError(f"unknown KG properties: {', '.join(unknown)}; known: {', '.join(PROPERTIES)}")
        if not self.properties or len(set(self.properties)) != len(self.properties):
            raise ValueError("properties must be a non-empty list without repeats")
        if self.min_cooccurrence < 1:
            raise ValueError("min_cooccurrence must be >= 1")
        if not 0 <= self.percentile <= 100:
            raise ValueError("percentile must be in [0, 100]")
        if self.top_m < 1:
            raise ValueError("top_m must be >= 1")



@dataclass
class Edges:
    """Undirected edges of one property, stored once with u < v, sorted by (u, v)."""

    u: np.ndarray  # int64
    v: np.ndarray  # int64
    weight: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.u)

    @staticmethod
    def empty() -> "Edges":
        return Edges(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))


@dataclass
class KnowledgeGraph:
    """Per-property edges over items 1..n_items-1 (0 is padding), plus node attributes.

    ``alpha[p]`` is the PMI threshold of a co-occurrence property (None for attribute
    relations or when no pair qualified); ``candidates[p]`` is how many pairs reached
    ``min_cooccurrence`` before thresholding (None for attribute relations). ``timing``
    (seconds per property) is not saved.
    """

    n_items: int
    edges: dict[str, Edges]
    alpha: dict[str, float | None]
    candidates: dict[str, int | None]
    category: list[str | None]
    brand: list[str | None]
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def properties(self) -> list[str]:
        return list(self.edges)

    def write(self, path: str | Path) -> None:
        """Parquet edge list ``u, v, property, weight`` (u < v, by property then (u, v)), atomically.

        Four numbers an edge on disk and in memory, no graph object: the paper-scale graph
        (millions of edges) is written and read in seconds. The schema metadata carries what
        the edge list alone cannot (n_items, properties, alpha, candidates).
        """
        meta = {"n_items": self.n_items, "properties": self.properties,
                "alpha": self.alpha, "candidates": self.candidates}
        props = self.properties
        table = pa.table({
            "u": np.concatenate([e.u for e in self.edges.values()]).astype(np.int64),
            "v": np.concatenate([e.v for e in self.edges.values()]).astype(np.int64),
            "property": pa.DictionaryArray.from_arrays(
                np.repeat(np.arange(len(props), dtype=np.int32), [len(e) for e in self.edges.values()]),
                pa.array(props, pa.string())),
            "weight": np.concatenate([e.weight for e in self.edges.values()]).astype(np.float64),
        }).replace_schema_metadata({_META_KEY: json.dumps(meta, sort_keys=True)})
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp, compression="zstd")

    @classmethod
    def read(cls, path: str | Path, items: pd.DataFrame | None = None) -> "KnowledgeGraph":
        """Inverse of :meth:`write`; node attributes come from ``items`` when given."""
        table = pq.read_table(path)
        meta_raw = (table.schema.metadata or {}).get(_META_KEY.encode())
        if meta_raw is None:
            raise ValueError(f"{path}: not a RecPress KG file (no '{_META_KEY}' metadata)")
        meta = json.loads(meta_raw)
        n, props = int(meta["n_items"]), meta["properties"]
        prop = table.column("property").combine_chunks()
        codes = prop.indices.to_numpy()
        names = np.asarray(prop.dictionary.to_pylist(), dtype=object)[codes] if len(codes) else codes
        u, v, w = (table.column(c).to_numpy() for c in ("u", "v", "weight"))
        edges = {p: _sorted_edges(u[names == p], v[names == p], w[names == p]) for p in props}
        category, brand = node_attributes(items, n) if items is not None else ([None] * n, [None] * n)
        return cls(n, edges, {p: meta["alpha"][p] for p in props},
                   {p: meta["candidates"][p] for p in props}, category, brand)

    def neighbor_tables(self, n_items: int, top_m: int) -> dict[str, Any]:
        """Padded top-``top_m`` neighbours per item and property, for the models' KG attention.

        Sorted by weight desc, then index asc; padding is index 0 / weight 0, and row 0 (the
        padding item) is all zeros since item 0 has no edges.
        """
        if n_items < self.n_items:
            raise ValueError(f"n_items={n_items} is smaller than the graph's {self.n_items}")
        props = self.properties
        index = np.zeros((len(props), n_items, top_m), dtype=np.int64)
        weight = np.zeros((len(props), n_items, top_m), dtype=np.float32)
        for k, prop in enumerate(props):
            src, dst, w, rank = _ranked_neighbours(self.edges[prop])
            keep = rank < top_m
            index[k, src[keep], rank[keep]] = dst[keep]
            weight[k, src[keep], rank[keep]] = w[keep]
        return {"properties": props, "index": torch.from_numpy(index), "weight": torch.from_numpy(weight)}


def _sorted_edges(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> Edges:
    order = np.lexsort((v, u))
    return Edges(u[order].astype(np.int64), v[order].astype(np.int64), w[order].astype(np.float64))


def _ranked_neighbours(e: Edges) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Both directions of every edge, each source's neighbours ranked 0.. by (weight desc, index asc)."""
    src = np.concatenate([e.u, e.v])
    dst = np.concatenate([e.v, e.u])
    w = np.concatenate([e.weight, e.weight])
    order = np.lexsort((dst, -w, src))
    src, dst, w = src[order], dst[order], w[order]
    starts = np.searchsorted(src, src, side="left")
    return src, dst, w, np.arange(len(src)) - starts


# --- co-occurrence properties -------------------------------------------------------------

def incidence(sessions: Sessions, n_items: int, min_action: int = 0) -> sp.csr_matrix:
    """Binary session x item matrix of the steps whose action >= ``min_action``.

    Every session keeps its row (possibly empty), so S is the same for every property.
    """
    lengths = np.fromiter((len(s) for s in sessions.items), dtype=np.int64, count=len(sessions))
    rows = np.repeat(np.arange(len(sessions)), lengths)
    cols = np.concatenate(sessions.items) if len(sessions) else np.zeros(0, np.int64)
    acts = np.concatenate(sessions.actions) if len(sessions) else np.zeros(0, np.int8)
    keep = acts >= min_action
    x = sp.csr_matrix((np.ones(int(keep.sum()), np.float64), (rows[keep], cols[keep])),
                      shape=(len(sessions), n_items))
    x.data[:] = 1.0  # duplicates were summed: a session counts an item once
    return x


def pmi_pairs(x: sp.csr_matrix, min_cooccurrence: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PMI of every item pair (u < v) co-occurring in at least ``min_cooccurrence`` sessions."""
    n_sessions = x.shape[0]
    df = np.rint(np.asarray(x.sum(axis=0)).ravel()).astype(np.int64)
    c = sp.triu(x.T @ x, k=1).tocoo()  # sessions containing both; each pair once
    cij = np.rint(c.data).astype(np.int64)
    keep = cij >= min_cooccurrence
    u, v, cij = c.row[keep].astype(np.int64), c.col[keep].astype(np.int64), cij[keep]
    pmi = pmi_from_counts(cij, df[u], df[v], n_sessions)
    order = np.lexsort((v, u))
    return u[order], v[order], pmi[order]


def pmi_from_counts(cij: np.ndarray, df_u: np.ndarray, df_v: np.ndarray, n_sessions: int) -> np.ndarray:
    """``log(C_ij * S / (df_i * df_j))`` from integer counts, in one canonical expression.

    Both products are exact integers (int64; float64 is exact below 2**53) and commutative, so
    pairs with equal counts get bit-equal PMI whatever order the counts come in, and whether a
    pair clears ``PMI > alpha`` never depends on the last bit of a differently ordered sum.
    """
    num = np.asarray(cij, np.int64) * np.int64(n_sessions)
    den = np.asarray(df_u, np.int64) * np.asarray(df_v, np.int64)
    if len(num) and max(int(num.max()), int(den.max())) >= 2**53:
        raise OverflowError("co-occurrence counts too large for an exact PMI (>= 2**53)")
    return np.log(num.astype(np.float64) / den.astype(np.float64))


def pmi_threshold(pmi: np.ndarray, percentile: float) -> float | None:
    """The paper's alpha: the given percentile of the candidate PMI values (None if there are none)."""
    return float(np.percentile(pmi, percentile)) if len(pmi) else None


def candidate_pmi(
    train: Sessions, n_items: int, prop: str, min_cooccurrence: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All candidate pairs (u, v, PMI) of a co-occurrence property, before the alpha threshold."""
    return pmi_pairs(incidence(train, n_items, CO_OCCURRENCE[prop]), min_cooccurrence)


def co_occurrence_edges(train: Sessions, n_items: int, prop: str, cfg: KGConfig) -> tuple[Edges, float | None, int]:
    """Edges of one co-occurrence property: pairs with PMI > alpha, weight PMI; plus alpha and #candidates."""
    u, v, pmi = candidate_pmi(train, n_items, prop, cfg.min_cooccurrence)
    alpha = pmi_threshold(pmi, cfg.percentile)
    if alpha is None:
        return Edges.empty(), None, 0
    keep = pmi > alpha
    return Edges(u[keep], v[keep], pmi[keep]), alpha, len(pmi)


# --- attribute properties -----------------------------------------------------------------

def _strings(items: pd.DataFrame, column: str) -> np.ndarray:
    """A column as an object array of stripped strings, None where missing or empty."""
    out = np.full(len(items), None, dtype=object)
    if column not in items:
        return out
    values = items[column]
    if pd.api.types.is_float_dtype(values):  # ids stored as float because of nulls: 12.0 -> "12"
        values = values.astype("Int64")
    s = values.astype("string").str.strip()
    ok = (s.notna() & (s != "")).fillna(False).to_numpy(bool)
    out[ok] = s[ok].to_numpy(object)
    return out


def node_attributes(items: pd.DataFrame, n_items: int) -> tuple[list[str | None], list[str | None]]:
    """Per item index: category key (category_code, else ``id:<category_id>``) and brand."""
    code = _strings(items, "category_code")
    cid = np.array([None if c is None else f"id:{c}" for c in _strings(items, "category_id")], dtype=object)
    category = np.full(n_items, None, dtype=object)
    brand = np.full(n_items, None, dtype=object)
    idx = items["item_idx"].to_numpy(np.int64)
    category[idx] = np.where(np.array([c is not None for c in code], dtype=bool), code, cid)
    brand[idx] = _strings(items, "brand")
    return category.tolist(), brand.tolist()


def attribute_edges(groups: Sequence[str | None], popularity: np.ndarray, top_m: int) -> Edges:
    """Link each grouped item to its group's ``top_m`` most popular other items (weight 1.0).

    ``groups[i]`` and ``popularity[i]`` are per item index; None means no group.
    """
    key = pd.Series(list(groups), dtype=object)
    items = np.flatnonzero(key.notna().to_numpy())
    if len(items) == 0:
        return Edges.empty()
    gid = pd.factorize(key.iloc[items])[0]
    order = np.lexsort((items, -popularity[items], gid))  # by group, popularity desc, index asc
    items, gid = items[order], gid[order]
    rank = np.arange(len(items)) - np.searchsorted(gid, gid, side="left")
    heads = np.full((gid.max() + 1, top_m + 1), -1, dtype=np.int64)  # top_m + 1: one may be the item itself
    head = rank <= top_m
    heads[gid[head], rank[head]] = items[head]
    cand = heads[gid]
    ok = (cand >= 0) & (cand != items[:, None])
    ok &= np.cumsum(ok, axis=1) <= top_m
    a = np.repeat(items, ok.sum(axis=1))
    b = cand[ok]
    pairs = np.unique(np.minimum(a, b) * (popularity.size + 1) + np.maximum(a, b))
    u, v = np.divmod(pairs, popularity.size + 1)
    return _sorted_edges(u, v, np.full(len(u), ATTRIBUTE_WEIGHT))


# --- build, summarise, run ----------------------------------------------------------------

def build_kg(train: Sessions, items: pd.DataFrame, cfg: KGConfig) -> KnowledgeGraph:
    """The knowledge graph of ``cfg.properties`` from training sessions and item attributes."""
    n_items = int(items["item_idx"].max()) + 1 if len(items) else 1
    category, brand = node_attributes(items, n_items)
    popularity = np.zeros(n_items, dtype=np.float64)
    popularity[items["item_idx"].to_numpy(np.int64)] = items["train_count"].to_numpy(np.float64)
    edges, alpha, candidates, timing = {}, {}, {}, {}
    for prop in cfg.properties:
        started = time.perf_counter()
        if prop in CO_OCCURRENCE:
            edges[prop], alpha[prop], candidates[prop] = co_occurrence_edges(train, n_items, prop, cfg)
        else:
            groups = category if prop == "same_category" else brand
            edges[prop], alpha[prop], candidates[prop] = attribute_edges(groups, popularity, cfg.top_m), None, None
        timing[prop] = time.perf_counter() - started
    return KnowledgeGraph(n_items, edges, alpha, candidates, category, brand, timing)


def _degree_summary(degree: np.ndarray) -> dict[str, float]:
    linked = degree[degree > 0]
    return {
        "mean": round(float(degree.mean()), 4) if len(degree) else 0.0,
        "median_linked": float(np.median(linked)) if len(linked) else 0.0,
        "max": int(degree.max()) if len(degree) else 0,
        "isolated": int((degree == 0).sum()),
    }


def degrees(kg: KnowledgeGraph, prop: str) -> np.ndarray:
    """Degree of items 1..n_items-1 in projection ``prop``."""
    e = kg.edges[prop]
    return np.bincount(np.concatenate([e.u, e.v]), minlength=kg.n_items)[1:]


def neighbourhood(kg: KnowledgeGraph, item: int, top_k: int) -> "nx.MultiGraph":
    """The star of ``item``: its ``top_k`` strongest neighbours in every projection, for drawing
    (the one place networkx serves: a figure of a handful of nodes)."""
    import networkx as nx

    g = nx.MultiGraph()
    g.add_node(item, category=kg.category[item], brand=kg.brand[item])
    for prop, e in kg.edges.items():
        src, dst, w, rank = _ranked_neighbours(e)
        mine = (src == item) & (rank < top_k)
        for other, weight in zip(dst[mine], w[mine]):
            g.add_node(int(other), category=kg.category[other], brand=kg.brand[other])
            g.add_edge(item, int(other), key=prop, property=prop, weight=float(weight))
    return g


def kg_stats(kg: KnowledgeGraph) -> dict[str, Any]:
    """Nodes (items with >= 1 edge) and edges per property, alpha, candidates, degree summaries."""
    deg = {p: degrees(kg, p) for p in kg.properties}
    total = sum(deg.values(), np.zeros(kg.n_items - 1, dtype=np.int64))
    return {
        "items": kg.n_items - 1,
        "nodes": {**{p: int((d > 0).sum()) for p, d in deg.items()}, "any": int((total > 0).sum())},
        "edges": {**{p: len(e) for p, e in kg.edges.items()}, "any": int(sum(len(e) for e in kg.edges.values()))},
        "alpha": {p: None if a is None else round(a, 6) for p, a in kg.alpha.items()},
        "candidate_pairs": dict(kg.candidates),
        "degree": {**{p: _degree_summary(d) for p, d in deg.items()}, "any": _degree_summary(total)},
    }


def run_build_kg(prepared_dir: str | Path, kg_dir: str | Path, cfg: KGConfig) -> dict[str, Any]:
    """Build from ``train.parquet`` + ``items.parquet``; write graph.parquet, neighbors.pt, kg_stats.json."""
    prepared_dir, kg_dir = Path(prepared_dir), Path(kg_dir)
    started = time.perf_counter()
    items = pd.read_parquet(prepared_dir / "items.parquet")
    kg = build_kg(load_sessions(prepared_dir, "train"), items, cfg)
    kg.write(kg_dir / GRAPH_FILE)
    with atomic_path(kg_dir / "neighbors.pt") as tmp:
        torch.save(kg.neighbor_tables(kg.n_items, cfg.top_m), tmp)
    pmi_seconds = sum(t for p, t in kg.timing.items() if p in CO_OCCURRENCE)
    stats = {
        **kg_stats(kg),
        "config": asdict(cfg),
        "timing": {"pmi_seconds": round(pmi_seconds, 4), "total_seconds": round(time.perf_counter() - started, 4),
                   "per_property_seconds": {p: round(t, 4) for p, t in kg.timing.items()}},
    }
    write_json(stats, kg_dir / "kg_stats.json")
    return stats
