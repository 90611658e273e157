"""What the report's figures draw, as tables: a figure is a plot of one of these frames."""

from __future__ import annotations

from typing import Iterable

import pandas as pd


def curves(curve_table: pd.DataFrame, groups: Iterable[str], metric: str) -> pd.DataFrame:
    """Validation ``metric`` per epoch (paper Figures 4-7): index epoch, one column per group.

    ``curve_table`` is a digest's ``curves`` (one row per group, seed and epoch). Each value is
    the mean over the seeds that reached that epoch (early stopping ends runs at different
    epochs). How many seeds that was is in ``result.attrs["n"]`` (same shape).
    """
    means, counts = {}, {}
    for group in groups:
        per_epoch = curve_table.loc[curve_table["group"] == group].groupby("epoch")[metric]
        means[group], counts[group] = per_epoch.mean(), per_epoch.count()
    out = pd.DataFrame(means)
    out.index.name = "epoch"
    out.attrs["n"] = pd.DataFrame(counts).reindex(out.index).fillna(0).astype(int)
    return out
