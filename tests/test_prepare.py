"""Preprocessing: collapse, time split, train-only vocabulary, length filters, determinism."""

from __future__ import annotations

import pandas as pd
import pytest

from recpress_utils.data.prepare import PrepareConfig, prepare_from_raw
from tests.conftest import event, write_events


def _prepare(tmp_path, rows, **cfg):
    raw = write_events(tmp_path / "e.csv", rows)
    out = tmp_path / "prep"
    stats = prepare_from_raw(raw, out, PrepareConfig(**{"min_item_support": 1, **cfg}))
    splits = {s: pd.read_parquet(out / f"{s}.parquet") for s in ("train", "valid", "test")}
    items = pd.read_parquet(out / "items.parquet")
    return stats, splits, items


def _sessions(n: int, start_minute: int = 0, items=(1, 2, 3)) -> list[str]:
    """n sessions, session k ending at minute start_minute + k."""
    rows = []
    for k in range(n):
        m = start_minute + k
        for j, item in enumerate(items):
            rows.append(event(f"00:{m:02d}:{j:02d}", item, f"s{m:02d}"))
    return rows


def test_collapse_keeps_strongest_action_and_order(tmp_path):
    rows = _sessions(8) + [
        event("00:30:00", 1, "x"), event("00:30:01", 2, "x"), event("00:30:02", 2, "x", kind="cart"),
        event("00:30:03", 2, "x"), event("00:30:04", 3, "x"), event("00:30:05", 2, "x"),
    ]
    _, splits, items = _prepare(tmp_path, rows)
    idx = dict(zip(items["product_id"], items["item_idx"]))
    x = splits["test"].set_index("session_id").loc["x"]
    assert list(x["items"]) == [idx[1], idx[2], idx[3], idx[2]]  # a later repeat is kept
    assert list(x["actions"]) == [0, 2, 0, 0]  # view, cart (strongest of the run), view, view


def test_split_is_by_time_and_vocab_from_train_only(tmp_path):
    rows = _sessions(10)  # minutes 0..9 -> 8 train, 1 valid, 1 test
    rows += [event("00:09:30", 1, "late"), event("00:09:31", 99, "late"), event("00:09:32", 2, "late")]
    stats, splits, items = _prepare(tmp_path, rows)
    assert 99 not in set(items["product_id"]), "an item seen only in test must not enter the vocabulary"
    assert splits["train"]["end_time"].max() <= splits["valid"]["end_time"].min()
    assert splits["valid"]["end_time"].max() <= splits["test"]["end_time"].min()
    assert len(splits["train"]) == 8
    late = splits["test"].set_index("session_id").loc["late"]
    assert len(late["items"]) == 2, "unknown items are removed from later sessions"
    assert stats["items"] == 3


def test_item_attributes_come_from_training_events_only(tmp_path):
    """Item 1's category changes in the test period: the KG's same-category edges must not see it."""
    rows = _sessions(10)  # minutes 0..9 -> 8 train, 1 valid, 1 test; category 7 everywhere
    rows += [event("00:09:40", 1, "recat", cat=99), event("00:09:41", 2, "recat", cat=99)]
    _, splits, items = _prepare(tmp_path, rows)
    assert "recat" in set(splits["test"]["session_id"]), "the re-categorised events are test events"
    assert set(items["category_id"]) == {7}


def test_cold_targets_are_counted_and_never_shifted(tmp_path):
    """A test session ending in an item unknown to training is a miss, not a shorter session."""
    rows = _sessions(10)  # minutes 0..9 -> 8 train, 1 valid, 1 test
    rows += [event("00:09:30", 1, "cold"), event("00:09:31", 2, "cold"), event("00:09:32", 99, "cold")]
    stats, splits, _ = _prepare(tmp_path, rows)
    assert "cold" not in set(splits["test"]["session_id"])
    assert stats["cold_targets"]["test"] == 1 and stats["cold_targets"]["valid"] == 0
    assert "miss" in stats["cold_targets"]["scored_as"]


def test_unknown_item_removal_merges_new_repeats(tmp_path):
    rows = _sessions(10) + [event("00:20:00", 1, "z"), event("00:20:01", 77, "z"),
                            event("00:20:02", 1, "z"), event("00:20:03", 2, "z")]
    _, splits, items = _prepare(tmp_path, rows)
    idx = dict(zip(items["product_id"], items["item_idx"]))
    z = splits["test"].set_index("session_id").loc["z"]
    assert list(z["items"]) == [idx[1], idx[2]]


def test_min_support_short_sessions_and_max_len(tmp_path):
    long = [event(f"00:59:{j:02d}", 1 + j % 3, "long") for j in range(9)]  # 9 distinct steps
    rows = _sessions(10) + long + [event("00:00:30", 4, "rare"), event("00:00:31", 1, "rare")]
    stats, splits, items = _prepare(tmp_path, rows, min_item_support=2, max_len=4)
    assert 4 not in set(items["product_id"])
    every = pd.concat(splits.values())
    assert "rare" not in set(every["session_id"]), "a session left with one step is dropped"
    assert every["items"].map(len).max() == 4
    long_items = every.set_index("session_id").loc["long", "items"]
    idx = dict(zip(items["product_id"], items["item_idx"]))
    assert list(long_items) == [idx[p] for p in (3, 1, 2, 3)], "the last max_len steps are kept"


def test_vocab_order_is_popularity_then_product_id(tmp_path):
    rows = _sessions(10, items=(5, 6)) + _sessions(3, start_minute=40, items=(7, 5))
    _, _, items = _prepare(tmp_path, rows)
    assert list(items["item_idx"]) == list(range(1, len(items) + 1))
    assert list(items["product_id"][:2]) == [5, 6]


def test_same_input_gives_identical_bytes(rees46_slice, tmp_path):
    cfg = PrepareConfig(min_item_support=1)
    for run in ("a", "b"):
        prepare_from_raw(rees46_slice, tmp_path / run, cfg)
    for name in ("train.parquet", "valid.parquet", "test.parquet", "items.parquet", "stats.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_real_slice_prepares(rees46_slice, tmp_path):
    stats = prepare_from_raw(rees46_slice, tmp_path / "p", PrepareConfig(min_item_support=1))
    assert stats["collapsed"]["sessions"] == 372
    assert sum(s["sessions"] for s in stats["splits"].values()) > 100


def test_too_few_sessions(tmp_path):
    with pytest.raises(ValueError, match="too few to split"):
        _prepare(tmp_path, [event("00:00:01", 1, "a"), event("00:00:02", 2, "a")])
    assert not (tmp_path / "prep" / ".duckdb_tmp").exists()  # a failed run leaves no spill folder


def test_config_rejects_unknown_key():
    with pytest.raises(ValueError, match="min_support"):
        PrepareConfig.from_dict({"min_support": 3})


def test_leave_one_out_per_user(tmp_path):
    # two users; user 1 has two sessions (its sequence spans them), user 2 one session
    rows = [event("00:00:01", 1, "a", user=1), event("00:00:02", 2, "a", user=1),
            event("00:01:00", 3, "b", user=1), event("00:01:01", 4, "b", user=1),
            event("00:02:00", 1, "c", user=2), event("00:02:01", 3, "c", user=2),
            event("00:02:02", 2, "c", user=2), event("00:02:03", 4, "c", user=2)]
    stats, splits, items = _prepare(tmp_path, rows, split="leave_one_out")
    idx = dict(zip(items["product_id"], items["item_idx"]))
    by_user = {s: d.set_index("user_id")["items"].map(list).to_dict() for s, d in splits.items()}
    assert by_user["test"][1] == [idx[p] for p in (1, 2, 3, 4)]
    assert by_user["valid"][1] == [idx[p] for p in (1, 2, 3)]
    assert by_user["train"][1] == [idx[p] for p in (1, 2)]
    assert by_user["test"][2] == [idx[p] for p in (1, 3, 2, 4)]
    assert stats["config"]["split"] == "leave_one_out"


def test_leave_one_out_keeps_the_steps_in_order_and_drops_short_histories(tmp_path):
    rows = [event("00:00:01", 1, "a", user=1), event("00:00:02", 2, "a", user=1),
            event("00:00:03", 3, "a", user=1),  # 3 steps: train keeps 1 step, too short for training
            event("00:01:01", 1, "b", user=2), event("00:01:02", 2, "b", user=2),
            event("00:01:03", 3, "b", user=2), event("00:01:04", 4, "b", user=2)]
    _, splits, _ = _prepare(tmp_path, rows, split="leave_one_out")
    assert set(splits["test"]["user_id"]) == {1, 2} and set(splits["valid"]["user_id"]) == {1, 2}
    assert set(splits["train"]["user_id"]) == {2}


def test_unknown_split_mode():
    with pytest.raises(ValueError, match="split must be"):
        PrepareConfig(split="random")
