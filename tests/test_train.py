"""The training loop: seeded and deterministic, early stopping, best state, run files."""

from __future__ import annotations

import json

import pytest
import torch

from recpress_utils.runs import train_run
from recpress_utils.sequences import load_sessions
from recpress_utils.train import TrainConfig, evaluate, fit, set_determinism
from recpress_utils.models import build_model
from recpress_utils.sequences import n_items

FAST = TrainConfig(epochs=2, batch_size=64, lr=3e-3, patience=2)


def test_same_seed_same_numbers(tiny_prepared, tmp_path):
    runs = [train_run("baseline", tiny_prepared, tmp_path / r, {}, FAST, seed=1, threads=1, progress=False)[2]
            for r in ("a", "b")]
    assert runs[0]["test"] == runs[1]["test"]
    assert [h["NDCG@10"] for h in runs[0]["history"]] == [h["NDCG@10"] for h in runs[1]["history"]]
    a = torch.load(tmp_path / "a" / "model.pt")
    b = torch.load(tmp_path / "b" / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_metrics_file_contract(tiny_prepared, tmp_path):
    train_run("baseline", tiny_prepared, tmp_path, {}, FAST, seed=3, threads=1, progress=False)
    m = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("MAP@1", "MAP@10", "MAP@100", "NDCG@1", "NDCG@10", "NDCG@100", "HR@10", "MRR"):
        assert 0.0 <= m["test"][key] <= 1.0 and key in m["test_rest"]
    assert m["seed"] == 3 and m["display_name"] == "Baseline"
    assert len(m["history"]) == m["epochs_run"] and "NDCG@10" in m["history"][0]
    assert m["train_config"]["lr"] == FAST.lr and m["n_parameters"] > 0


def test_learning_beats_the_untrained_model(tiny_prepared):
    set_determinism(0, 1)
    train, valid = load_sessions(tiny_prepared, "train"), load_sessions(tiny_prepared, "valid")
    model = build_model("baseline", n_items(tiny_prepared))
    before = evaluate(model, valid).result()["NDCG@10"]
    fit(model, train, valid, TrainConfig(epochs=4, batch_size=64, lr=3e-3), seed=0, progress=False)
    after = evaluate(model, valid).result()["NDCG@10"]
    assert after > before + 0.05, (before, after)


def test_early_stopping_keeps_the_best_epoch(tiny_prepared):
    set_determinism(0, 1)
    train, valid = load_sessions(tiny_prepared, "train"), load_sessions(tiny_prepared, "valid")
    model = build_model("baseline", n_items(tiny_prepared))
    # a huge learning rate makes validation worse after the first epoch
    result = fit(model, train, valid, TrainConfig(epochs=6, batch_size=64, lr=0.5, patience=1), seed=0,
                 progress=False)
    scores = [h["NDCG@10"] for h in result.history]
    assert result.best_epoch == 1 + scores.index(max(scores))
    assert len(result.history) < 6 or result.best_epoch == 6
    final = evaluate(model, valid).result()["NDCG@10"]
    assert final == pytest.approx(max(scores), abs=1e-12), "the best state is restored"


def test_config_rejects_unknown_key():
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig.from_dict({"learning_rate": 0.1})
