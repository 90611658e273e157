"""Multi-teacher soft labels from the teachers' cached top-K (recpress_utils.distill.multi_teacher):
the mixture over the union of their top-K by hand, exactness when every cache holds every item,
the sampled student pool exact with every item pooled once, finite gradients where the teachers'
lists overlap, and a toolkit run that caches every teacher."""

from __future__ import annotations

import math

import pytest
import torch

from recpress_utils.distill import build_method, caches_every_teacher, uses_teacher_cache
from recpress_utils.distill.multi_teacher import mixture_kl, mixture_outcomes
from recpress_utils.distill.teacher_cache import build_teacher_cache, sampled_student_log_probs
from recpress_utils.losses import PopularityPool, full_cross_entropy
from recpress_utils.models import MixedAttention
from recpress_utils.sequences import train_batches
from tests.test_distill import N_ITEMS, models
from tests.test_teacher_cache import windows


def _top(items, logits, rest):
    return torch.tensor([items]), torch.tensor([logits], dtype=torch.float64), torch.tensor([rest], dtype=torch.float64)


def test_the_mixture_over_the_union_of_two_top_lists_by_hand() -> None:
    """Teacher A lists items 3 and 5, teacher B items 5 and 7 (T = 1, weights 0.25 / 0.75): item 5
    gets both teachers' mass, 3 and 7 one teacher's each, the bucket both buckets."""
    a = _top([3, 5], [2.0, 1.0], math.log(4.0))  # A: e^2, e^1 and a bucket of mass 4
    b = _top([5, 7], [0.0, 0.0], math.log(2.0))  # B: 1, 1 and a bucket of 2
    items, p, first, rest = mixture_outcomes([a, b], torch.tensor([0.25, 0.75], dtype=torch.float64), 1.0)
    za, zb = math.e ** 2 + math.e + 4.0, 4.0
    assert items.tolist() == [[3, 5, 5, 7]] and first.tolist() == [[True, True, False, True]]
    expected = [0.25 * math.e ** 2 / za, 0.25 * math.e / za + 0.75 / zb, 0.0, 0.75 / zb]
    torch.testing.assert_close(p[0], torch.tensor(expected, dtype=torch.float64))
    assert rest.item() == pytest.approx(0.25 * 4.0 / za + 0.75 * 2.0 / zb)
    assert (p.sum() + rest).item() == pytest.approx(1.0)


def _teachers() -> list[MixedAttention]:
    out = []
    for seed in (11, 12):
        torch.manual_seed(seed)
        out.append(MixedAttention(N_ITEMS, n_projections=0, emb_dim=16, qkv_dim=16, max_len=12, mlp_hidden=16))
    return out


@pytest.mark.parametrize("temperature", (1.0, 2.0))
def test_caches_of_every_item_give_the_on_the_fly_mixture(temperature: float) -> None:
    student, _ = models(1)
    teachers, train = _teachers(), windows(3)
    caches = [build_teacher_cache(t, train, top_k=N_ITEMS, temperature=temperature, progress=False) for t in teachers]
    settings = {"temperature": temperature, "weights": [1.0, 3.0]}
    on_the_fly = build_method("multi_teacher", teachers, settings, base_loss=full_cross_entropy())
    cached = build_method("multi_teacher", teachers, settings, base_loss=full_cross_entropy(), caches=caches)
    for inputs, targets in train_batches(train, 9, torch.Generator().manual_seed(0)):
        torch.testing.assert_close(cached(student, inputs, targets), on_the_fly(student, inputs, targets),
                                   rtol=1e-4, atol=1e-5)


def test_a_pool_of_every_item_once_gives_the_exact_cached_mixture_with_finite_gradients() -> None:
    """Overlapping top-3 lists: the sampled student side, with each item pooled once and N q_j = 1,
    is the student's exact softmax; a repeated item counts once in its normaliser."""
    g = torch.Generator().manual_seed(5)
    n_items, rows = 9, 4
    v = torch.randn(rows, n_items, generator=g, dtype=torch.float64)
    v[:, 0] = float("-inf")
    v.requires_grad_()
    looked_up = []
    for _ in range(2):
        z = torch.randn(rows, n_items - 1, generator=g, dtype=torch.float64) * 2
        top = z.topk(3, dim=1)
        looked_up.append((top.indices + 1, top.values, z.scatter(1, top.indices, float("-inf")).logsumexp(1)))
    items, p, first, p_rest = mixture_outcomes(looked_up, torch.tensor([0.5, 0.5], dtype=torch.float64), 1.0)
    assert (~first).any(), "the case must have an item both teachers list"
    log_q = torch.log_softmax(v[:, 1:], dim=1)
    exact = mixture_kl(p, p_rest, log_q.gather(1, items - 1),
                       log_q.scatter(1, items - 1, torch.finfo(log_q.dtype).min).logsumexp(1), 1.0)
    pool = torch.arange(1, n_items)
    log_q_top, log_q_rest, estimated = sampled_student_log_probs(
        v.gather(1, items), items, v[:, pool].clone(), pool, torch.zeros(len(pool), dtype=v.dtype), 1.0, counted=first)
    sampled = mixture_kl(p, p_rest, log_q_top, log_q_rest, 1.0, keep_rest=estimated)
    torch.testing.assert_close(sampled, exact)
    sampled.backward()
    assert torch.isfinite(v.grad[:, 1:]).all()


def test_the_toolkit_reads_one_cache_per_teacher_for_multi_teacher_soft_labels() -> None:
    assert uses_teacher_cache("multi_teacher") and caches_every_teacher("multi_teacher")
    assert uses_teacher_cache("soft_labels") and not caches_every_teacher("soft_labels")
    assert not uses_teacher_cache("hint")
    teachers, train = _teachers(), windows(4)
    cache = build_teacher_cache(teachers[0], train, top_k=5, temperature=2.0, progress=False)
    with pytest.raises(ValueError, match="one cache per teacher at T = 1"):
        build_method("multi_teacher", teachers, {}, base_loss=full_cross_entropy(), caches=[cache, cache])
    with pytest.raises(ValueError, match="needs the teachers' caches"):
        build_method("multi_teacher", teachers, {}, base_loss=full_cross_entropy(),
                     pool=PopularityPool(torch.ones(N_ITEMS), n_negatives=4, seed=0))


def test_a_toolkit_run_caches_every_teacher_and_trains_from_the_sampled_mixture(tiny_prepared, tmp_path) -> None:
    from recpress_utils.runs import KDJob, ModelSpec, kd_run, train_run
    from recpress_utils.train import TrainConfig

    cfg = TrainConfig(epochs=1, batch_size=64, device="cpu")
    teachers = []
    for name, settings in (("mixed_attention", {"emb_dim": 16, "qkv_dim": 16, "mlp_hidden": 16}), ("sasrec", {})):
        spec = ModelSpec.from_config(name, {"settings": settings})
        train_run(spec, tiny_prepared, tmp_path / name, cfg, seed=1, threads=1, progress=False)
        teachers.append({"model": name, "model_kwargs": spec.settings, "neighbors_path": "",
                         "checkpoint": str(tmp_path / name / "model.pt"), "loss": "cross_entropy", "loss_settings": {}})
    job = KDJob(method="multi", method_settings={"method": "multi_teacher", "settings": {"temperature": 2.0}},
                teachers=teachers, student_kwargs={"emb_dim": 16, "qkv_dim": 16, "n_filters": 8, "proj_dim": 16},
                student_loss={"loss": "cross_entropy"}, train_cfg=cfg, seed=3, threads=1, top_k=5,
                negatives={"n_negatives": 16, "uniform_mix": 0.1})
    metrics = kd_run(tiny_prepared, tmp_path / "multi", job, progress=False)[2]
    caches = metrics["kd"]["teacher_caches"]
    assert len(caches) == 2 and all(c["top_k"] == 5 and c["prefixes"] > 0 for c in caches)
    assert metrics["kd"]["teacher_cache"] == caches[0]
    assert math.isfinite(metrics["history"][0]["train_loss"])
