"""A sweep's grid: the command line's ``key=v1,v2`` entries, their crossing, and whether the best
point sits at the grid's edge.

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

