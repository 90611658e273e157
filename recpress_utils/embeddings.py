"""Node2Vec item embeddings from the knowledge graph, with pecanpy (SPEC section 3).

**Walk graph.** The union of the co-occurrence projections (``co_view`` and ``co_cart``).
A kept edge has PMI > alpha of its property, so its walk weight is ``PMI - alpha`` > 0:
the weakest kept pair of a property starts near 0 and the order within a property is
unchanged. A pair present in both projections takes the larger of its two weights (max, not
sum, so a pair is not counted twice for being seen under two actions). Attribute relations
are not walked: their fixed fan-out to popular items would pull every walk to category hubs;
the teacher sees them directly through the neighbour tables. Walks use node2vec+
(``extend=True``), which handles weighted graphs properly.

**Mode rule** (:func:`select_mode`), pecanpy's own recommendation (``pecanpy.cli.check_mode``),
on the graph of the items that have an edge, with density = nnz / (n (n - 1)):
``DenseOTF`` when density >= 0.2 (a dense adjacency matrix is then no larger than a sparse
one and neighbour tests are O(1)); ``PreComp`` for small, very sparse graphs, density < 0.001
and n < 10,000 nodes (the 2nd-order alias tables, sum of degree^2 entries, stay small and
walks become table look-ups); ``SparseOTF`` otherwise (large sparse graphs, and mid-density
ones where precomputing does not pay off: on the default dataset, density 0.014, SparseOTF
took 22 s end to end against PreComp's 24-25 s). ``Node2VecConfig.mode`` overrides the rule.

**Determinism.** pecanpy seeds only the calling thread's numba RNG, so with more than one
numba thread the other threads' walks would come from unseeded streams. We fix the numba
thread count and seed every numba thread with ``seed + thread id`` before walking (the
iterations are split statically between threads by the omp / workqueue threading layers;
the layer used is recorded). Word2Vec (gensim 4) runs with one worker and ``seed``; it draws
its initial vectors from ``numpy.random.default_rng(seed)``, so no PYTHONHASHSEED is needed.

**Items outside the walk graph** get, in this order: the mean embedding of the graph items of
the same category, if any; else a seeded standard normal vector rescaled to the mean norm of
the graph embeddings (1.0 if the graph is empty). Row 0 (padding) is zero.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from numba import njit, prange
from numba_progress.progress import is_notebook
from pecanpy import pecanpy as pecanpy_modes

from recpress_utils.io import atomic_path, write_json
from recpress_utils.kg import CO_OCCURRENCE, GRAPH_FILE, KnowledgeGraph
from recpress_utils.sequences import n_items as count_items
from recpress_utils.settings import Settings

MODES: tuple[str, ...] = ("auto", "PreComp", "SparseOTF", "DenseOTF")
DENSE_DENSITY = 0.2
PRECOMP_MAX_DENSITY = 0.001
PRECOMP_MAX_NODES = 10_000


@dataclass(frozen=True)
class Node2VecConfig(Settings):
    """Walk and skip-gram settings; ``dim`` must match the models' embedding size."""

    KIND = "Node2Vec"

    dim: int = 64
    walk_length: int = 40
    num_walks: int = 10
    window: int = 5
    epochs: int = 1
    p: float = 1.0
    q: float = 1.0
    mode: str = "auto"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown pecanpy mode {self.mode!r}; use one of {', '.join(MODES)}")
        if min(self.dim, self.walk_length, self.num_walks, self.window, self.epochs) < 1:
            raise ValueError("dim, walk_length, num_walks, window and epochs must be >= 1")
        if self.p <= 0 or self.q <= 0:
            raise ValueError("p and q must be > 0")



def walk_graph(kg: KnowledgeGraph) -> sp.csr_matrix:
    """Symmetric (n_items, n_items) weights of co_view ∪ co_cart: max over properties of PMI - alpha."""
    n = kg.n_items
    adj = sp.csr_matrix((n, n), dtype=np.float64)
    for prop in kg.properties:
        e = kg.edges[prop]
        if prop not in CO_OCCURRENCE or not len(e):
            continue
        w = e.weight - kg.alpha[prop]
        part = sp.csr_matrix((np.r_[w, w], (np.r_[e.u, e.v], np.r_[e.v, e.u])), shape=(n, n))
        adj = adj.maximum(part)
    adj.eliminate_zeros()
    adj.sort_indices()
    return adj


def select_mode(adj: sp.csr_matrix) -> str:
    """The pecanpy mode for a graph without isolated nodes (rule in the module docstring)."""
    n = adj.shape[0]
    density = adj.nnz / (n * (n - 1)) if n > 1 else 1.0
    if density >= DENSE_DENSITY:
        return "DenseOTF"
    if density < PRECOMP_MAX_DENSITY and n < PRECOMP_MAX_NODES:
        return "PreComp"
    return "SparseOTF"


@njit(parallel=True)
def _seed_numba_threads(seed: int, n_tasks: int) -> None:
    for _ in prange(n_tasks):  # n_tasks >> threads, so every thread runs (and seeds) at least once
        np.random.seed(seed + numba.get_thread_id())


@contextlib.contextmanager
def _seeded_numba(seed: int, threads: int) -> Iterator[int]:
    """Fixed numba thread count, every thread's RNG seeded; restores threads and numpy's global RNG."""
    previous, np_state = numba.get_num_threads(), np.random.get_state()
    n = max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    try:
        _seed_numba_threads(seed, 64 * n)
        yield n
    finally:
        numba.set_num_threads(previous)
        np.random.set_state(np_state)  # pecanpy seeds numpy's global RNG to shuffle start nodes


def _pecanpy_graph(
    adj: sp.csr_matrix, mode: str, cfg: Node2VecConfig, seed: int, verbose: bool
) -> pecanpy_modes.Base:
    node_ids = [str(i) for i in range(adj.shape[0])]
    kwargs = dict(p=cfg.p, q=cfg.q, workers=1, verbose=verbose, extend=True, random_state=seed)
    cls = getattr(pecanpy_modes, mode)
    if mode == "DenseOTF":
        return cls.from_mat(adj.toarray().astype(np.float32), node_ids, **kwargs)
    g = cls(**kwargs)
    g.set_node_ids(node_ids)
    g.indptr, g.indices = adj.indptr.astype(np.uint32), adj.indices.astype(np.uint32)
    g.data = adj.data.astype(np.float32)
    return g


def embed_graph(
    adj: sp.csr_matrix, cfg: Node2VecConfig, seed: int, threads: int, verbose: bool = False
) -> tuple[np.ndarray, str, int]:
    """Node2Vec+ embeddings (rows aligned with ``adj``, which has no isolated nodes), mode, threads."""
    mode = select_mode(adj) if cfg.mode == "auto" else cfg.mode
    g = _pecanpy_graph(adj, mode, cfg, seed, verbose)
    with _seeded_numba(seed, threads) as used:
        emb = g.embed(dim=cfg.dim, num_walks=cfg.num_walks, walk_length=cfg.walk_length,
                      window_size=cfg.window, epochs=cfg.epochs)
    return np.asarray(emb, dtype=np.float32), mode, used


def fill_missing(
    nodes: np.ndarray, node_emb: np.ndarray, n_items: int, category: Sequence[str | None], seed: int
) -> tuple[torch.Tensor, dict[str, int]]:
    """(n_items, dim) table: graph rows as given, the rest by the fallback rules; counts per rule."""
    out = np.zeros((n_items, node_emb.shape[1]), dtype=np.float32)
    out[nodes] = node_emb
    in_graph = np.zeros(n_items, dtype=bool)
    in_graph[nodes] = True
    missing = np.flatnonzero(~in_graph[1:]) + 1
    cats = np.asarray(category, dtype=object)
    means = pd.DataFrame(node_emb.astype(np.float64), index=cats[nodes]).groupby(level=0).mean()
    by_category = missing[means.index.get_indexer(cats[missing]) >= 0]
    out[by_category] = means.loc[cats[by_category]].to_numpy(np.float32)
    rand = np.setdiff1d(missing, by_category)
    norm = float(np.linalg.norm(node_emb, axis=1).mean()) if len(nodes) else 1.0
    z = np.random.default_rng(seed).standard_normal((len(rand), out.shape[1]))
    out[rand] = z / np.linalg.norm(z, axis=1, keepdims=True) * norm
    counts = {"graph": int(len(nodes)), "category_mean": int(len(by_category)), "random": int(len(rand))}
    return torch.from_numpy(out), counts


def node2vec_embeddings(
    kg: KnowledgeGraph, cfg: Node2VecConfig, seed: int, threads: int, verbose: bool = False
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Item embeddings (n_items, dim), row 0 zero, plus what was done (mode, graph size, fallbacks)."""
    adj = walk_graph(kg)
    nodes = np.flatnonzero(np.diff(adj.indptr))
    sub = adj[nodes][:, nodes].tocsr()
    sub.sort_indices()
    info: dict[str, Any] = {"nodes": int(len(nodes)), "edges": int(sub.nnz // 2),
                            "density": round(sub.nnz / max(len(nodes) * (len(nodes) - 1), 1), 6)}
    if len(nodes):
        node_emb, info["mode"], info["numba_threads"] = embed_graph(sub, cfg, seed, threads, verbose)
        info["threading_layer"] = numba.threading_layer()
    else:
        node_emb, info["mode"] = np.zeros((0, cfg.dim), dtype=np.float32), "none (empty graph)"
    emb, info["fallback"] = fill_missing(nodes, node_emb, kg.n_items, kg.category, seed)
    return emb, info


def _cosine(emb: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    return (unit[a] * unit[b]).sum(axis=1)


def neighbor_vs_random_cosine(emb: torch.Tensor, kg: KnowledgeGraph, n_pairs: int, seed: int) -> dict[str, float]:
    """Mean cosine of walk-graph neighbour pairs vs random pairs of distinct graph items.

    If the embedding learned the graph, neighbours are clearly closer than random pairs.
    """
    e = emb.detach().cpu().numpy().astype(np.float64)
    adj = walk_graph(kg)
    upper = sp.triu(adj, k=1).tocoo()
    if upper.nnz == 0:
        raise ValueError("the walk graph has no edges: nothing to compare")
    nodes = np.flatnonzero(np.diff(adj.indptr))
    rng = np.random.default_rng(seed)
    pick = rng.choice(upper.nnz, size=min(n_pairs, upper.nnz), replace=False)
    a, b = rng.choice(nodes, size=n_pairs), rng.choice(nodes, size=n_pairs)
    a, b = a[a != b], b[a != b]
    return {"neighbour_mean": float(_cosine(e, upper.row[pick], upper.col[pick]).mean()),
            "random_mean": float(_cosine(e, a, b).mean()),
            "neighbour_pairs": int(len(pick)), "random_pairs": int(len(a))}


def project_2d(emb: torch.Tensor) -> np.ndarray:
    """First two principal components (numpy SVD of the centred rows), for a quick look."""
    x = emb.detach().cpu().numpy().astype(np.float64)
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def run_node2vec(
    prepared_dir: str | Path, kg_dir: str | Path, emb_dir: str | Path, cfg: Node2VecConfig,
    seed: int, threads: int, verbose: bool | None = None,
) -> dict[str, Any]:
    """Embed the graph in ``kg_dir``; write node2vec.pt (the (n_items, dim) tensor) and node2vec_stats.json.

    ``verbose`` (pecanpy's walk progress bar) defaults to on, except inside a Jupyter kernel, where
    that bar needs ipywidgets (not a dependency).
    """
    verbose = not is_notebook() if verbose is None else verbose
    prepared_dir, emb_dir = Path(prepared_dir), Path(emb_dir)
    items = pd.read_parquet(prepared_dir / "items.parquet")
    kg = KnowledgeGraph.read(Path(kg_dir) / GRAPH_FILE, items)
    if kg.n_items != count_items(prepared_dir):
        raise ValueError(f"{kg_dir} was built for {kg.n_items - 1} items, "
                         f"{prepared_dir} has {count_items(prepared_dir) - 1}: rebuild the graph")
    started = time.perf_counter()
    emb, info = node2vec_embeddings(kg, cfg, seed, threads, verbose)
    seconds = time.perf_counter() - started
    with atomic_path(emb_dir / "node2vec.pt") as tmp:
        torch.save(emb, tmp)
    stats = {**info, "config": asdict(cfg), "seed": seed, "shape": list(emb.shape),
             "timing": {"node2vec_seconds": round(seconds, 4)}}
    if info["edges"]:
        check = neighbor_vs_random_cosine(emb, kg, n_pairs=5000, seed=seed)
        stats["neighbour_vs_random_cosine"] = {k: round(v, 4) for k, v in check.items()}
    write_json(stats, emb_dir / "node2vec_stats.json")
    return stats
