"""The REES46 reader: the real fixture, and every kind of bad input it must name or count."""

from __future__ import annotations

import gzip
import time

import pyarrow.parquet as pq
import pytest

from recpress_utils.data.rees46 import EVENTS_SCHEMA, DataFormatError, read_events
from tests.conftest import HEADER, event, write_events


def test_reads_real_slice(rees46_slice, tmp_path):
    started = time.perf_counter()
    report = read_events(rees46_slice, tmp_path / "ev.parquet")
    print(f"read the 1,000-row REES46 fixture in {time.perf_counter() - started:.3f} s")
    assert report.rows_read == 1000 and report.rows_kept == 1000
    assert report.dropped == {}
    assert report.event_types == {"view": 987, "cart": 3, "purchase": 10}
    table = pq.read_table(tmp_path / "ev.parquet")
    assert table.num_rows == 1000
    assert table.schema.names == EVENTS_SCHEMA.names
    assert len(table.column("user_session").unique()) == 372
    # empty brand / category_code stay null, 19-digit category ids survive as int64
    df = table.to_pandas()
    assert df["category_code"].isna().any() and df["brand"].isna().any()
    assert df["category_id"].max() > 2 * 10**18


def test_missing_column_is_named(tmp_path):
    path = write_events(tmp_path / "e.csv", ["2019-10-01 00:00:00 UTC,view,1,2,a,b,1.0,3"],
                        header=HEADER.replace(",user_session", ""))
    with pytest.raises(DataFormatError, match="missing column.*user_session"):
        read_events(path, tmp_path / "ev.parquet")


def test_empty_file(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("")
    with pytest.raises(DataFormatError, match="empty"):
        read_events(path, tmp_path / "ev.parquet")
    assert not (tmp_path / "ev.parquet").exists()


def test_header_only_has_no_usable_event(tmp_path):
    path = write_events(tmp_path / "e.csv", [])
    with pytest.raises(DataFormatError, match="no usable event"):
        read_events(path, tmp_path / "ev.parquet")
    assert not (tmp_path / "ev.parquet").exists(), "a failed read must not leave a file behind"


def test_truncated_last_line_is_counted(tmp_path):
    rows = [event("00:00:0%d" % i, 10 + i, "s1") for i in range(5)]
    path = tmp_path / "e.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n2019-10-01 00:00:09 UTC,view,44")  # cut mid-row
    report = read_events(path, tmp_path / "ev.parquet")
    assert report.rows_kept == 5
    assert report.dropped == {"malformed_row": 1}
    assert report.rows_read == 6


def test_unknown_event_type_is_counted(tmp_path):
    rows = [event("00:00:01", 1, "s"), event("00:00:02", 2, "s", kind="wishlist"),
            event("00:00:03", 3, "s", kind="purchase")]
    report = read_events(write_events(tmp_path / "e.csv", rows), tmp_path / "ev.parquet")
    assert report.dropped == {"unknown_event_type": 1}
    assert report.unknown_event_types == {"wishlist": 1}
    assert report.event_types == {"view": 1, "purchase": 1}


def test_non_numeric_ids_are_counted(tmp_path):
    rows = [event("00:00:01", 1, "s"), event("00:00:02", 2, "s"),
            "2019-10-01 00:00:03 UTC,view,abc,7,c,b,1.0,1,s",
            "2019-10-01 00:00:04 UTC,view,5,7,c,b,1.0,u42,s"]
    report = read_events(write_events(tmp_path / "e.csv", rows), tmp_path / "ev.parquet")
    assert report.dropped == {"non_numeric_product_id": 1, "non_numeric_user_id": 1}
    assert report.rows_kept == 2


def test_missing_item_or_session_and_bad_time_are_counted(tmp_path):
    rows = [event(f"00:00:0{i}", i, "s") for i in range(5)] + [
            "2019-10-01 00:00:03 UTC,view,,7,c,b,1.0,1,s",
            "2019-10-01 00:00:04 UTC,view,5,7,c,b,1.0,1,",
            "yesterday,view,5,7,c,b,1.0,1,s"]
    report = read_events(write_events(tmp_path / "e.csv", rows), tmp_path / "ev.parquet")
    assert report.dropped == {"missing_product_id": 1, "missing_user_session": 1, "bad_event_time": 1}


def test_mostly_garbage_is_an_error(tmp_path):
    rows = [event("00:00:01", 1, "s")] + ["2019-10-01 00:00:03 UTC,view,x,7,c,b,1.0,1,s"] * 5
    with pytest.raises(DataFormatError, match="unusable"):
        read_events(write_events(tmp_path / "e.csv", rows), tmp_path / "ev.parquet")


def test_gzip_and_glob_of_several_files(rees46_slice, tmp_path):
    data = rees46_slice.read_bytes()
    (tmp_path / "2019-Oct.csv.gz").write_bytes(gzip.compress(data))
    lines = data.decode().splitlines()
    (tmp_path / "2019-Nov.csv").write_text("\n".join([lines[0], *lines[1:11]]) + "\n")
    report = read_events(str(tmp_path / "2019-*.csv*"), tmp_path / "ev.parquet")
    assert len(report.files) == 2 and report.rows_kept == 1010
    rows = pq.read_table(tmp_path / "ev.parquet").column("row").to_pylist()
    assert rows == sorted(rows) and len(set(rows)) == len(rows)


def test_no_matching_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no event file"):
        read_events(str(tmp_path / "nothing-*.csv"), tmp_path / "ev.parquet")
