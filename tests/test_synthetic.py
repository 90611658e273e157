"""The synthetic REES46-schema generator: formats, determinism and the structure it promises."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recpress_utils.data.rees46 import read_events
from recpress_utils.data.synthetic import SyntheticConfig, main, month_files, write_events_csv, write_monthly_csvs
from tests.conftest import HEADER

SMALL = {"n_items": 400, "n_sessions": 3000, "n_users": 1200, "n_categories": 12, "n_brands": 50}


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("synthetic") / "events.csv"
    started = time.perf_counter()
    summary = write_events_csv(SyntheticConfig.from_dict(SMALL), path)
    print(f"generated {summary['events']} events in {time.perf_counter() - started:.2f} s: {summary}")
    return path, summary


@pytest.fixture(scope="module")
def events(small_csv) -> pd.DataFrame:
    return pd.read_csv(small_csv[0], dtype=str, keep_default_na=False)


def test_header_and_formats(small_csv, events):
    path, summary = small_csv
    assert path.read_text().split("\n", 1)[0] == HEADER
    assert events["event_time"].str.fullmatch(r"2019-10-\d\d \d\d:\d\d:\d\d UTC").all()
    assert events["event_time"].is_monotonic_increasing  # fixed-width text sorts like time
    assert set(events["event_type"]) <= {"view", "cart", "remove_from_cart", "purchase"}
    for col in ("product_id", "category_id", "user_id"):
        assert events[col].str.fullmatch(r"[1-9]\d*").all(), col
    assert events["category_id"].str.len().eq(19).all()
    assert events["price"].str.fullmatch(r"\d+\.\d\d").all()
    assert events["category_code"].str.fullmatch(r"([a-z_]+(\.[a-z_0-9]+)+)?").all()
    assert (events["category_code"] == "").any() and (events["category_code"] != "").any()
    assert events["brand"].str.fullmatch(r"[a-z]*").all() and (events["brand"] == "").any()
    uuid = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    assert events["user_session"].str.fullmatch(uuid).all()
    # one category per item, brands nested in categories, one user per session
    assert events.groupby("product_id")["category_id"].nunique().eq(1).all()
    branded = events[events["brand"] != ""]
    assert branded.groupby("brand")["category_id"].nunique().eq(1).all()
    assert events.groupby("user_session")["user_id"].nunique().eq(1).all()
    assert summary["sessions"] == SMALL["n_sessions"] and summary["users"] == SMALL["n_users"]
    # the project's own REES46 reader takes every row
    report = read_events(path, path.with_suffix(".parquet"))
    assert report.rows_kept == summary["events"] and report.dropped == {}


def test_same_seed_same_bytes_other_seed_differs(tmp_path, small_csv):
    again = tmp_path / "again.csv"
    write_events_csv(SyntheticConfig.from_dict(SMALL), again)
    assert again.read_bytes() == small_csv[0].read_bytes()
    other = tmp_path / "other.csv"
    write_events_csv(SyntheticConfig.from_dict({**SMALL, "seed": 7}), other)
    assert other.read_bytes() != again.read_bytes()


def test_funnel_order(events):
    ev = events.assign(row=np.arange(len(events)))
    assert ev.groupby("user_session")["event_time"].is_monotonic_increasing.all()
    key = ["user_session", "product_id"]
    for kind, needs in (("cart", "view"), ("purchase", "cart"), ("remove_from_cart", "cart")):
        before = ev["event_type"].eq(needs).astype(int).groupby([ev[k] for k in key]).cumsum()
        rows = ev["event_type"].eq(kind)
        assert rows.any(), kind
        assert (before[rows] >= 1).all(), f"a {kind} without an earlier {needs} of the item"


def test_event_mix(small_csv):
    counts = small_csv[1]["event_types"]
    share = counts["view"] / sum(counts.values())
    print(f"event mix {counts}, view share {share:.3f}")
    assert 0.90 <= share <= 0.99
    assert counts["cart"] > 0 and counts["purchase"] > 0
    assert counts["remove_from_cart"] < counts["purchase"]


def test_long_tail_popularity(events):
    counts = np.sort(events["product_id"].value_counts().to_numpy())[::-1]
    n = len(counts)
    top = counts[: n // 10].sum() / counts.sum()
    bottom = counts[n - n // 2:].sum() / counts.sum()
    print(f"top 10% of {n} items: {top:.1%} of events; bottom 50%: {bottom:.1%}")
    # seen: ~50% vs ~12% (seed 42)
    assert top > 3 * bottom and top > 0.4


def test_heavy_tailed_sessions_and_returning_users(small_csv, events):
    lengths = events.groupby("user_session").size()
    median, longest = lengths.median(), lengths.max()
    per_user = events.groupby("user_id")["user_session"].nunique()
    print(f"session length median {median}, mean {lengths.mean():.2f}, max {longest}; "
          f"sessions per user max {per_user.max()}, share with >= 3: {(per_user >= 3).mean():.1%}")
    assert median <= 4 and longest >= 5 * median
    assert (lengths <= 3).mean() > 0.5
    assert (per_user >= 3).sum() > 50 and per_user.max() >= 10
    # immediate repeats of the same item (refreshes) exist, as in the real data
    views = events[events["event_type"] == "view"]
    same = views["product_id"].eq(views.groupby("user_session")["product_id"].shift())
    assert 0.02 < same.mean() < 0.3


def _next_distinct(events: pd.DataFrame) -> pd.DataFrame:
    """(session start rank, item, next different item) pairs, refreshes collapsed."""
    ev = events[["user_session", "product_id"]].assign(row=np.arange(len(events)))
    ev = ev[ev["product_id"].ne(ev.groupby("user_session")["product_id"].shift())]
    nxt = ev.groupby("user_session")["product_id"].shift(-1)
    start = ev.groupby("user_session")["row"].transform("min")  # rows are in time order
    return pd.DataFrame({"start": start, "item": ev["product_id"], "next": nxt}).dropna()


def test_learnable_sequences(events):
    pairs = _next_distinct(events)
    cut = pairs["start"].quantile(0.5)
    train, test = pairs[pairs["start"] <= cut], pairs[pairs["start"] > cut]
    best_next = train.groupby("item")["next"].agg(lambda s: Counter(s).most_common(1)[0][0])
    popular = train["next"].value_counts().index[0]
    succ_acc = (test["item"].map(best_next) == test["next"]).mean()
    pop_acc = (test["next"] == popular).mean()
    print(f"next distinct item on {len(test)} held-out transitions: most frequent successor "
          f"{succ_acc:.3f}, most popular item {pop_acc:.3f}")
    # seen: ~0.25 vs ~0.04 (seed 42)
    assert succ_acc > 0.15 and succ_acc > 4 * pop_acc


def test_from_dict_rejects_unknown_key():
    with pytest.raises(ValueError, match="n_itemz"):
        SyntheticConfig.from_dict({"n_itemz": 10})
    with pytest.raises(ValueError, match="p_cart"):
        SyntheticConfig(p_cart=1.5)
    assert SyntheticConfig.from_dict({"n_items": 10, "n_categories": 3, "n_brands": 3}).n_items == 10


def test_cli_writes_file(tmp_path, capsys):
    out = tmp_path / "sub" / "cli.csv"
    params = {"n_items": 100, "n_sessions": 300, "n_users": 100, "n_categories": 5, "n_brands": 10}
    main(["--out", str(out), "--params", json.dumps(params)])
    summary = json.loads(capsys.readouterr().out)
    lines = out.read_text().splitlines()
    assert lines[0] == HEADER and len(lines) == summary["events"] + 1
    assert summary["sessions"] == 300 and not list(out.parent.glob(".*.tmp"))


MONTHLY = {**SMALL, "days": 10, "start": "2019-10-27", "monthly": True}


def test_monthly_files_stream_in_time_order_and_match_their_summary(tmp_path):
    cfg = SyntheticConfig.from_dict(MONTHLY)
    assert month_files(cfg) == ["2019-Oct.csv", "2019-Nov.csv"]
    summary = write_monthly_csvs(cfg, tmp_path / "a")
    frames = [pd.read_csv(tmp_path / "a" / name, dtype=str, keep_default_na=False) for name in month_files(cfg)]
    assert frames[0]["event_time"].str.startswith("2019-10-").all()
    assert frames[1]["event_time"].str.startswith("2019-11-").all()
    events = pd.concat(frames, ignore_index=True)
    assert events["event_time"].is_monotonic_increasing  # across the two files too
    assert list(events.columns) == HEADER.split(",")
    assert summary["events"] == len(events) and summary["sessions"] == events["user_session"].nunique()
    assert summary["users"] == events["user_id"].nunique() == SMALL["n_users"]
    assert summary["items"] == events["product_id"].nunique()
    lengths = events.groupby("user_session").size()
    assert summary["session_length"]["max"] == lengths.max()
    assert events.groupby("user_session")["user_id"].nunique().eq(1).all()
    # the same config gives the same bytes; the reader takes every row of both files
    write_monthly_csvs(cfg, tmp_path / "b")
    for name in month_files(cfg):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    report = read_events(sorted((tmp_path / "a").glob("*.csv")), tmp_path / "events.parquet")
    assert report.rows_kept == summary["events"] and report.dropped == {}


def test_monthly_generation_holds_one_day_at_a_time(tmp_path, monkeypatch):
    """Memory is bounded by a day: no call draws more sessions than one day has."""
    from recpress_utils.data import synthetic

    drawn = []
    walk = synthetic._walk_sessions
    monkeypatch.setattr(synthetic, "_walk_sessions", lambda cfg, cat, rng, user, pref: (
        drawn.append(len(user)), walk(cfg, cat, rng, user, pref))[1])
    synthetic.write_monthly_csvs(SyntheticConfig.from_dict(MONTHLY), tmp_path)
    assert len(drawn) == MONTHLY["days"] and sum(drawn) == SMALL["n_sessions"]
    assert max(drawn) <= -(-SMALL["n_sessions"] // MONTHLY["days"])


def test_the_cli_writes_monthly_files_into_a_folder(tmp_path, capsys):
    main(["--out", str(tmp_path), "--params", json.dumps(MONTHLY)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2019-Nov.csv", "2019-Oct.csv"]
    assert json.loads(capsys.readouterr().out)["sessions"] == SMALL["n_sessions"]
