"""A sweep's grid: the command line's ``key=v1,v2`` entries, their crossing, which point is best
(over the seeds it ran at), and whether the best point sits at the grid's edge.

The edge check is here because a sweep whose best value is the smallest or largest it tried has
not shown that value to be best, only that the optimum may lie beyond it: the sweep's command
line warns, and the report's settings tables say so beside "chosen on validation". It reads only
the committed tables, so the report imports it without the training stack.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import pandas as pd
import yaml


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["k=50,100", "train.lr=0.001"]`` -> ``{"k": [50, 100], "train.lr": [0.001]}``."""
    grid = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise ValueError(f"grid entries look like key=v1,v2; got {item!r}")
        grid[key] = [None if v.strip().lower() in ("none", "null") else yaml.safe_load(v)
                     for v in values.split(",")]
    return grid


def grid_points(grid: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in the order given."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def best_first(table: pd.DataFrame, points: list[str], metric: str) -> pd.DataFrame:
    """``table`` (one row per grid point and seed) with the best point's rows first: a point is
    scored by its mean ``metric`` over the seeds it ran at, as one seed's score swings by more
    than the differences a sweep looks for. Ties keep the earlier point; a point's rows stay
    together, in the order of their seeds. ``points``: the columns that name a point."""
    if not len(table):
        return table
    keys = [k for k in points if k in table]
    groups = table.groupby(keys, dropna=False, sort=False) if keys else table.groupby(lambda _: 0)
    order = table.assign(_mean=groups[metric].transform("mean"), _point=groups.ngroup(),
                         _seed=table["seed"] if "seed" in table else 0)
    order = order.sort_values(["_mean", "_point", "_seed"], ascending=[False, True, True], kind="stable")
    return table.loc[order.index].reset_index(drop=True)


def edge_keys(table: pd.DataFrame, keys: list[str]) -> dict[str, str]:
    """The keys whose value at the table's best point (its first row: sweep tables are best first)
    is the lowest or the highest of the numeric values the table tried, as ``{key: "lowest" |
    "highest"}``. A key tried at one value, or whose best value is not a number (``none``), is no
    edge: there is no direction to widen the grid in."""
    if not len(table):
        return {}
    edges = {}
    for key in keys:
        values = pd.to_numeric(table[key], errors="coerce")
        best = values.iloc[0]
        tried = values.dropna().unique()
        if len(tried) < 2 or pd.isna(best):
            continue
        if best <= tried.min():
            edges[key] = "lowest"
        elif best >= tried.max():
            edges[key] = "highest"
    return edges


def edge_text(edges: Mapping[str, str]) -> str:
    """``{"weight": "lowest"}`` -> ``"at the grid's edge: weight its lowest"``; "" without edges."""
    if not edges:
        return ""
    return "at the grid's edge: " + ", ".join(f"{k} its {where}" for k, where in edges.items())

