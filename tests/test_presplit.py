"""SR-GNN splits written in the prepared layout: protocol `srgnn` (every pair, whole id space)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recpress_utils.data.prepare import PrepareConfig, prepare_for
from recpress_utils.data.srgnn import SessionSplit, write_split
from recpress_utils.io import read_json
from recpress_utils.sequences import eval_examples, load_sessions, n_items

TRAIN = [[1, 2, 3], [2, 3], [4, 1, 2], [3, 1], [5, 2, 4, 1], [1, 2], [2, 5, 1], [3, 4], [1, 3], [2, 1]]
#: test pairs: prefix -> target; item 9 never occurs in training, 7 and 8 only in test prefixes
PREFIXES = [[1, 2], [1], [7, 8], [3]]
TARGETS = [3, 2, 9, 1]


@pytest.fixture
def prepared(tmp_path):
    folder = tmp_path / "srgnn"
    folder.mkdir()
    write_split(SessionSplit([np.array(s) for s in TRAIN], [np.array(p) for p in PREFIXES], np.array(TARGETS)),
                folder)
    out = tmp_path / "prepared"
    stats = prepare_for("diginetica", [folder / "all_train_seq.txt", folder / "test.txt"], out,
                        PrepareConfig(valid_frac=0.2))
    return out, stats


def test_test_pairs_are_scored_as_published(prepared):
    out, _ = prepared
    inputs, targets = eval_examples(load_sessions(out, "test"), "last")
    assert targets.tolist() == TARGETS
    assert [row[row > 0].tolist() for row in inputs] == PREFIXES


def test_the_newest_training_sessions_validate_and_never_train(prepared):
    out, stats = prepared
    train = load_sessions(out, "train").items
    assert [s.tolist() for s in train] == TRAIN[:8]
    inputs, targets = eval_examples(load_sessions(out, "valid"), "last")
    # [1, 3] and [2, 1], every prefix, longest first (SR-GNN's order)
    assert targets.tolist() == [3, 1] and [r[r > 0].tolist() for r in inputs] == [[1], [2]]
    assert stats["splits"]["train"]["sessions"] == 8


def test_the_whole_id_space_is_ranked_and_nothing_is_cold(prepared):
    out, stats = prepared
    items = pd.read_parquet(out / "items.parquet")
    assert items["item_idx"].tolist() == list(range(1, 10)) and n_items(out) == 10
    counts = dict(zip(items["item_idx"], items["train_count"]))
    assert counts[9] == 0 and counts[7] == 0 and counts[1] == 6
    assert stats["cold_targets"]["test"] == 0
    assert stats["published_counts"]["test_targets_never_in_training"] == 1
    assert read_json(out / "stats.json")["protocol"] == "srgnn"


def test_a_missing_folder_is_named(tmp_path):
    from recpress_utils.config import srgnn_files
    with pytest.raises(ValueError, match="nowhere"):
        srgnn_files(str(tmp_path / "nowhere"))


def test_published_pairs_are_scored_in_target_mode_last_only(prepared, tiny_prepared):
    """`rest` (the later half of a session) means nothing for a (prefix, next item) pair."""
    from recpress_utils.runs import target_modes
    assert target_modes(prepared[0]) == ("last",)
    assert target_modes(tiny_prepared) == ("last", "rest")


def test_refit_trains_on_every_training_session(prepared, tmp_path):
    """train.refit: early stopping picks the epochs on the held-out newest sessions, then a fresh
    model trains on all of them (popularity: counts over all of them), as published models did."""
    from recpress_utils.runs import ModelSpec, train_run
    from recpress_utils.train import TrainConfig
    out, _ = prepared
    assert len(load_sessions(out, "train_all")) == len(TRAIN)
    cfg = TrainConfig(epochs=2, batch_size=4, refit=True)
    net, _, metrics = train_run(ModelSpec.from_config("popularity"), out, tmp_path / "pop", cfg, seed=0, threads=1,
                                progress=False)
    assert net.output[-1].log_counts[1].item() == pytest.approx(np.log1p(8))  # item 1: 8 times in all 10 sessions
    net, result, metrics = train_run(ModelSpec.from_config("gru4rec"), out, tmp_path / "gru", cfg, seed=0, threads=1,
                                     progress=False)
    assert metrics["refit"]["epochs"] == metrics["best_epoch"] >= 1
    assert len(metrics["history"]) == metrics["epochs_run"]


class Killed(Exception):
    """Stands for a job killed during the refit (after the selection run has finished)."""


def test_a_run_killed_during_its_refit_does_not_train_the_selection_run_again(prepared, tmp_path,
                                                                            monkeypatch, capsys):
    """The selection run's final checkpoint survives until the refit ends: the rerun continues
    with the refit and ends as an uninterrupted run does."""
    import recpress_utils.runs as runs
    from recpress_utils.train import TrainConfig
    out, _ = prepared
    spec, cfg = runs.ModelSpec.from_config("gru4rec"), TrainConfig(epochs=2, batch_size=4, refit=True)
    whole = runs.train_run(spec, out, tmp_path / "whole", cfg, seed=0, threads=1, progress=False)[2]

    def killed(*args, **kwargs):
        raise Killed
    monkeypatch.setattr(runs, "refit", killed)
    with pytest.raises(Killed):
        runs.train_run(spec, out, tmp_path / "killed", cfg, seed=0, threads=1, progress=False)
    assert (tmp_path / "killed" / runs.CHECKPOINT).exists(), "the finished selection run is kept"
    monkeypatch.undo()
    capsys.readouterr()
    again = runs.train_run(spec, out, tmp_path / "killed", cfg, seed=0, threads=1, progress=False)[2]
    assert "resumed from" in capsys.readouterr().out.splitlines()[0]

    def untimed(history):
        return [{k: v for k, v in h.items() if k != "epoch_seconds"} for h in history]
    assert again["test"] == whole["test"] and untimed(again["history"]) == untimed(whole["history"])
    assert not list((tmp_path / "killed").glob(f"*{runs.CHECKPOINT}")), "both checkpoints removed at the end"
