"""The training loop: seeded and deterministic, early stopping, best state, run files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recpress_utils.runs import ModelSpec, cold_test_targets, evaluate_test, load_run, train_run
from recpress_utils.sequences import load_sessions
from recpress_utils.train import TrainConfig, adamw, benchmark_optimiser, budget_windows, evaluate, fit, set_determinism
from recpress_utils.models import build_model
from recpress_utils.sequences import n_items

FAST = TrainConfig(epochs=2, batch_size=64, lr=3e-3, patience=2)
BASELINE = ModelSpec.from_config("baseline")


def test_same_seed_same_numbers(tiny_prepared, tmp_path):
    runs = [train_run(BASELINE, tiny_prepared, tmp_path / r, FAST, seed=1, threads=1, progress=False)[2]
            for r in ("a", "b")]
    assert runs[0]["test"] == runs[1]["test"]
    assert [h["NDCG@10"] for h in runs[0]["history"]] == [h["NDCG@10"] for h in runs[1]["history"]]
    a = torch.load(tmp_path / "a" / "model.pt")
    b = torch.load(tmp_path / "b" / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_metrics_file_contract(tiny_prepared, tmp_path):
    train_run(BASELINE, tiny_prepared, tmp_path, FAST, seed=3, threads=1, progress=False)
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


# -- model specs: architecture + loss from the config ---------------------------------------
def test_spec_defaults_and_display_names():
    assert ModelSpec.from_config("baseline").display_name() == "Baseline"
    assert ModelSpec.from_config("mixed_attention").display_name(node2vec=True) == "Mixed Attention + Node2Vec"
    pop = ModelSpec.from_config("popularity")
    assert (pop.architecture, pop.loss) == ("popularity", "counts")
    assert ModelSpec.from_config("bert4rec").loss == "masked_item"
    sampled = ModelSpec.from_config("sasrec_sampled", {"architecture": "sasrec", "loss": "sampled_cross_entropy",
                                                       "loss_settings": {"n_negatives": 64}})
    assert sampled.display_name() == "SASRec (sampled CE, 64 negatives)"
    assert ModelSpec.from_config("sasrec").display_name() == "SASRec (full CE)"
    teacher = ModelSpec.from_config("mixed_attention", {"loss": "sampled_softmax", "loss_settings": {"n_negatives": 2048}})
    assert teacher.display_name(node2vec=True) == "Mixed Attention + Node2Vec (sampled softmax, logQ, 2048 negatives)"


def test_a_digest_names_a_run_from_the_registry_not_from_what_it_wrote():
    from recpress_utils.report.results import display_name

    spec = {"name": "mixed_attention", "architecture": "mixed_attention", "loss": "sampled_softmax",
            "loss_settings": {"n_negatives": 2048}, "settings": {}, "train": {}}
    old = {"model": "mixed_attention", "node2vec": True, "spec": spec,
           "display_name": "mixed_attention (sampled softmax, logQ, 2048 negatives) + Node2Vec"}
    assert display_name(old) == "Mixed Attention + Node2Vec (sampled softmax, logQ, 2048 negatives)"
    assert display_name({"model": "student", "display_name": "Student (T = 1)"}) == "Student (T = 1)"


def test_spec_overrides_the_shared_training_settings():
    spec = ModelSpec.from_config("bert4rec", {"train": {"epochs": 40, "patience": 10}})
    cfg = spec.train_config({"epochs": 10, "lr": 0.003, "patience": 3})
    assert (cfg.epochs, cfg.patience, cfg.lr) == (40, 10, 0.003)
    assert ModelSpec.from_config("sasrec").train_config({"epochs": 10}).epochs == 10
    with pytest.raises(ValueError, match="epoch"):
        ModelSpec.from_config("sasrec", {"train": {"epoch": 3}})


@pytest.mark.parametrize("name, entry, message", [
    ("nosuch", {}, "unknown architecture 'nosuch'"),
    ("sasrec", {"los": "bce_one_negative"}, "unknown key"),
    ("sasrec", {"loss": "bpr"}, "unknown loss 'bpr'"),
    ("bert4rec", {"loss": "cross_entropy"}, "BERT4Rec trains only with it"),
    ("sasrec", {"loss": "masked_item"}, "BERT4Rec"),
    ("gru4rec", {"loss": "counts"}, "count-based"),
])
def test_spec_rejects_bad_entries(name, entry, message):
    with pytest.raises(ValueError, match=message):
        ModelSpec.from_config(name, entry)


def test_the_paper_models_take_the_sampled_losses():
    """They expose their item output vectors (the head's last layer), so a large catalogue can
    train them with sampled negatives (a model without them is refused: tests/test_losses.py)."""
    for name in ("baseline", "mixed_attention", "student"):
        assert ModelSpec.from_config(name, {"loss": "sampled_softmax"}).loss == "sampled_softmax"


@pytest.mark.parametrize("name, entry", [
    ("popularity", {}),
    ("gru4rec", {"settings": {"emb_dim": 16, "gru_dim": 16}}),
    ("sasrec_bce", {"architecture": "sasrec", "loss": "bce_one_negative", "settings": {"emb_dim": 16}}),
    ("sasrec_sampled", {"architecture": "sasrec", "loss": "sampled_cross_entropy",
                        "loss_settings": {"n_negatives": 20}, "settings": {"emb_dim": 16}}),
    ("bert4rec", {"settings": {"emb_dim": 16}, "loss_settings": {"mask_prob": 0.3}}),
])
def test_every_peer_trains_through_the_shared_run(tiny_prepared, tmp_path, name, entry):
    spec = ModelSpec.from_config(name, entry)
    metrics = train_run(spec, tiny_prepared, tmp_path, FAST, seed=1, threads=1, progress=False)[2]
    assert metrics["spec"]["loss"] == spec.loss and metrics["model"] == spec.architecture
    assert metrics["epochs_run"] == (0 if spec.loss == "counts" else len(metrics["history"]))
    assert 0.0 < metrics["test"]["NDCG@10"] <= 1.0
    reloaded = load_run(tmp_path, tiny_prepared)  # what the benchmark and the report do
    test = load_sessions(tiny_prepared, "test")
    again = evaluate_test(reloaded, test, FAST, cold_test_targets(tiny_prepared))["test"]  # cold targets: misses
    assert again["NDCG@10"] == pytest.approx(metrics["test"]["NDCG@10"], abs=1e-9)


def test_exclude_seen_leaves_the_history_out_of_the_ranking():
    """A model that scores the user's own earlier items highest: with exclude_seen they drop to
    the bottom of the ranking and the unseen target moves up (RecBole's full-sort protocol)."""
    from recpress_utils.sequences import Sessions
    from recpress_utils.train import evaluate

    class LikesHistory(torch.nn.Module):
        def last_logits(self, items):
            scores = torch.zeros(items.shape[0], 10)
            scores.scatter_(1, items, 5.0)      # the history scores 5
            scores[:, 9] = 1.0                  # the target scores 1, everything else 0
            return scores

    history = np.array([1, 2, 3, 4, 9])  # items 1..4, then the target 9
    sessions = Sessions(items=[history] * 3, actions=[np.zeros(5, np.int8)] * 3)
    plain = evaluate(LikesHistory(), sessions, "last").result()
    masked = evaluate(LikesHistory(), sessions, "last", exclude_seen=True).result()
    assert plain["MRR"] == pytest.approx(1 / 5) and masked["MRR"] == pytest.approx(1.0)


class Killed(Exception):
    """Stands for a job killed mid-epoch (pre-empted cluster job, a laptop going to sleep)."""


def test_a_killed_run_resumes_where_it_stopped_and_ends_as_an_uninterrupted_one(tiny_prepared, tmp_path,
                                                                                monkeypatch):
    """Killed half-way through epoch 2 and run again, a run (dropout, batch order and sampled
    negatives all random) ends with exactly the metrics and history of a run never killed."""
    import recpress_utils.runs as runs
    from recpress_utils.sequences import training_windows

    spec = ModelSpec.from_config("sasrec_sampled", {"architecture": "sasrec", "loss": "sampled_cross_entropy",
                                                    "loss_settings": {"n_negatives": 20}})
    cfg = TrainConfig(epochs=3, batch_size=64, patience=5, device="cpu")
    whole = train_run(spec, tiny_prepared, tmp_path / "whole", cfg, seed=3, threads=1, progress=False)[2]

    per_epoch = -(-len(training_windows(load_sessions(tiny_prepared, "train"), cfg.max_len).items) // cfg.batch_size)
    real_build = runs.build_loss

    def dies_in_epoch_2(*args, **kwargs):
        inner, calls = real_build(*args, **kwargs), []

        def loss(*a):
            calls.append(1)
            if len(calls) > per_epoch + per_epoch // 2:
                raise Killed
            return inner(*a)
        loss.generator = inner.generator
        return loss

    monkeypatch.setattr(runs, "build_loss", dies_in_epoch_2)
    with pytest.raises(Killed):
        train_run(spec, tiny_prepared, tmp_path / "killed", cfg, seed=3, threads=1, progress=False)
    assert (tmp_path / "killed" / runs.CHECKPOINT).exists(), "epoch 1 was saved"
    monkeypatch.setattr(runs, "build_loss", real_build)
    again = train_run(spec, tiny_prepared, tmp_path / "killed", cfg, seed=3, threads=1, progress=False)[2]
    assert not (tmp_path / "killed" / runs.CHECKPOINT).exists(), "removed once training ended"
    assert again["test"] == whole["test"]
    assert [h["train_loss"] for h in again["history"]] == [h["train_loss"] for h in whole["history"]]


def test_a_run_killed_while_testing_does_not_train_again(tiny_prepared, tmp_path, monkeypatch, capsys):
    """Testing over a real catalogue takes minutes: the finished training's checkpoint stays until
    metrics.json and model.pt are written, so a job killed in between resumes with the test."""
    import recpress_utils.runs as runs

    spec, cfg = ModelSpec.from_config("gru4rec"), TrainConfig(epochs=2, batch_size=64, device="cpu")
    whole = train_run(spec, tiny_prepared, tmp_path / "whole", cfg, seed=5, threads=1, progress=False)[2]

    def killed(*args, **kwargs):
        raise Killed
    monkeypatch.setattr(runs, "evaluate_test", killed)
    with pytest.raises(Killed):
        train_run(spec, tiny_prepared, tmp_path / "killed", cfg, seed=5, threads=1, progress=False)
    assert (tmp_path / "killed" / runs.CHECKPOINT).exists(), "the finished training is kept"
    monkeypatch.undo()
    capsys.readouterr()
    again = train_run(spec, tiny_prepared, tmp_path / "killed", cfg, seed=5, threads=1, progress=False)[2]
    assert "resumed from" in capsys.readouterr().out.splitlines()[0]
    assert again["test"] == whole["test"] and not (tmp_path / "killed" / runs.CHECKPOINT).exists()


def test_a_checkpoint_of_other_settings_is_never_continued(tiny_prepared, tmp_path):
    from recpress_utils.runs import CHECKPOINT
    from recpress_utils.train import _save_checkpoint
    _save_checkpoint(tmp_path / CHECKPOINT, {"key": {"settings": "something else"}, "epoch": 99})
    spec = ModelSpec.from_config("gru4rec")
    metrics = train_run(spec, tiny_prepared, tmp_path, TrainConfig(epochs=1, batch_size=256), seed=0, threads=1,
                        progress=False)[2]
    assert metrics["epochs_run"] == 1 and not (tmp_path / CHECKPOINT).exists()


def test_a_window_budget_is_a_seeded_sample_the_same_for_every_caller(tiny_prepared):
    from recpress_utils.sequences import training_windows

    train = load_sessions(tiny_prepared, "train")
    every = training_windows(train, 50)
    unbounded = budget_windows(train, TrainConfig(), 42)
    assert len(unbounded) == len(every) > 100
    assert all(np.array_equal(a, b) for a, b in zip(unbounded.items, every.items))
    cfg = TrainConfig(max_windows=100)
    sample = budget_windows(train, cfg, 42)
    again = budget_windows(train, cfg, 42)
    assert len(sample) == 100 and all(np.array_equal(a, b) for a, b in zip(sample.items, again.items))
    other = budget_windows(train, cfg, 43)
    assert not all(np.array_equal(a, b) for a, b in zip(sample.items, other.items))
    with pytest.raises(ValueError, match="max_windows"):
        TrainConfig(max_windows=0)


def test_eval_budget_scores_one_fixed_sample_with_cold_targets_in_proportion(tiny_prepared) -> None:
    """``max_eval_sessions`` (the paper-scale budget): every run and seed scores the same sample,
    kept in order; the test metrics are the plain evaluation of that sample, and the cold targets
    shrink in proportion; no budget changes nothing."""
    from recpress_utils.models import Popularity
    from recpress_utils.sequences import n_items
    from recpress_utils.train import eval_sample, evaluate

    test = load_sessions(tiny_prepared, "test")
    assert eval_sample(test, TrainConfig()) is test
    cfg = TrainConfig(max_eval_sessions=40)
    sample = eval_sample(test, cfg)
    assert len(sample) == 40 < len(test)
    assert all(np.array_equal(a, b) for a, b in zip(sample.items, eval_sample(test, cfg).items))
    positions = [next(i for i, s in enumerate(test.items) if s is kept) for kept in sample.items]
    assert positions == sorted(positions)
    model = Popularity(n_items(tiny_prepared)).eval()
    model.fit_counts(load_sessions(tiny_prepared, "train").items)
    out = evaluate_test(model, test, cfg, cold_targets=len(test))
    assert out["test_sessions"] == 40 and out["test_cold_targets"] == 40
    plain = evaluate(model, sample, "last").result()
    for name, value in plain.items():
        assert out["test"][name] == pytest.approx(value / 2, abs=1e-12), name
    with pytest.raises(ValueError, match="max_eval_sessions"):
        TrainConfig(max_eval_sessions=0)


def test_the_fused_optimiser_is_the_default_adamw_up_to_rounding():
    """Training uses the fused AdamW kernel for speed; it must be the same update as torch's
    default AdamW at the config's lr and weight decay (here on a padded item table, 30 steps)."""
    cfg = TrainConfig(lr=3e-3, weight_decay=0.05)
    torch.manual_seed(0)
    start = torch.randn(500, 16)
    fused, plain = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    optimisers = [adamw([fused], cfg, torch.device("cpu")),
                  torch.optim.AdamW([plain], lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=False)]
    assert optimisers[0].param_groups[0]["fused"]
    for step in range(30):
        grad = torch.randn(500, 16, generator=torch.Generator().manual_seed(step))
        for param, optimiser in zip((fused, plain), optimisers):
            param.grad = grad.clone()
            optimiser.step()
    assert (fused - start).abs().max() > 0.05  # it moved
    torch.testing.assert_close(fused.detach(), plain.detach(), rtol=1e-5, atol=1e-6)


def test_the_optimiser_benchmark_times_every_kernel(capsys):
    ms = benchmark_optimiser(n_items=500, dim=8, repeats=2)
    assert set(ms) == {"default", "foreach", "fused"} and all(v > 0 for v in ms.values())
    assert "x the default" in capsys.readouterr().out
