"""Sessionise normalised events, filter, and split by time (SPEC section 2).

DuckDB does the heavy lifting out of core, so a full REES46 month (tens of millions of
events) is processed without loading it into pandas. Steps, in order:

1. order the events of each session by time (input position breaks ties);
2. collapse immediate repeats of the same item into one step, keeping the strongest action;
3. split sessions **by time** on their end: the cut points are the end times at the
   ``1 - valid_frac - test_frac`` and ``1 - test_frac`` quantiles of the sessions that have
   at least ``min_session_length`` steps; ties at a cut go to the later split;
4. count item support on *training* sessions only and keep items with at least
   ``min_item_support`` occurrences (validation and test never shape the vocabulary);
   with ``split="leave_one_out"`` a user's whole history is one sequence: the last step is
   the test target, the second-last the validation target, training uses the rest;
5. drop unknown items, drop sessions left with fewer than ``min_session_length`` steps,
   keep the last ``max_len`` steps of longer ones.

Items are re-indexed 1..N (0 is padding) by descending training support, then product id.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import duckdb
import numpy as np
import pyarrow as pa

from recpress_utils.data.rees46 import read_events
from recpress_utils.io import write_json, write_parquet
from recpress_utils.settings import Settings

SPLITS: tuple[str, ...] = ("train", "valid", "test")
SPLIT_MODES: tuple[str, ...] = ("time", "leave_one_out")
#: leave-one-out: how many final steps of a user's sequence each split leaves out
_LOO_DROP = {"train": 2, "valid": 1, "test": 0}


@dataclass(frozen=True)
class PrepareConfig(Settings):
    """Preprocessing settings; see the module docstring for what each does."""

    KIND = "preprocessing"

    min_item_support: int = 5
    min_session_length: int = 2
    max_len: int = 50
    valid_frac: float = 0.1
    test_frac: float = 0.1
    split: str = "time"  # "time" (default) or "leave_one_out" per user
    threads: int = 2
    memory_limit: str = "4GB"

    def __post_init__(self) -> None:
        if self.min_session_length < 2:
            raise ValueError("min_session_length must be >= 2: a session needs an input and a target")
        if self.max_len < self.min_session_length:
            raise ValueError("max_len must be >= min_session_length")
        if self.split not in SPLIT_MODES:
            raise ValueError(f"split must be one of {', '.join(SPLIT_MODES)}, not {self.split!r}")
        if not (0 < self.valid_frac < 1 and 0 < self.test_frac < 1 and self.valid_frac + self.test_frac < 1):
            raise ValueError("valid_frac and test_frac must be in (0, 1) and sum to less than 1")



def _connect(cfg: PrepareConfig, tmp_dir: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"SET threads = {int(cfg.threads)}")
    con.execute(f"SET memory_limit = '{cfg.memory_limit}'")
    con.execute(f"SET temp_directory = '{tmp_dir}'")
    con.execute("SET preserve_insertion_order = true")
    return con


def _steps_sql(events_parquet: Path, sequence_key: str = "user_session") -> str:
    """One row per collapsed step: sequence (session, or user), user, time, item, strongest action."""
    source = (f"read_parquet('{events_parquet}')" if sequence_key == "user_session" else
              f"(SELECT * REPLACE ({sequence_key} AS user_session) FROM read_parquet('{events_parquet}'))")
    return f"""
    WITH ev AS (
        SELECT *, CASE WHEN product_id = LAG(product_id) OVER w THEN 0 ELSE 1 END AS new_run
        FROM {source}
        WINDOW w AS (PARTITION BY user_session ORDER BY event_time, row)
    ), runs AS (
        SELECT *, SUM(new_run) OVER (PARTITION BY user_session ORDER BY event_time, row
                                     ROWS UNBOUNDED PRECEDING) AS run_id
        FROM ev
    )
    SELECT user_session, run_id, MIN(user_id) AS user_id, MIN(event_time) AS t,
           MIN(row) AS row, MIN(product_id) AS product_id, MAX(action) AS action
    FROM runs GROUP BY user_session, run_id
    """


def prepare_dataset(events_parquet: str | Path, out_dir: str | Path, cfg: PrepareConfig) -> dict:
    """Write ``{train,valid,test}.parquet``, ``items.parquet`` and ``stats.json`` to ``out_dir``.

    Each split has one row per session: ``session_id``, ``user_id``, ``start_time``,
    ``end_time``, ``items`` (list of item indices, oldest first) and ``actions`` (list of
    action strengths, see :data:`recpress_utils.data.rees46.EVENT_STRENGTH`). Returns the
    statistics also written to ``stats.json``.
    """
    events_parquet, out_dir = Path(events_parquet), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir = out_dir / ".duckdb_tmp"
    con = _connect(cfg, tmp_dir)
    try:
        loo = cfg.split == "leave_one_out"
        key = "CAST(user_id AS VARCHAR)" if loo else "user_session"
        con.execute(f"CREATE TEMP TABLE steps AS {_steps_sql(events_parquet, key)}")
        con.execute(
            """CREATE TEMP TABLE sessions AS
               SELECT user_session, MIN(user_id) AS user_id, MIN(t) AS start_time, MAX(t) AS end_time,
                      COUNT(*) AS n_steps
               FROM steps GROUP BY user_session"""
        )
        if loo:
            cuts = {"valid": "leave-one-out: second-last step", "test": "leave-one-out: last step"}
            _loo_assignments(con)
        else:
            cuts = _time_cuts(con, cfg)
            con.execute(
                f"""CREATE TEMP TABLE session_split AS
                    SELECT user_session, CASE WHEN end_time >= TIMESTAMP '{cuts['test']}' THEN 'test'
                                              WHEN end_time >= TIMESTAMP '{cuts['valid']}' THEN 'valid'
                                              ELSE 'train' END AS split
                    FROM sessions"""
            )
            con.execute("CREATE TEMP VIEW train_steps AS SELECT s.* FROM steps s JOIN session_split USING "
                        "(user_session) WHERE split = 'train'")
        con.execute(
            f"""CREATE TEMP TABLE vocab AS
                SELECT product_id, COUNT(*) AS train_count FROM train_steps GROUP BY product_id
                HAVING COUNT(*) >= {int(cfg.min_item_support)}"""
        )
        con.execute(
            """CREATE TEMP TABLE vocab_idx AS
               SELECT product_id, train_count,
                      CAST(ROW_NUMBER() OVER (ORDER BY train_count DESC, product_id) AS INTEGER) AS item_idx
               FROM vocab"""
        )
        if con.sql("SELECT COUNT(*) FROM vocab_idx").fetchone()[0] == 0:
            raise ValueError(
                f"no item has min_item_support={cfg.min_item_support} training occurrences; "
                "lower it or use more data"
            )
        drop = {s: _LOO_DROP[s] if loo else 0 for s in SPLITS}
        cold = {s: _cold_targets(con, s, cfg, drop[s]) for s in ("valid", "test")}
        split_tables = {s: _split_table(con, s, cfg, drop[s]) for s in SPLITS}
        items = _items_table(con, events_parquet, loo)

        for split, table in split_tables.items():
            write_parquet(table, out_dir / f"{split}.parquet")
        write_parquet(items, out_dir / "items.parquet")
        stats = _stats(con, cfg, cuts, split_tables, items)
        stats["cold_targets"] = {
            **cold,
            "scored_as": "miss: every metric 0 for that session (never skipped); the session is not "
                         "evaluated with an earlier item as its target",
        }
    finally:  # DuckDB's spill files go, whether the preparation worked or not
        con.close()
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return stats


def _time_cuts(con: duckdb.DuckDBPyConnection, cfg: PrepareConfig) -> dict[str, str]:
    """End-time cut points at the configured quantiles of the usable sessions."""
    ends = con.sql(
        f"""SELECT end_time FROM sessions WHERE n_steps >= {int(cfg.min_session_length)}
            ORDER BY end_time, user_session"""
    ).fetchnumpy()["end_time"]
    if len(ends) < 3:
        raise ValueError(
            f"only {len(ends)} session(s) with >= {cfg.min_session_length} distinct steps: "
            "too few to split into train / valid / test"
        )
    n = len(ends)
    i_valid = int(np.floor(n * (1 - cfg.valid_frac - cfg.test_frac)))
    i_test = int(np.floor(n * (1 - cfg.test_frac)))
    fmt = lambda t: str(np.datetime64(t, "s")).replace("T", " ")  # noqa: E731
    return {"valid": fmt(ends[i_valid]), "test": fmt(ends[i_test])}


def _loo_assignments(con: duckdb.DuckDBPyConnection) -> None:
    """Leave-one-out: every user sequence is in every split, cut differently (see ``_LOO_DROP``).

    Item support is counted over whole sequences here, as the public leave-one-out protocols
    (RecBole's SASRec / GRU4Rec / BERT4Rec results) do, so held-out items are not cold by design.
    """
    con.execute(
        """CREATE TEMP TABLE session_split AS
           SELECT user_session, split FROM sessions, (VALUES ('train'), ('valid'), ('test')) v(split)"""
    )
    con.execute("CREATE TEMP VIEW train_steps AS SELECT * FROM steps")


def _cold_target_sessions_sql(split: str, drop_last: int) -> str:
    """Sequences of ``split`` whose target step (the last one after ``drop_last`` are cut) holds
    an item outside the vocabulary: nothing can rank it, so it is a miss, not a shorter session."""
    return f"""
        SELECT user_session FROM (
            SELECT user_session, product_id,
                   ROW_NUMBER() OVER (PARTITION BY user_session ORDER BY t DESC, row DESC) AS from_end
            FROM steps JOIN session_split USING (user_session) WHERE split = '{split}'
        ) WHERE from_end = {drop_last + 1}
          AND product_id NOT IN (SELECT product_id FROM vocab_idx)"""


def _cold_targets(con: duckdb.DuckDBPyConnection, split: str, cfg: PrepareConfig, drop_last: int) -> int:
    """How many usable sequences of ``split`` (long enough before vocabulary filtering) end in a
    cold target; they are left out of the split and scored as misses by the evaluation."""
    return int(con.sql(
        f"""SELECT COUNT(*) FROM sessions
            WHERE n_steps >= {int(cfg.min_session_length) + drop_last}
              AND user_session IN ({_cold_target_sessions_sql(split, drop_last)})"""
    ).fetchone()[0])


def _split_table(con: duckdb.DuckDBPyConnection, split: str, cfg: PrepareConfig, drop_last: int = 0
                 ) -> pa.Table:
    """One split's sequences; ``drop_last`` final steps are left out (leave-one-out's train/valid).

    In the evaluated splits (valid, test) a sequence whose target is cold is left out whole
    (counted by :func:`_cold_targets`): dropping only its unknown target would quietly evaluate
    an earlier item instead.

    The sequences are not built by DuckDB's ``LIST(... ORDER BY ...)``: that aggregate keeps every
    group in memory and ran out of 11 GB at a quarter of the paper's data. DuckDB writes the
    collapsed steps and one row per session (both spill to disk), then streams the steps' two
    numeric columns in session order, and the lists are cut here from the session lengths.
    """
    max_len, min_len = int(cfg.max_len), int(cfg.min_session_length) + drop_last
    no_cold = (f"AND s.user_session NOT IN ({_cold_target_sessions_sql(split, drop_last)})"
               if split != "train" else "")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE split_steps AS
            WITH kept AS (
                SELECT s.user_session, s.user_id, s.t, s.row, v.item_idx, s.action
                FROM steps s JOIN session_split USING (user_session)
                JOIN vocab_idx v USING (product_id)
                WHERE split = '{split}' {no_cold}
            ), merged AS (  -- dropping an unknown item can make two equal items adjacent again
                SELECT *, CASE WHEN item_idx = LAG(item_idx) OVER w THEN 0 ELSE 1 END AS new_run
                FROM kept WINDOW w AS (PARTITION BY user_session ORDER BY t, row)
            ), runs AS (
                SELECT *, SUM(new_run) OVER (PARTITION BY user_session ORDER BY t, row
                                             ROWS UNBOUNDED PRECEDING) AS run_id
                FROM merged
            )
            SELECT user_session, MIN(user_id) AS user_id, MIN(t) AS t, MAX(t) AS t_end,
                   MIN(row) AS row, MIN(item_idx) AS item_idx, MAX(action) AS action
            FROM runs GROUP BY user_session, run_id"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE split_sessions AS
            SELECT user_session, MIN(user_id) AS user_id, MIN(t) AS start_time, MAX(t_end) AS end_time,
                   COUNT(*) AS n_steps
            FROM split_steps GROUP BY user_session HAVING COUNT(*) >= {min_len}"""
    )
    sessions = con.sql("SELECT * FROM split_sessions ORDER BY end_time, user_session").to_arrow_table()
    steps = con.sql(
        """SELECT s.item_idx, s.action FROM split_steps s JOIN split_sessions q USING (user_session)
           ORDER BY q.end_time, q.user_session, s.t, s.row"""
    ).fetch_record_batch(1 << 20)
    columns = {"item_idx": [], "action": []}
    for batch in steps:
        for name in columns:
            columns[name].append(batch.column(name).to_numpy(zero_copy_only=False))
    con.execute("DROP TABLE split_steps; DROP TABLE split_sessions")
    n = sessions.column("n_steps").to_numpy().astype(np.int64)
    first = np.cumsum(n) - n
    keep = np.minimum(n - drop_last, max_len)  # the latest max_len steps before the dropped ones
    start = first + (n - drop_last) - keep
    offsets = np.r_[0, np.cumsum(keep)]
    take = np.repeat(start - offsets[:-1], keep) + np.arange(offsets[-1])

    def lists(name: str, dtype: pa.DataType) -> pa.ListArray:
        values = np.concatenate(columns[name]) if columns[name] else np.zeros(0)
        return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values[take]).cast(dtype))

    return pa.table({
        "session_id": sessions.column("user_session").cast(pa.string()),
        "user_id": sessions.column("user_id").cast(pa.int64()),
        "start_time": sessions.column("start_time").cast(pa.timestamp("s")),
        "end_time": sessions.column("end_time").cast(pa.timestamp("s")),
        "items": lists("item_idx", pa.int32()),
        "actions": lists("action", pa.int8()),
    })


def _items_table(con: duckdb.DuckDBPyConnection, events_parquet: Path, loo: bool = False) -> pa.Table:
    """Vocabulary with attributes, each item's from its latest *training* event.

    Attributes feed the same-category and same-brand edges of the knowledge graph, so an
    attribute first seen in the validation or test period must not reach them. With the time
    split only events of training sessions count; leave-one-out sequences have no training
    period of their own (their vocabulary counts whole sequences, as the public protocols do),
    so every event counts there.
    """
    train_only = ("" if loo else
                  "WHERE e.user_session IN (SELECT user_session FROM session_split WHERE split = 'train')")
    return con.sql(
        f"""SELECT v.item_idx, v.product_id, v.train_count,
                   arg_max(e.category_id, (e.event_time, e.row)) AS category_id,
                   arg_max(e.category_code, (e.event_time, e.row)) AS category_code,
                   arg_max(e.brand, (e.event_time, e.row)) AS brand,
                   arg_max(e.price, (e.event_time, e.row)) AS price
            FROM vocab_idx v JOIN read_parquet('{events_parquet}') e USING (product_id)
            {train_only}
            GROUP BY v.item_idx, v.product_id, v.train_count
            ORDER BY v.item_idx"""
    ).to_arrow_table().cast(
        pa.schema(
            [
                ("item_idx", pa.int32()),
                ("product_id", pa.int64()),
                ("train_count", pa.int64()),
                ("category_id", pa.int64()),
                ("category_code", pa.string()),
                ("brand", pa.string()),
                ("price", pa.float64()),
            ]
        )
    )


def length_summary(table: pa.Table) -> dict[str, float]:
    lengths = np.asarray(pa.compute.list_value_length(table["items"]).to_numpy(zero_copy_only=False))
    if len(lengths) == 0:
        return {"sessions": 0}
    return {
        "sessions": int(len(lengths)),
        "steps": int(lengths.sum()),
        "mean_length": round(float(lengths.mean()), 4),
        "median_length": float(np.median(lengths)),
        "p90_length": round(float(np.percentile(lengths, 90)), 4),
        "max_length": int(lengths.max()),
    }


def _stats(con, cfg, cuts, split_tables, items) -> dict:
    raw = con.sql(
        """SELECT COUNT(*) AS steps, COUNT(DISTINCT user_session) AS sessions,
                  COUNT(DISTINCT product_id) AS items, COUNT(DISTINCT user_id) AS users
           FROM steps"""
    ).fetchone()
    dropped_short = con.sql(
        f"SELECT COUNT(*) FROM sessions WHERE n_steps < {int(cfg.min_session_length)}"
    ).fetchone()[0]
    actions: dict[str, int] = {}
    for table in split_tables.values():
        flat = pa.compute.list_flatten(table["actions"]).to_numpy(zero_copy_only=False)
        for value, count in zip(*np.unique(flat, return_counts=True)):
            actions[str(int(value))] = actions.get(str(int(value)), 0) + int(count)
    return {
        "config": asdict(cfg),
        "time_cuts": cuts,
        "collapsed": {"steps": raw[0], "sessions": raw[1], "items": raw[2], "users": raw[3]},
        "sessions_too_short_before_filter": int(dropped_short),
        "items": int(items.num_rows),
        "splits": {s: length_summary(t) for s, t in split_tables.items()},
        "action_counts": actions,
    }


def prepare_from_raw(
    raw_paths: str | Path | Sequence[str | Path], out_dir: str | Path, cfg: PrepareConfig
) -> dict:
    """Read raw REES46-schema CSV(s), prepare the splits, and write ``stats.json``.

    The normalised events are kept as ``events.parquet`` in ``out_dir`` (later stages read
    item attributes from ``items.parquet`` and actions from the splits, not from it).
    """
    out_dir = Path(out_dir)
    report = read_events(raw_paths, out_dir / "events.parquet")
    stats = prepare_dataset(out_dir / "events.parquet", out_dir, cfg)
    stats["read"] = report.to_dict()
    write_json(stats, out_dir / "stats.json")
    return stats


def prepare_for(dataset: str, raw_paths: Sequence[str | Path], out_dir: str | Path, cfg: PrepareConfig) -> dict:
    """The prepare stage of any dataset: an SR-GNN split (``raw_paths`` = its two files) is
    written as published (:mod:`recpress_utils.data.presplit`); raw events are prepared here."""
    from recpress_utils.data.presplit import SRGNN_DATASETS, prepare_srgnn  # it imports this module

    if dataset in SRGNN_DATASETS:
        folders = {Path(p).parent for p in raw_paths}
        if len(folders) != 1:
            raise ValueError(f"{dataset}: expected the two files of one SR-GNN folder, got {list(raw_paths)}")
        return prepare_srgnn(folders.pop(), out_dir, cfg.valid_frac)
    return prepare_from_raw(raw_paths, out_dir, cfg)
