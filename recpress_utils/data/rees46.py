"""Streaming reader for event files in the REES46 CSV schema.

The real monthly files are 5-9 GB, so they are never loaded whole: pyarrow's streaming
CSV reader converts them batch by batch into one normalised parquet file. Every row that
cannot be used is dropped *and counted by reason*; nothing is dropped silently.
"""

from __future__ import annotations

import glob
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from tqdm import tqdm

from recpress_utils.io import atomic_path

#: Header of the REES46 events CSV, in order (MovieLens and the synthetic data are written in it too).
REES46_COLUMNS: tuple[str, ...] = (
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
)

#: Action strength, used to keep the strongest action when immediate repeats are collapsed.
EVENT_STRENGTH: dict[str, int] = {"view": 0, "remove_from_cart": 1, "cart": 2, "purchase": 3}

#: Schema of the normalised events parquet written by :func:`read_events`.
EVENTS_SCHEMA = pa.schema(
    [
        ("row", pa.int64()),  # position in the input, the tie-breaker for equal timestamps
        ("event_time", pa.timestamp("s")),
        ("action", pa.int8()),
        ("product_id", pa.int64()),
        ("category_id", pa.int64()),
        ("category_code", pa.string()),
        ("brand", pa.string()),
        ("price", pa.float64()),
        ("user_id", pa.int64()),
        ("user_session", pa.string()),
    ]
)

_DIGITS = r"^\s*\d+\s*$"


class DataFormatError(ValueError):
    """Raised when an input file cannot be read as REES46 events at all."""


@dataclass
class ReadReport:
    """What was read and what was dropped, by reason."""

    files: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    unknown_event_types: dict[str, int] = field(default_factory=dict)
    event_types: dict[str, int] = field(default_factory=dict)  # kept rows by event type

    def to_dict(self) -> dict:
        return asdict(self)


def expand_paths(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """Expand a file, a glob or a list of them into a sorted, de-duplicated list of files."""
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    out: list[Path] = []
    for item in items:
        matches = sorted(glob.glob(str(item)))
        if not matches:
            raise FileNotFoundError(f"no event file matches {item!s}")
        out.extend(Path(m) for m in matches)
    return sorted(set(out))


def _check_header(path: Path) -> None:
    if path.stat().st_size == 0:
        raise DataFormatError(f"{path}: the file is empty")
    with pa.input_stream(str(path), compression="detect") as stream:
        first = stream.read(1 << 16).split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    if not first:
        raise DataFormatError(f"{path}: the file has no header line")
    header = [c.strip().strip('"') for c in first.split(",")]
    missing = [c for c in REES46_COLUMNS if c not in header]
    if missing:
        raise DataFormatError(
            f"{path}: missing column(s) {', '.join(missing)}; expected the REES46 header "
            f"{','.join(REES46_COLUMNS)}"
        )


def _batches(path: Path, block_size: int, bad_rows: Counter) -> Iterable[pa.RecordBatch]:
    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad_rows["malformed_row"] += 1
        return "skip"

    reader = pacsv.open_csv(
        pa.input_stream(str(path), compression="detect"),
        read_options=pacsv.ReadOptions(block_size=block_size),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in REES46_COLUMNS},
            include_columns=list(REES46_COLUMNS),
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )
    yield from reader


def _normalise(batch: pa.RecordBatch, first_row: int, report: ReadReport) -> pa.Table:
    """Type one raw batch, dropping (and counting) rows that cannot be used."""
    col = {name: batch.column(name) for name in REES46_COLUMNS}
    n = batch.num_rows
    keep = pa.array([True] * n)

    def drop(mask: pa.Array, reason: str) -> None:
        nonlocal keep
        mask = pc.fill_null(mask, True)
        hit = pc.and_(keep, mask)
        count = pc.sum(hit).as_py() or 0
        if count:
            report.dropped[reason] = report.dropped.get(reason, 0) + count
        keep = pc.and_(keep, pc.invert(mask))

    drop(pc.is_null(col["product_id"]), "missing_product_id")
    drop(pc.is_null(col["user_session"]), "missing_user_session")
    drop(pc.invert(pc.match_substring_regex(col["product_id"], _DIGITS)), "non_numeric_product_id")
    drop(pc.invert(pc.match_substring_regex(col["user_id"], _DIGITS)), "non_numeric_user_id")

    known = pc.is_in(col["event_type"], value_set=pa.array(list(EVENT_STRENGTH)))
    unknown_vals = pc.filter(col["event_type"], pc.and_(keep, pc.invert(pc.fill_null(known, False))))
    for value, count in Counter(unknown_vals.to_pylist()).items():
        key = "<missing>" if value is None else value
        report.unknown_event_types[key] = report.unknown_event_types.get(key, 0) + count
    drop(pc.invert(known), "unknown_event_type")

    times = pc.strptime(
        pc.utf8_trim_whitespace(pc.replace_substring_regex(col["event_time"], r"\s*UTC$", "")),
        format="%Y-%m-%d %H:%M:%S",
        unit="s",
        error_is_null=True,
    )
    drop(pc.is_null(times), "bad_event_time")

    category_ok = pc.match_substring_regex(col["category_id"], _DIGITS)
    category_id = pc.if_else(category_ok, col["category_id"], pa.scalar(None, pa.string()))
    price_ok = pc.match_substring_regex(col["price"], r"^\s*-?\d+(\.\d*)?\s*$")
    price = pc.if_else(price_ok, col["price"], pa.scalar(None, pa.string()))

    action = pc.fill_null(
        pc.index_in(col["event_type"], value_set=pa.array(list(EVENT_STRENGTH))), 0
    )
    strength = pa.array(list(EVENT_STRENGTH.values()), pa.int8())
    kept_types = pc.value_counts(pc.filter(col["event_type"], keep)).to_pylist()
    for entry in kept_types:
        name = entry["values"]
        report.event_types[name] = report.event_types.get(name, 0) + entry["counts"]
    table = pa.table(
        {
            "row": pa.array(range(first_row, first_row + n), pa.int64()),
            "event_time": times,
            "action": pc.take(strength, action),
            "product_id": col["product_id"],
            "category_id": category_id,
            "category_code": col["category_code"],
            "brand": col["brand"],
            "price": price,
            "user_id": col["user_id"],
            "user_session": col["user_session"],
        }
    ).filter(keep)
    return table.cast(EVENTS_SCHEMA)


def read_events(
    paths: str | Path | Sequence[str | Path],
    out_parquet: str | Path,
    block_size: int = 16 << 20,
    max_drop_fraction: float = 0.5,
) -> ReadReport:
    """Convert REES46-schema CSV file(s) (plain or gzip) into one normalised parquet file.

    Memory stays at a few blocks whatever the file size. Raises :class:`DataFormatError` for
    an empty file, a missing column, no usable row, or more than ``max_drop_fraction`` of the
    rows dropped (a sign the file is not what it claims to be).
    """
    files = expand_paths(paths)
    report = ReadReport(files=[str(f) for f in files])
    for f in files:
        _check_header(f)
    bad_rows: Counter = Counter()
    with atomic_path(out_parquet) as tmp:
        with pq.ParquetWriter(tmp, EVENTS_SCHEMA, compression="zstd") as writer:
            progress = tqdm(desc="reading events", unit=" rows", unit_scale=True, disable=None)
            for f in files:
                for batch in _batches(f, block_size, bad_rows):
                    table = _normalise(batch, report.rows_read, report)
                    report.rows_read += batch.num_rows
                    report.rows_kept += table.num_rows
                    if table.num_rows:
                        writer.write_table(table)
                    progress.update(batch.num_rows)
            progress.close()
        report.rows_read += bad_rows["malformed_row"]
        if bad_rows["malformed_row"]:
            report.dropped["malformed_row"] = bad_rows["malformed_row"]
        if report.rows_kept == 0:
            raise DataFormatError(f"no usable event in {', '.join(report.files)}: {report.dropped}")
        dropped = report.rows_read - report.rows_kept
        if dropped > max_drop_fraction * report.rows_read:
            raise DataFormatError(
                f"{dropped} of {report.rows_read} rows were unusable ({report.dropped}); "
                "is this really a REES46-schema file?"
            )
    return report
