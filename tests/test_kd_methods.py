"""The distillation toolkit (recpress_utils.distill): each method's loss on a toy case with a value or
gradient computed by hand, the shared interface (one student pass per batch, frozen teachers,
settings checked by name), and kd_run end to end with an exact resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recpress_utils.distill import METHODS, build_method, kd_loss, method_settings
from recpress_utils.distill.attention import attention_kl
from recpress_utils.distill.base import SharedHidden, logits_at
from recpress_utils.distill.hint import squared_distance
from recpress_utils.distill.multi_teacher import mixture_kd_loss
from recpress_utils.distill.ranking import rank_weights, ranking_distillation_loss
from recpress_utils.distill.relational import relational_loss
from recpress_utils.distill.rrd import relaxed_ranking_loss
from recpress_utils.losses import full_cross_entropy
from recpress_utils.models import BERT4Rec, GRU4Rec, MixedAttention, SASRec, Student
from recpress_utils.models.layers import attention_probs
from recpress_utils.sequences import left_pad

N_ITEMS = 31


def student(seed: int = 0) -> Student:
    torch.manual_seed(seed)
    return Student(N_ITEMS, emb_dim=16, qkv_dim=16, n_filters=8, max_len=12, proj_dim=16)


def teacher(seed: int = 1) -> MixedAttention:
    torch.manual_seed(seed)
    return MixedAttention(N_ITEMS, n_projections=0, emb_dim=16, qkv_dim=16, max_len=12, mlp_hidden=24)


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    rows = [rng.integers(1, N_ITEMS, size=n) for n in (7, 4, 2, 6)]
    return left_pad([s[:-1] for s in rows]), left_pad([s[1:] for s in rows])


# -- each method's term on a case computed by hand ------------------------------------------------
def test_rank_weights_decay_exponentially_and_sum_to_one() -> None:
    w = rank_weights(3, decay=1.0)
    expected = torch.tensor([math.exp(-1), math.exp(-2), math.exp(-3)])
    torch.testing.assert_close(w, expected / expected.sum())


def test_ranking_distillation_is_weighted_log_sigmoid_of_the_teachers_top_items() -> None:
    scores = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    weights = torch.tensor([0.75, 0.25])
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    row1 = -(0.75 * math.log(sig(0.0)) + 0.25 * math.log(sig(1.0)))
    row2 = -(0.75 * math.log(sig(2.0)) + 0.25 * math.log(sig(-1.0)))
    assert ranking_distillation_loss(scores, weights).item() == pytest.approx((row1 + row2) / 2, rel=1e-6)


def test_relaxed_ranking_loss_by_hand_and_its_relaxation() -> None:
    top = torch.tensor([[2.0, 1.0]])
    other = torch.tensor([[0.0, -1.0]])
    e = math.exp
    by_hand = -((2 - math.log(e(2) + e(1) + e(0) + e(-1))) + (1 - math.log(e(1) + e(0) + e(-1))))
    assert relaxed_ranking_loss(top, other).item() == pytest.approx(by_hand, rel=1e-6)
    # the order among the uninteresting items is free: swapping them changes nothing
    assert relaxed_ranking_loss(top, other.flip(1)).item() == pytest.approx(by_hand, rel=1e-6)
    # the teacher's order reversed costs more
    assert relaxed_ranking_loss(top.flip(1), other).item() > by_hand


def test_squared_distance_and_attention_kl_by_hand() -> None:
    assert squared_distance(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]])).item() == pytest.approx(5.0)
    teacher_rows = torch.tensor([[0.5, 0.5, 0.0]])
    student_rows = torch.tensor([[0.25, 0.75, 0.0]])
    by_hand = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert attention_kl(student_rows, teacher_rows).item() == pytest.approx(by_hand, rel=1e-6)
    assert attention_kl(teacher_rows, teacher_rows).item() == pytest.approx(0.0, abs=1e-7)


def test_relational_loss_compares_cosines_not_vectors() -> None:
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # the same relations at another scale and rotation: nothing to transfer
    rotated = torch.tensor([[0.0, 3.0], [-3.0, 0.0]])
    assert relational_loss(rotated, a).item() == pytest.approx(0.0, abs=1e-7)
    # parallel against orthogonal: the two off-diagonal cosines differ by 1, of 4 pairs
    parallel = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    assert relational_loss(parallel, a).item() == pytest.approx(2 / 4, rel=1e-6)


def test_mixture_of_teachers_is_one_teachers_kd_when_they_agree() -> None:
    g = torch.Generator().manual_seed(0)
    v, z = torch.randn(5, 9, generator=g), torch.randn(5, 9, generator=g)
    v[:, 0] = z[:, 0] = float("-inf")
    for temperature in (0.5, 2.0):
        one = kd_loss(v, z, temperature)
        both = mixture_kd_loss(v, [z, z], torch.tensor([0.3, 0.7]), temperature)
        torch.testing.assert_close(both, one, rtol=1e-5, atol=1e-6)
    # two teachers: the target is their average distribution
    z2 = torch.randn(5, 9, generator=g)
    z2[:, 0] = float("-inf")
    p = 0.5 * F.softmax(z[:, 1:], -1) + 0.5 * F.softmax(z2[:, 1:], -1)
    by_hand = (p * (p.log() - F.log_softmax(v[:, 1:], -1))).sum(1).mean()
    torch.testing.assert_close(mixture_kd_loss(v, [z, z2], torch.tensor([0.5, 0.5]), 1.0), by_hand)


def test_mutual_learning_moves_each_model_only_by_its_own_kd_term() -> None:
    """DML: the student's gradient is that of T^2 KL(peer || student) with the peer held fixed, and
    the peer's that of T^2 KL(student || peer) with the student held fixed."""
    inputs, targets = batch()
    s, peer = student().eval(), teacher().eval()
    method = build_method("mutual", [], {"temperature": 2.0, "hard_weight": 0.0}, base_loss=full_cross_entropy(),
                          peer=peer, peer_loss=lambda *a: torch.zeros(()))
    method.eval()  # no dropout: the two computations see the same logits
    mask = targets != 0
    method(s, inputs, targets).backward()
    got_student = [p.grad.clone() for p in s.parameters() if p.grad is not None]
    got_peer = [p.grad.clone() for p in peer.parameters() if p.grad is not None]
    s.zero_grad(), peer.zero_grad()
    v, z = s.head(s.hidden(inputs)[mask]), peer.head(peer.hidden(inputs)[mask])
    (kd_loss(v, z.detach(), 2.0) + kd_loss(z, v.detach(), 2.0)).backward()
    want_student = [p.grad for p in s.parameters() if p.grad is not None]
    want_peer = [p.grad for p in peer.parameters() if p.grad is not None]
    assert len(got_student) == len(want_student) > 0 and len(got_peer) == len(want_peer) > 0
    for got, want in zip(got_student + got_peer, want_student + want_peer):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)



def test_mutual_learning_over_a_pool_of_every_item_once_is_the_full_kl() -> None:
    """Sampled DML: with each item pooled once and N q_j = 1 the candidates are the whole catalogue
    (a row's own item once, its pooled copy masked), so both KL terms, and so the value and each
    model's gradient, equal the full-vocabulary ones."""
    from recpress_utils.losses import PopularityPool

    inputs, targets = batch()
    pool = PopularityPool(torch.ones(N_ITEMS), n_negatives=N_ITEMS - 1)
    pool.draw = lambda device="cpu": torch.arange(1, N_ITEMS)
    pool.log_expected_count = torch.zeros(N_ITEMS)
    values, grads = [], []
    for sampled in (pool, None):
        s, peer = student().eval(), teacher().eval()
        method = build_method("mutual", [], {"temperature": 2.0, "hard_weight": 0.0}, base_loss=full_cross_entropy(),
                              peer=peer, peer_loss=lambda *a: torch.zeros(()), pool=sampled)
        method.eval()
        value = method(s, inputs, targets)
        value.backward()
        values.append(value.detach())
        grads.append([p.grad.clone() for p in [*s.parameters(), *peer.parameters()] if p.grad is not None])
    torch.testing.assert_close(values[0], values[1])
    assert len(grads[0]) == len(grads[1]) > 0
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)

# -- the shared interface ------------------------------------------------------------------------
def test_every_method_computes_the_students_encoder_once_per_batch() -> None:
    inputs, targets = batch()
    for name in METHODS:
        s, calls = student(), []
        real_hidden = s.hidden
        s.hidden = lambda items, real=real_hidden: calls.append(1) or real(items)
        teachers = [] if name == "mutual" else [teacher(), teacher(2)] if name == "multi_teacher" else [teacher()]
        context = {"base_loss": full_cross_entropy(), "student_width": 16, "seed": 0,
                   "peer": teacher(), "peer_loss": full_cross_entropy()}
        method = build_method(name, teachers, {}, **context)
        value = method(s, inputs, targets)
        assert torch.isfinite(value) and value.requires_grad, name
        assert len(calls) == 1, f"{name}: the student's encoder ran {len(calls)} times"


def test_frozen_teachers_stay_frozen_out_of_the_method_state_and_in_eval_mode() -> None:
    t = teacher()
    method = build_method("hint", [t], {}, base_loss=full_cross_entropy(), student_width=16)
    method.train()
    assert not t.training and not any(p.requires_grad for p in t.parameters())
    assert all(not k.startswith("_teachers") for k in method.state_dict())
    assert set(method.state_dict()) == {"regressor.weight", "regressor.bias"}


def test_unknown_settings_and_wrong_teacher_counts_fail_with_the_accepted_names() -> None:
    with pytest.raises(ValueError, match="accepted: hard_weight, weight, top_k, decay"):
        build_method("ranking", [teacher()], {"topk": 5}, base_loss=full_cross_entropy())
    with pytest.raises(ValueError, match="unknown distillation method"):
        method_settings("distil_harder")
    with pytest.raises(ValueError, match="two or more teachers"):
        build_method("multi_teacher", [teacher()], {}, base_loss=full_cross_entropy())
    with pytest.raises(ValueError, match="takes no teacher"):
        build_method("mutual", [teacher()], {}, base_loss=full_cross_entropy(), peer=teacher(),
                     peer_loss=full_cross_entropy())
    with pytest.raises(TypeError, match="no attention maps"):
        build_method("attention", [GRU4Rec(N_ITEMS, emb_dim=8, gru_dim=8)], {}, base_loss=full_cross_entropy())


def test_shared_hidden_returns_the_batchs_states_and_delegates_the_rest() -> None:
    s = student().eval()
    inputs, _ = batch()
    hidden = s.hidden(inputs)
    shared = SharedHidden(s, inputs, hidden)
    assert shared.hidden(inputs) is hidden and shared.n_items == N_ITEMS
    other = inputs[:2]
    torch.testing.assert_close(shared.hidden(other), s.hidden(other))


def test_a_bidirectional_teacher_is_asked_prefix_by_prefix() -> None:
    torch.manual_seed(0)
    bert = BERT4Rec(N_ITEMS, emb_dim=16, n_heads=2, ffn_dim=32, max_len=12).eval()
    inputs, targets = batch()
    mask = targets != 0
    with torch.no_grad():
        got = logits_at(bert, inputs, mask)
        rows = [bert.last_logits(inputs[b:b + 1, :t + 1])[0] for b, t in mask.nonzero().tolist()]
    torch.testing.assert_close(got, torch.stack(rows), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls,kwargs", [
    (Student, {"emb_dim": 16, "qkv_dim": 16, "n_filters": 8, "max_len": 12}),
    (MixedAttention, {"n_projections": 0, "emb_dim": 16, "qkv_dim": 16, "n_heads": 2, "max_len": 12}),
    (SASRec, {"emb_dim": 16, "n_heads": 2, "ffn_dim": 32, "max_len": 12}),
])
def test_attention_maps_are_causal_distributions_over_real_keys(cls, kwargs) -> None:
    torch.manual_seed(0)
    model = cls(N_ITEMS, **kwargs).eval()
    inputs, _ = batch()
    with torch.no_grad():
        maps = model.attention_maps(inputs)
    real = inputs != 0
    torch.testing.assert_close(maps.sum(-1)[real], torch.ones(int(real.sum())))
    assert (maps.triu(1) == 0).all(), "no query attends to a later position"
    assert (maps[real[:, None, :].expand_as(maps).logical_not() & real[:, :, None]] == 0).all(), \
        "real queries give padding no weight"


def test_attention_probs_are_the_weights_sdpa_applies() -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 5, 4, generator=g) for _ in range(3))
    mask = torch.ones(5, 5, dtype=torch.bool).tril()[None, None]
    torch.testing.assert_close(attention_probs(q, k, mask) @ v,
                               F.scaled_dot_product_attention(q, k, v, attn_mask=mask), rtol=1e-5, atol=1e-6)


# -- kd_run end to end ---------------------------------------------------------------------------
def test_kd_run_trains_a_method_with_parameters_and_resumes_exactly(tiny_prepared, tmp_path, monkeypatch) -> None:
    """DE (experts and selection trained with the student) against a trained teacher: a run killed
    in its second epoch and run again ends exactly as one never killed, experts included."""
    import recpress_utils.distill as distill
    import recpress_utils.runs as runs
    from recpress_utils.runs import KDJob, ModelSpec, kd_run, train_run
    from recpress_utils.train import TrainConfig

    cfg = TrainConfig(epochs=2, batch_size=64, patience=5, device="cpu")
    spec = ModelSpec.from_config("mixed_attention", {"settings": {"emb_dim": 16, "qkv_dim": 16, "mlp_hidden": 16}})
    train_run(spec, tiny_prepared, tmp_path / "teacher", cfg, seed=1, threads=1, progress=False)
    teachers = [{"model": "mixed_attention", "model_kwargs": spec.settings, "neighbors_path": "",
                 "checkpoint": str(tmp_path / "teacher" / "model.pt"), "loss": "cross_entropy", "loss_settings": {}}]
    student_kwargs = {"emb_dim": 16, "qkv_dim": 16, "n_filters": 8, "proj_dim": 16}
    job = KDJob(method="de", method_settings={"method": "experts", "settings": {"n_experts": 3}}, teachers=teachers,
                student_kwargs=student_kwargs, student_loss={"loss": "cross_entropy"}, train_cfg=cfg, seed=3,
                threads=1)
    whole, again = _whole_and_resumed(tiny_prepared, tmp_path, monkeypatch, job)
    assert whole["kd"]["method"] == "experts" and whole["kd"]["method_parameters"] > 0
    # the teacher's own test metrics, as its run recorded them, travel with the student's run
    from recpress_utils.io import read_json
    assert whole["kd"]["teachers"][0]["test"] == read_json(tmp_path / "teacher" / "metrics.json")["test"]
    # the control: the same student, its own loss only, no teacher read
    control = kd_run(tiny_prepared, tmp_path / "control",
                     KDJob(None, None, [], student_kwargs, {"loss": "cross_entropy"}, cfg, 3, 1), progress=False)[2]
    assert control["kd"]["method"] is None and control["test"] != whole["test"]


def test_sampled_mutual_learning_resumes_exactly(tiny_prepared, tmp_path, monkeypatch) -> None:
    """DML over a pool with sampled losses on both sides draws from three generators (the pool,
    the student's loss, the peer's loss): a killed run resumes exactly, so each is checkpointed."""
    from recpress_utils.runs import KDJob
    from recpress_utils.train import TrainConfig

    sampled = {"loss": "sampled_softmax", "loss_settings": {"n_negatives": 8, "uniform_mix": 0.1}}
    peer = {"model": "mixed_attention", "model_kwargs": {"emb_dim": 16, "qkv_dim": 16, "mlp_hidden": 16},
            "neighbors_path": "", "checkpoint": "", **sampled}
    job = KDJob(method="dml", method_settings={"method": "mutual"}, teachers=[peer],
                student_kwargs={"emb_dim": 16, "qkv_dim": 16, "n_filters": 8, "proj_dim": 16}, student_loss=sampled,
                train_cfg=TrainConfig(epochs=2, batch_size=64, patience=5, device="cpu"), seed=3, threads=1,
                negatives={"n_negatives": 8, "uniform_mix": 0.1})
    whole, _ = _whole_and_resumed(tiny_prepared, tmp_path, monkeypatch, job)
    assert "test" not in whole["kd"]["teachers"][0]  # trained alongside: no frozen teacher's metrics to record


def _whole_and_resumed(tiny_prepared, tmp_path, monkeypatch, job) -> tuple[dict, dict]:
    """``job`` run whole, and run again after being killed in its second epoch; asserts that the
    two end alike (test metrics, every epoch's training loss) and returns both metrics."""
    import recpress_utils.distill as distill
    import recpress_utils.runs as runs
    from recpress_utils.runs import kd_run
    from recpress_utils.sequences import load_sessions, training_windows

    cfg = job.train_cfg
    whole = kd_run(tiny_prepared, tmp_path / "whole", job, progress=False)[2]
    per_epoch = -(-len(training_windows(load_sessions(tiny_prepared, "train"), cfg.max_len).items) // cfg.batch_size)
    real_build, calls = distill.build_method, []

    def dies_in_epoch_2(*a, **kw):
        method = real_build(*a, **kw)
        real_forward = method.forward

        def forward(*fa):
            calls.append(1)
            if len(calls) > per_epoch + per_epoch // 2:
                raise KeyboardInterrupt
            return real_forward(*fa)
        method.forward = forward
        return method

    monkeypatch.setattr(distill, "build_method", dies_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        kd_run(tiny_prepared, tmp_path / "killed", job, progress=False)
    assert (tmp_path / "killed" / runs.CHECKPOINT).exists()
    monkeypatch.undo()
    again = kd_run(tiny_prepared, tmp_path / "killed", job, progress=False)[2]
    assert again["test"] == whole["test"]
    assert [h["train_loss"] for h in again["history"]] == [h["train_loss"] for h in whole["history"]]
    return whole, again
