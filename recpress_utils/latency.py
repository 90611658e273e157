"""Latency of returning the top 100 items, per 1,000 requests (paper Table 6), measured fairly.

Every model is timed in one process, on the same requests, at its best (eval mode,
``torch.inference_mode``, its cheapest last-position path), batched and one request at a
time, after warm-up, over repeated runs (median and spread). Two references frame the numbers:

- the **scoring floor**: one (requests x 64) @ (64 x |I|) product plus top-100, which no model
  that scores every item with a 64-d vector can beat;
- the teacher **as the paper describes it**, traversing the knowledge graph (networkx
  look-ups) for every request, beside the same teacher with precomputed neighbour tables.
"""

from __future__ import annotations

import copy
import io
import statistics
import time
from pathlib import Path
from typing import Callable

import networkx as nx
import numpy as np
import pandas as pd
import torch

from recpress_utils.io import write_json
from recpress_utils.kg import KnowledgeGraph
from recpress_utils.models.mixed_attention import MixedAttention
from recpress_utils.runs import load_run
from recpress_utils.sequences import PAD, eval_examples, load_sessions, n_items

TOP_K = 100


def time_call(fn: Callable[[], object], repeats: int = 7, warmup: int = 2) -> dict[str, float]:
    """Median, min, max and interquartile range of ``fn``'s wall time in seconds."""
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    q1, _, q3 = statistics.quantiles(runs, n=4) if len(runs) > 1 else (runs[0],) * 3
    return {"median": statistics.median(runs), "min": min(runs), "max": max(runs), "iqr": q3 - q1,
            "repeats": repeats}


def _scaled(stats: dict[str, float], factor: float) -> dict[str, float]:
    return {k: (v * factor if k != "repeats" else v) for k, v in stats.items()}


def batched_seconds_per_1000(model: torch.nn.Module, requests: torch.Tensor, repeats: int = 7) -> dict:
    """Seconds to return the top 100 for 1,000 requests sent as one batch."""
    model.eval()
    factor = 1000 / len(requests)
    k = min(TOP_K, model.n_items - 1)
    return _scaled(time_call(lambda: model.recommend(requests, k), repeats), factor)


def single_seconds_per_1000(
    model: torch.nn.Module, requests: torch.Tensor, n_single: int = 200, repeats: int = 3
) -> dict:
    """Seconds per 1,000 requests answered one at a time (measured on ``n_single``, scaled)."""
    model.eval()
    rows = [r[r != PAD][None] for r in requests[:n_single]]  # each request at its own length
    k = min(TOP_K, model.n_items - 1)

    def one_by_one() -> None:
        for row in rows:
            model.recommend(row, k)

    return _scaled(time_call(one_by_one, repeats, warmup=1), 1000 / len(rows))


def scoring_floor(n_items: int, n_requests: int = 1000, dim: int = 64, repeats: int = 7,
                  seed: int = 0) -> dict[str, dict[str, float]]:
    """The cost no model can go below: a 64-d user vector against every item, then top-100."""
    gen = torch.Generator().manual_seed(seed)
    users = torch.randn(n_requests, dim, generator=gen)
    items = torch.randn(dim, n_items, generator=gen)
    with torch.inference_mode():
        product = time_call(lambda: users @ items, repeats)
        with_topk = time_call(lambda: torch.topk(users @ items, min(TOP_K, n_items), dim=1), repeats)
    factor = 1000 / n_requests
    return {"product": _scaled(product, factor), "product_topk": _scaled(with_topk, factor)}


def model_size(model: torch.nn.Module) -> dict[str, int]:
    """Trainable parameters and bytes of the saved state dict (what ships to a server)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return {"parameters": sum(p.numel() for p in model.parameters()), "bytes": buffer.getbuffer().nbytes}


class GraphTraversalTeacher(MixedAttention):
    """The teacher as the paper describes it: neighbours looked up in the graph per request.

    Same weights and same outputs as the table-based teacher (tested), but
    :meth:`neighbors_for` walks the networkx graph for every item of every request instead of
    indexing precomputed tables.
    """

    graph: nx.MultiGraph
    properties: list[str]
    top_m: int

    @classmethod
    def from_teacher(cls, teacher: MixedAttention, graph: nx.MultiGraph, properties: list[str]
                     ) -> "GraphTraversalTeacher":
        model = copy.deepcopy(teacher)
        model.__class__ = cls
        model.graph, model.properties = graph, list(properties)
        model.top_m = teacher.neighbor_index.shape[-1]
        return model

    def neighbors_for(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = items.reshape(-1).tolist()
        n_props = len(self.properties)
        index = np.zeros((len(flat), n_props, self.top_m), dtype=np.int64)
        weight = np.zeros((len(flat), n_props, self.top_m), dtype=np.float32)
        for row, item in enumerate(flat):
            if item == PAD or item not in self.graph:
                continue
            for p, prop in enumerate(self.properties):
                found = [(-d["weight"], nb) for nb, keyed in self.graph.adj[item].items()
                         for key, d in keyed.items() if key == prop]
                found.sort()
                for m, (neg_w, nb) in enumerate(found[: self.top_m]):
                    index[row, p, m], weight[row, p, m] = nb, -neg_w
        shape = (*items.shape, n_props, self.top_m)
        return (torch.from_numpy(index).view(shape).to(items.device),
                torch.from_numpy(weight).view(shape).to(items.device))


def benchmark(
    models: dict[str, torch.nn.Module],
    requests: torch.Tensor,
    n_items: int,
    threads: int,
    repeats: int = 7,
    n_single: int = 200,
) -> dict:
    """Time every model (batched and single) and the floor in one run; sizes too."""
    torch.set_num_threads(threads)
    floor = scoring_floor(n_items, len(requests), repeats=repeats)
    out = {"threads": threads, "n_requests": len(requests), "n_items": n_items, "top_k": TOP_K,
           "floor": floor, "models": {}}
    for name, model in models.items():
        batched = batched_seconds_per_1000(model, requests, repeats)
        out["models"][name] = {
            "batched": batched,
            "single": single_seconds_per_1000(model, requests, n_single),
            "x_floor": batched["median"] / floor["product_topk"]["median"],
            **model_size(model),
        }
    return out


def run_benchmark(
    prepared_dir: str | Path,
    runs: dict[str, str | Path],
    teacher: str,
    neighbors_path: str | Path,
    graph_path: str | Path,
    out_path: str | Path,
    threads: int,
    repeats: int = 7,
    n_single: int = 200,
    n_requests: int = 1000,
) -> dict:
    """Load the trained models named in ``runs``, add the graph-traversing teacher, time all.

    ``teacher`` names the entry of ``runs`` that is the Mixed Attention teacher; it is timed
    with its tables and, as ``"<teacher> (graph traversal)"``, with networkx look-ups.
    """
    test = load_sessions(prepared_dir, "test")
    inputs, _ = eval_examples(test, "last")
    requests = inputs[torch.arange(n_requests) % len(inputs)]
    models = {name: load_run(run_dir, prepared_dir, neighbors_path) for name, run_dir in runs.items()}
    kg = KnowledgeGraph.read(graph_path)
    models[f"{teacher} (graph traversal)"] = GraphTraversalTeacher.from_teacher(
        models[teacher], kg.to_networkx(), kg.properties)
    result = benchmark(models, requests, n_items(prepared_dir), threads, repeats, n_single)
    result["runs"] = {name: str(path) for name, path in runs.items()}
    write_json(result, out_path)
    return result


def latency_table(result: dict) -> pd.DataFrame:
    """Seconds per 1,000 requests per model, its spread, size and multiple of the scoring floor."""
    rows = {}
    for name, row in result["models"].items():
        rows[name] = {
            "batched s/1000": row["batched"]["median"],
            "batched IQR": row["batched"]["iqr"],
            "single s/1000": row["single"]["median"],
            "x floor (batched)": row["x_floor"],
            "parameters": row["parameters"],
            "MB on disk": row["bytes"] / 1e6,
        }
    floor = result["floor"]["product_topk"]
    rows["scoring floor (64 x |I| product + top-100)"] = {
        "batched s/1000": floor["median"], "batched IQR": floor["iqr"], "x floor (batched)": 1.0}
    return pd.DataFrame(rows).T


def speed_ratios(result: dict, student: str, teacher: str, baseline: str) -> dict[str, float]:
    """How many times faster the student is than the teacher (both timings) and the baseline."""
    med = {name: row["batched"]["median"] for name, row in result["models"].items()}
    single = {name: row["single"]["median"] for name, row in result["models"].items()}
    traversal = f"{teacher} (graph traversal)"
    return {
        "student vs teacher (tables), batched": med[teacher] / med[student],
        "student vs teacher (graph traversal), batched": med[traversal] / med[student],
        "student vs baseline, batched": med[baseline] / med[student],
        "student vs teacher (tables), single": single[teacher] / single[student],
        "student vs teacher (graph traversal), single": single[traversal] / single[student],
        "student vs baseline, single": single[baseline] / single[student],
    }
