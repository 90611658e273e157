"""The report's tables: the paper's Tables 2-6 beside ours, the leaderboard, the loss comparison
and the peers' sanity bars. Each cell is a mean over seeds with its 95 % interval
(:mod:`recpress_utils.report.results`); a row the paper has no number for says so.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from recpress_utils.kg import MEANING, PROPERTIES
from recpress_utils.latency import latency_table
from recpress_utils.names import PAPER_GROUPS, PEER_NAMES
from recpress_utils.paper import paper_numbers, peer_numbers
from recpress_utils.report.results import METRICS, aggregate, ci_text, mean_ci, paired, too_few_seeds

#: The metrics of the paper's Tables 2-5.
PAPER_METRICS = ("MAP@1", "MAP@10", "MAP@100", "NDCG@1", "NDCG@10", "NDCG@100")
#: The note on a row the paper has no number for.
BEYOND = "beyond the paper"


def _table_rows(runs: pd.DataFrame, which: str) -> list[tuple[str, str, dict[str, float] | None]]:
    """(row label, group, paper values or None) in display order for one pair of paper tables."""
    paper = paper_numbers()[which]
    groups = list(dict.fromkeys(runs["group"]))
    if which == "tables_2_3":
        rows = [(name, group, paper[name]) for group, name in PAPER_GROUPS.items()]
        extra = [g for g in groups if g not in PAPER_GROUPS and not g.startswith("student")]
    elif which == "tables_4_5":
        rows = [(t, f"student-T{t}", paper[t]) for t in paper]
        extra = sorted((g for g in groups if g.startswith("student") and g not in {r[1] for r in rows}),
                       key=lambda g: (g != "student", g))
    else:
        raise ValueError(f"which must be 'tables_2_3' or 'tables_4_5', not {which!r}")
    label = runs.groupby("group")["display_name"].first()
    return rows + [(label[g], g, None) for g in sorted(extra, key=lambda g: _peer_order(runs, g))]


def _peer_order(runs: pd.DataFrame, group: str) -> tuple[int, str]:
    """Peers in the order simple -> strong (popularity, GRU4Rec, SASRec, BERT4Rec), then by name."""
    model = runs.loc[runs["group"] == group, "model"].iloc[0]
    order = list(PEER_NAMES)
    return (order.index(model) if model in order else len(order), group)


def paper_table(runs: pd.DataFrame, which: str, digits: int = 4, target: str = "last") -> pd.DataFrame:
    """The paper's Tables 2-3 (``tables_2_3``) or 4-5 (``tables_4_5``) beside ours.

    Per metric: paper value, our mean over seeds, our 95 % CI and ours - paper; n = seeds.
    A paper model we have no run of keeps its row (ours NaN, n = 0). Runs the paper has no
    row for (the hard-label student, extra baselines) are added with paper NaN and the note
    "beyond the paper". ``target="rest"`` compares our ``rest:`` metrics instead (the paper's
    task is ``last``). Rounded to ``digits`` so re-executed notebooks print the same text.
    """
    prefix = {"last": "", "rest": "rest:"}[target]
    records = {}
    for label, group, paper in _table_rows(runs, which):
        frame = runs[runs["group"] == group]
        row: dict[tuple[str, str], Any] = {}
        for metric in PAPER_METRICS:
            mean, low, high = mean_ci(frame[prefix + metric])
            ref = paper[metric] if paper else np.nan
            row.update({(metric, "paper"): ref, (metric, "ours"): mean, (metric, "CI low"): low,
                        (metric, "CI high"): high, (metric, "ours - paper"): mean - ref})
        row[("n", "")] = len(frame)
        row[("note", "")] = "" if paper else BEYOND
        records[label] = row
    table = pd.DataFrame.from_dict(records, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    table.index.name = "T" if which == "tables_4_5" else "model"
    return table.round(digits)


def compact(table: pd.DataFrame, digits: int = 4, paper_rows_only: bool = False) -> pd.DataFrame:
    """A :func:`paper_table` in long form, narrow enough for a 1280-px page: one row per model
    and metric with ours, our 95 % CI, the paper's figure and the difference ("—" where the
    paper has no row). ``paper_rows_only`` keeps the models the paper reports (the leaderboard
    has the others)."""
    rows = {}
    for model, row in table.iterrows():
        if paper_rows_only and row[("note", "")] == BEYOND:
            continue
        for metric in PAPER_METRICS:
            ours, low, high, ref = (row[(metric, k)] for k in ("ours", "CI low", "CI high", "paper"))
            rows[(model, metric)] = {
                "ours": f"{ours:.{digits}f}" if pd.notna(ours) else "not run",
                "95 % CI": f"[{low:.{digits}f}, {high:.{digits}f}]" if pd.notna(ours) and row[("n", "")] > 1 else "—",
                "paper": f"{ref:.{digits}f}" if pd.notna(ref) else "—",
                "ours − paper": f"{ours - ref:+.{digits}f}" if pd.notna(ref) and pd.notna(ours) else "—",
                "seeds": int(row[("n", "")]),
            }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index = pd.MultiIndex.from_tuples(out.index, names=[table.index.name, "metric"])
    return out


def leaderboard(runs: pd.DataFrame, metrics: Iterable[str] = ("NDCG@10", "MAP@10", "HR@10"),
                digits: int = 4) -> pd.DataFrame:
    """Every model group, best first by the first metric: mean and 95 % CI bounds per metric,
    seeds, and whether the paper has the model ("paper") or it is ours ("beyond the paper").

    Students appear by temperature, the peers beside the paper's models: one table answers
    "how do the teacher and the student stand against the models people use".
    """
    metrics = list(metrics)
    agg = aggregate(runs, metrics)
    label = runs.groupby("group")["display_name"].first()
    in_paper = set(PAPER_GROUPS) | {f"student-T{t}" for t in paper_numbers()["tables_4_5"]}
    table = pd.DataFrame(index=agg.index)
    for metric in metrics:
        for stat, name in (("mean", metric), ("low", f"{metric} CI low"), ("high", f"{metric} CI high")):
            table[name] = agg[(metric, stat)]
    table["n"] = agg[(metrics[0], "n")]
    table["note"] = ["paper" if g in in_paper else BEYOND for g in table.index]
    table.index = [label[g] for g in table.index]
    table.index.name = "model"
    return table.sort_values(metrics[0], ascending=False, kind="stable").round(digits)


#: Losses that compute the exact softmax over every item: the reference a cheaper loss is judged by.
FULL_SOFTMAX = ("cross_entropy", "chunked_cross_entropy")


def loss_comparison(runs: pd.DataFrame, metric: str = "MRR@20", within: float = 0.02) -> pd.DataFrame:
    """Each cheaper loss against full softmax on the same architecture and seeds: seconds per
    epoch, epochs, test ``metric`` and its relative difference (paired by seed). A loss is
    "within" when that difference's lower CI bound (with one seed: the difference itself) is
    above ``-within``: only then may it replace full softmax as a profile's default."""
    rows = []
    for architecture, frame in runs.groupby("model"):
        full = frame[frame["loss"].isin(FULL_SOFTMAX)]
        if full.empty or frame["group"].nunique() < 2:
            continue
        reference = full["group"].iloc[0]
        for group, runs_of in frame.groupby("group", sort=False):
            relative = paired(runs, group, reference, metric, ratio=True) - 1
            mean, low, _ = mean_ci(relative)
            rows.append({"architecture": architecture, "model": runs_of["display_name"].iloc[0],
                         "seeds": len(runs_of), "seconds per epoch": runs_of["seconds_per_epoch"].mean(),
                         "epochs": runs_of["epochs_run"].mean(), metric: runs_of[metric].mean(),
                         "vs full softmax": mean,
                         "verdict": "reference" if group == reference else
                         f"within {within:.0%}" if low > -within else f"not within {within:.0%}"})
    table = pd.DataFrame(rows, columns=["architecture", "model", "seeds", "seconds per epoch", "epochs", metric,
                                        "vs full softmax", "verdict"])
    return table.set_index(["architecture", "model"]).round(4)


def teacher_cache_comparison(bench: pd.DataFrame, metric: str = "MRR@20", within: float = 0.02) -> pd.DataFrame:
    """Distilling from the teacher's cached top-K against its full distribution
    (``teacher_cache.csv``, :mod:`recpress_utils.distill.cache_bench`): per way, training seconds
    per epoch and the speed-up, the cache's one-off seconds, peak memory, validation and test
    ``metric`` after the same epoch budget, and the cached way's relative test difference (paired
    by seed). As for the losses, the cache is "within" when that difference's lower CI bound
    (with one seed: the difference itself) is above ``-within``."""
    rows = []
    for (temperature, epochs), frame in bench.groupby(["temperature", "epochs"]):
        full = frame[frame["mode"] == "full"].set_index("seed")
        for mode, runs_of in frame.groupby("mode", sort=False):
            runs_of = runs_of.set_index("seed")
            seeds = runs_of.index.intersection(full.index)
            way = ("teacher's full distribution, student's full softmax" if mode == "full" else
                   f"teacher's top-{runs_of['top_k'].iloc[0]:.0f} cached"
                   + (f", student scores a pool of {runs_of['n_negatives'].iloc[0]:.0f}"
                      if pd.notna(runs_of["n_negatives"].iloc[0]) else ", student's full softmax"))
            verdict = "reference"
            relative = np.nan
            if mode != "full" and len(seeds):
                mean, low, _ = mean_ci(runs_of.loc[seeds, f"test_{metric}"] / full.loc[seeds, f"test_{metric}"] - 1)
                relative, verdict = mean, f"within {within:.0%}" if low > -within else f"not within {within:.0%}"
            speedup = full.loc[seeds, "seconds_per_epoch"].mean() / runs_of.loc[seeds, "seconds_per_epoch"].mean()
            rows.append({"T": temperature, "epochs": int(epochs), "way": way, "seeds": len(runs_of),
                         "training s/epoch": runs_of["seconds_per_epoch"].mean(),
                         "speed-up vs full": speedup if len(seeds) else np.nan,
                         "cache build s": runs_of["cache_seconds"].mean(),
                         "peak memory MB": runs_of["peak_rss_mb"].max(),
                         f"valid {metric}": runs_of[f"valid_{metric}"].mean(),
                         f"test {metric}": runs_of[f"test_{metric}"].mean(),
                         "vs full": relative, "verdict": verdict})
    columns = ["T", "epochs", "way", "seeds", "training s/epoch", "speed-up vs full", "cache build s",
               "peak memory MB", f"valid {metric}", f"test {metric}", "vs full", "verdict"]
    return pd.DataFrame(rows, columns=columns).set_index(["T", "epochs", "way"]).round(4)


def latency_beside_paper(latency: Mapping[str, Any]) -> pd.DataFrame:
    """Table 6: our seconds per 1,000 requests per model, the paper's where it has the model."""
    table = latency_table(latency)
    paper = paper_numbers()["table_6"]
    key = lambda name: "Student" if name.startswith("Student") else name
    table["paper s/1000"] = [paper.get(key(n), np.nan) for n in table.index]
    in_paper = lambda n: key(n) in paper or "floor" in n or "graph traversal" in n
    table["note"] = ["" if in_paper(n) else BEYOND for n in table.index]
    return table


def sanity_bars(runs: pd.DataFrame, dataset: str, metric: str = "NDCG@10",
                margin: float = 2.0, band: tuple[float, float] = (0.5, 2.0)) -> pd.DataFrame:
    """Checks that the peers are implemented well enough to compare against (issue #7).

    1. SASRec with full cross-entropy beats popularity by a wide margin: the per-seed ratio
       ``sasrec / popularity`` of ``metric`` has its 95 % CI lower bound >= ``margin``
       ("pass"), its upper bound < ``margin`` ("fail"), otherwise (or from fewer than
       ``MIN_VERDICT_SEEDS`` seeds) "inconclusive".
    2. For every published figure of ``dataset`` (``peer_numbers.yaml``) whose model we ran:
       our mean over published lies within ``band`` ("pass"), else "fail". Published numbers
       come from other code and settings, so this is an order-of-magnitude check.
    """
    rows = []
    if {"sasrec", "popularity"} <= set(runs["group"]):
        ratio = mean_ci(paired(runs, "sasrec", "popularity", metric, ratio=True))
        n = len(paired(runs, "sasrec", "popularity", metric))
        status = ("inconclusive" if too_few_seeds(n) else "pass" if ratio[1] >= margin
                  else "fail" if ratio[2] < margin else "inconclusive")
        rows.append({"check": f"SASRec (full CE) / popularity, {metric}, >= {margin:g}x",
                     "ours": ci_text(ratio, ".2f"), "published": "", "status": status,
                     "source": f"paired by seed, {n} seeds"})
    label = runs.groupby("group")["display_name"].first()
    by_name = {name: group for group, name in label.items()}
    for ref in peer_numbers().get(dataset, []):
        group = by_name.get(ref["model"])
        if group is None:
            continue
        for key in (k for k in METRICS if k in ref):
            ours = mean_ci(runs.loc[runs["group"] == group, key])
            share = ours[0] / ref[key]
            rows.append({"check": f"{ref['model']} {key} vs published (x{band[0]:g} to x{band[1]:g})",
                         "ours": ci_text(ours, ".4f"), "published": f"{ref[key]:.4f}",
                         "status": "pass" if band[0] <= share <= band[1] else "fail",
                         "source": ref["source"]})
    return pd.DataFrame(rows, columns=["check", "ours", "published", "status", "source"])


def kg_properties(kg_stats: Mapping[str, Any]) -> pd.DataFrame:
    """The knowledge graph's edge properties on this dataset (from ``kg_stats.json``): what each
    means, whether the data has it (edges > 0), its edges, linked items, mean degree and PMI
    threshold alpha. A property the data lacks (no cart events, no brands) stays in the table
    with 0 edges, so the report says which relations the teacher really saw."""
    rows = []
    for prop in (p for p in PROPERTIES if p in kg_stats["edges"]):
        degree = kg_stats["degree"][prop]
        rows.append({"property": prop, "meaning": MEANING[prop], "in this data": kg_stats["edges"][prop] > 0,
                     "edges": kg_stats["edges"][prop], "items linked": kg_stats["nodes"][prop],
                     "mean degree": degree["mean"], "alpha (PMI)": kg_stats["alpha"][prop]})
    return pd.DataFrame(rows).set_index("property")
