"""Atomic file writes: a failed step never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(obj: Any, path: str | Path) -> None:
    """Write ``obj`` as stable, sorted, indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_parquet(table: pa.Table, path: str | Path) -> None:
    """Write a parquet file atomically with settings that give identical bytes for identical data."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", use_dictionary=True, write_statistics=True)


def replace_rows(path: str | Path, rows: pd.DataFrame, match: list[str], order: list[str]) -> pd.DataFrame:
    """The CSV table at ``path`` with ``rows`` in place of its rows that agree with one of them on
    every column of ``match`` (compared as text), sorted by ``order`` and written atomically: a
    benchmark run again replaces its own rows and keeps everyone else's. The columns come in the
    order of ``rows``, then any that only the old rows have: a rerun that adds a column puts it
    where the code writes it, not at the end. Returns the table written."""
    path = Path(path)
    table = rows
    if path.exists():
        old = pd.read_csv(path)
        new_keys = set(map(tuple, rows[match].astype(str).to_numpy()))
        same = [tuple(key) in new_keys for key in old[match].astype(str).to_numpy()]
        table = pd.concat([old[~pd.Series(same, index=old.index, dtype=bool)], rows], ignore_index=True)
        table = table[list(rows.columns) + [c for c in old.columns if c not in rows.columns]]
    table = table.sort_values(order, kind="stable").reset_index(drop=True)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return table


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
