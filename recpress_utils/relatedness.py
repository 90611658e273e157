"""Are a model's top items after one seed item related to it? (claim C6, paper Figure 8)

For a seeded sample of seed items, every model recommends its top k after the one-item
session ``[seed item]``; we count how many of those are knowledge-graph neighbours of the seed
(any projection) and how many share its category. Random items and the most popular items
give the chance levels. The file also keeps one worked example for Figure 8.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from recpress_utils.io import write_json
from recpress_utils.kg import KnowledgeGraph
from recpress_utils.runs import load_run


def _neighbour_sets(kg: KnowledgeGraph) -> list[set[int]]:
    sets: list[set[int]] = [set() for _ in range(kg.n_items)]
    for edges in kg.edges.values():
        for a, b in zip(edges.u.tolist(), edges.v.tolist()):
            sets[a].add(b)
            sets[b].add(a)
    return sets


def _shares(recs: np.ndarray, seeds: np.ndarray, neighbours: list[set[int]], category: list) -> dict:
    """Mean share of recommended items that are graph neighbours / same category as the seed."""
    kg_hits = [np.mean([r in neighbours[s] for r in row]) for s, row in zip(seeds, recs)]
    cat_hits = [np.mean([category[r] is not None and category[r] == category[s] for r in row])
                for s, row in zip(seeds, recs)]
    return {"kg_neighbour_share": round(float(np.mean(kg_hits)), 6),
            "same_category_share": round(float(np.mean(cat_hits)), 6)}


def top_k_after(model: torch.nn.Module, seeds: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k ids and scores after the one-item session of each seed item (seed itself excluded)."""
    items = torch.as_tensor(seeds, dtype=torch.long)[:, None]
    ids, scores = model.recommend(items, k + 1)
    ids, scores = ids.numpy(), scores.numpy()
    keep = ids != seeds[:, None]
    out_ids = np.stack([row[m][:k] for row, m in zip(ids, keep)])
    out_scores = np.stack([row[m][:k] for row, m in zip(scores, keep)])
    return out_ids, out_scores


def relatedness(
    runs: dict[str, str | Path],
    prepared_dir: str | Path,
    graph_path: str | Path,
    neighbors_path: str | Path,
    n_seed_items: int = 300,
    k: int = 5,
    seed: int = 0,
    example_runs: Sequence[str] = (),
) -> dict[str, Any]:
    """Shares per run, chance levels, and a Figure 8 example for ``example_runs``."""
    items = pd.read_parquet(Path(prepared_dir) / "items.parquet")
    kg = KnowledgeGraph.read(graph_path, items)
    neighbours = _neighbour_sets(kg)
    linked = np.array([i for i in range(1, kg.n_items) if neighbours[i]])
    rng = np.random.default_rng(seed)
    seeds = np.sort(rng.choice(linked, size=min(n_seed_items, len(linked)), replace=False))
    out: dict[str, Any] = {"k": k, "n_seed_items": int(len(seeds)), "runs": {}}
    recs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, run_dir in runs.items():
        model = load_run(run_dir, prepared_dir, neighbors_path)
        recs[name] = top_k_after(model, seeds, k)
        out["runs"][name] = _shares(recs[name][0], seeds, neighbours, kg.category)
    random_recs = np.stack([rng.choice(np.setdiff1d(np.arange(1, kg.n_items), [s]), k, replace=False)
                            for s in seeds])
    out["random"] = _shares(random_recs, seeds, neighbours, kg.category)
    popular = items.sort_values(["train_count", "item_idx"], ascending=[False, True])["item_idx"].to_numpy()
    popular_recs = np.stack([popular[popular != s][:k] for s in seeds])
    out["popularity"] = _shares(popular_recs, seeds, neighbours, kg.category)
    out["figure8"] = _example(seeds, recs, example_runs, kg, items, neighbours)
    return out


def _example(seeds, recs, example_runs, kg, items, neighbours) -> dict[str, Any]:
    """The most popular seed item and each example run's top-k after it, with attributes."""
    if not example_runs:
        return {}
    counts = items.set_index("item_idx")["train_count"]
    row = int(np.argmax(counts.loc[seeds].to_numpy()))
    seed_item = int(seeds[row])

    def describe(i: int) -> dict[str, Any]:
        return {"item": i, "category": kg.category[i], "brand": kg.brand[i]}

    return {
        "seed_item": describe(seed_item),
        "runs": {
            name: [{**describe(int(i)), "score": round(float(s), 4), "kg_neighbour": int(i) in neighbours[seed_item]}
                   for i, s in zip(recs[name][0][row], recs[name][1][row])]
            for name in example_runs
        },
    }


def main(argv: Sequence[str] | None = None) -> None:
    """CLI for the workflow: ``--runs`` is a JSON object {name: run folder}."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", required=True, help="JSON {name: run dir}")
    parser.add_argument("--prepared", required=True)
    parser.add_argument("--graph", required=True)
    parser.add_argument("--neighbors", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--examples", default="[]", help="JSON list of run names for Figure 8")
    parser.add_argument("--n-seed-items", type=int, default=300)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = relatedness(json.loads(args.runs), args.prepared, args.graph, args.neighbors,
                         args.n_seed_items, args.k, args.seed, json.loads(args.examples))
    write_json(result, args.out)


if __name__ == "__main__":
    main()
