"""Benchmarks that come already split (SR-GNN's Diginetica and Yoochoose 1/64), written in the
layout of :mod:`recpress_utils.data.prepare`, so every later stage reads them like any dataset.

Protocol ``srgnn`` (the one the published numbers use):

* training: every (prefix, next item) pair of the training sessions, i.e. the next-item loss at
  every position of ``train.parquet`` (the training loop already does that);
* validation, for early stopping: the most recent ``valid_frac`` of the training sessions (the
  file is in time order), every prefix of each; never the test pairs. Those sessions are left
  out of ``train.parquet``; ``train_all.parquet`` keeps every training session for a final
  refit (``train.refit``), since the published models trained on all of them;
* test: every published (prefix, next item) pair, one row each (``items`` = prefix + target, so
  target mode ``last`` scores exactly that pair);
* ranking: **all items of the id space** (``items.parquet`` lists ids ``1 .. n_items - 1``,
  including ids that never occur in training), so no target is cold: an item never trained on
  is ranked like any other (Yoochoose 1/64 has 412 such test pairs).

Item ids are kept as published (``item_idx`` = the SR-GNN id). The files have no timestamps, so
``start_time``/``end_time`` are the row order (one second per row), which keeps "newest last".
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa

from recpress_utils.data.prepare import SPLITS, length_summary
from recpress_utils.data.srgnn import load_split, validation_split
from recpress_utils.io import write_json, write_parquet

#: Every training session, the newest included: what the published models trained on, and what
#: a final refit (``train.refit``) trains on for the number of epochs early stopping chose.
REFIT_SPLIT = "train_all"
#: Datasets in SR-GNN's preprocessed layout (a folder with all_train_seq.txt[.gz] and test.txt[.gz]).
SRGNN_DATASETS: tuple[str, ...] = ("diginetica", "yoochoose1_64")
_EPOCH = np.datetime64("2000-01-01T00:00:00", "s")


def _sessions_table(kind: str, sessions: Sequence[np.ndarray]) -> pa.Table:
    """Sequences in the prepared layout (one row each, all actions "view", times = row order)."""
    n = len(sessions)
    times = _EPOCH + np.arange(n).astype("timedelta64[s]")
    return pa.table({
        "session_id": pa.array([f"{kind}-{i}" for i in range(n)], pa.string()),
        "user_id": pa.array(np.full(n, -1, np.int64)),
        "start_time": pa.array(times, pa.timestamp("s")),
        "end_time": pa.array(times, pa.timestamp("s")),
        "items": pa.array([np.asarray(s, np.int32) for s in sessions], pa.list_(pa.int32())),
        "actions": pa.array([np.zeros(len(s), np.int8) for s in sessions], pa.list_(pa.int8())),
    })


def _pairs_as_sessions(prefixes: Sequence[np.ndarray], targets: np.ndarray) -> list[np.ndarray]:
    return [np.append(p, t) for p, t in zip(prefixes, targets)]


def _items_table(n_items: int, train: Sequence[np.ndarray]) -> pa.Table:
    """Every id of the id space with its training count; no attributes (the files have none)."""
    ids = np.arange(1, n_items, dtype=np.int64)
    counts = np.bincount(np.concatenate(train), minlength=n_items)[1:] if len(train) else np.zeros(len(ids))
    none = pa.nulls(len(ids))
    return pa.table({
        "item_idx": pa.array(ids.astype(np.int32)), "product_id": pa.array(ids),
        "train_count": pa.array(counts.astype(np.int64)), "category_id": none.cast(pa.int64()),
        "category_code": none.cast(pa.string()), "brand": none.cast(pa.string()),
        "price": none.cast(pa.float64()),
    })


def prepare_srgnn(folder: str | Path, out_dir: str | Path, valid_frac: float = 0.1) -> dict:
    """Write ``{train,valid,test}.parquet``, ``items.parquet`` and ``stats.json`` for a split."""
    folder, out_dir = Path(folder), Path(out_dir)
    split = load_split(folder)
    val = validation_split(split.train, valid_frac)
    tables = {
        "train": _sessions_table("train", val.train),
        "valid": _sessions_table("valid", _pairs_as_sessions(val.prefixes, val.targets)),
        "test": _sessions_table("test", _pairs_as_sessions(split.test_prefixes, split.test_targets)),
    }
    tables[REFIT_SPLIT] = _sessions_table("train", split.train)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (*SPLITS, REFIT_SPLIT):
        write_parquet(tables[name], out_dir / f"{name}.parquet")
    write_parquet(_items_table(split.n_items, val.train), out_dir / "items.parquet")
    counts = split.counts
    n_clicks = counts.train_clicks
    stats = {
        "protocol": "srgnn",
        "source": str(folder),
        "config": {"valid_frac": valid_frac, "split": "srgnn"},
        "read": {"rows_read": n_clicks, "rows_kept": n_clicks, "dropped": {},
                 "event_types": {"view": n_clicks}},
        "time_cuts": {"valid": f"most recent {valid_frac:.0%} of the training sessions (file order)",
                      "test": "the published SR-GNN test pairs"},
        "collapsed": {"steps": n_clicks, "sessions": counts.train_sessions, "items": counts.train_items,
                      "users": 0},
        "items": split.n_items - 1,
        "splits": {name: length_summary(table) for name, table in tables.items()},
        "published_counts": {"train_sessions": counts.train_sessions, "train_clicks": n_clicks,
                             "test_pairs": counts.test_pairs, "items_in_training": counts.train_items,
                             "test_targets_never_in_training": counts.unseen_test_targets},
        "cold_targets": {"valid": 0, "test": 0,
                         "scored_as": "none are cold: every item of the id space is ranked; "
                                      f"{counts.unseen_test_targets} test targets never occur in training"},
    }
    write_json(stats, out_dir / "stats.json")
    return stats
