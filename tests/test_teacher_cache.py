"""The teacher's cached top-K (recpress_utils.distill.teacher_cache): prefix keys, the (K + 1)-way KL
against a hand computation, equality with on-the-fly distillation when K covers every item,
a loud error for a prefix the cache never saw, and the student's sampled bucket (exact with a
pool of every item, close to exact on average with popularity pools)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recpress_utils.distill import distillation_loss, kd_loss
from recpress_utils.sequences import Sessions, left_pad, train_batches
from recpress_utils.losses import PopularityPool, output_states, sampled_softmax_loss
from recpress_utils.distill.teacher_cache import (build_teacher_cache, build_teacher_caches, cached_kd_loss,
                                                  load_teacher_cache, pooled_in_rows, prefix_keys,
                                                  sampled_cached_kd_loss, save_teacher_caches)
from tests.test_distill import N_ITEMS, batch, logits, models


def windows(seed: int = 0, n: int = 40) -> Sessions:
    rng = np.random.default_rng(seed)
    items = [rng.integers(1, N_ITEMS, size=int(rng.integers(2, 9))) for _ in range(n)]
    return Sessions(items, [np.ones(len(s), dtype=np.int8) for s in items])


def test_prefix_keys_ignore_padding_and_tell_prefixes_apart() -> None:
    padded = left_pad([np.array([3, 5, 7]), np.array([3, 5, 7, 2])], 6)
    keys = prefix_keys(padded)
    assert keys[0, 2] == 0  # padding only
    np.testing.assert_array_equal(keys[0, 3:], keys[1, 2:5])  # [3], [3, 5], [3, 5, 7] at other offsets
    assert len(np.unique(keys[1, 2:])) == 4  # every longer prefix is a new key
    assert prefix_keys(left_pad([np.array([5, 3])]))[0, -1] != keys[0, 4]  # order matters


@pytest.mark.parametrize("temperature", (0.5, 2.0))
def test_cached_loss_is_the_kl_of_the_bucketed_distributions(temperature: float) -> None:
    v, z = logits(4, rows=3, n_items=9), logits(5, rows=3, n_items=9)
    k = 3
    top = z[:, 1:].topk(k, dim=1)
    items = top.indices + 1
    rest_lse = (z[:, 1:] / temperature).scatter(1, top.indices, float("-inf")).logsumexp(1)
    value = cached_kd_loss(v, items, top.values, rest_lse, temperature)
    # by hand: softmax over all items, then the items outside the teacher's top-K summed into one
    p = torch.softmax(z[:, 1:] / temperature, -1)
    q = torch.softmax(v[:, 1:] / temperature, -1)
    p_top, q_top = p.gather(1, top.indices), q.gather(1, top.indices)
    p_b = torch.cat([p_top, 1 - p_top.sum(1, keepdim=True)], 1)
    q_b = torch.cat([q_top, 1 - q_top.sum(1, keepdim=True)], 1)
    expected = temperature ** 2 * (p_b * (p_b.log() - q_b.log())).sum(1).mean()
    torch.testing.assert_close(value, expected)
    assert value.item() < kd_loss(v, z, temperature).item()  # merging outcomes never adds divergence


def test_all_items_cached_is_exactly_the_full_kl_with_finite_gradients() -> None:
    v, z = logits(6).requires_grad_(), logits(7)
    top = z[:, 1:].topk(8, dim=1)
    rest = torch.full((5,), float("-inf"), dtype=z.dtype)
    value = cached_kd_loss(v, top.indices + 1, top.values, rest, 2.0)
    torch.testing.assert_close(value, kd_loss(v, z, 2.0))
    value.backward()
    assert torch.isfinite(v.grad[:, 1:]).all()


@pytest.mark.parametrize("positions", ("all", "last"))
def test_distilling_from_a_full_cache_matches_the_teacher_on_the_fly(positions: str) -> None:
    student, teacher = models(1)
    train = windows(1)
    cache = build_teacher_cache(teacher, train, top_k=N_ITEMS, temperature=2.0, batch_size=7, progress=False)
    assert cache.top_k == N_ITEMS - 1  # capped at the catalogue
    on_the_fly = distillation_loss(teacher, 2.0, positions=positions)
    cached = distillation_loss(teacher, 2.0, positions=positions, cache=cache)
    # batches padded differently from the cache's: the teacher counts positions from the first item
    for inputs, targets in train_batches(train, 9, torch.Generator().manual_seed(0)):
        torch.testing.assert_close(cached(student, inputs, targets), on_the_fly(student, inputs, targets),
                                   rtol=1e-4, atol=1e-5)


def test_a_small_cache_keeps_the_teachers_largest_logits() -> None:
    _, teacher = models(2)
    train = windows(2, n=5)
    cache = build_teacher_cache(teacher, train, top_k=4, temperature=1.0, progress=False)
    inputs = left_pad([train.items[0][:-1]])
    with torch.no_grad():
        full = teacher(inputs)[0, -1]
    items, values, rest = cache.lookup(prefix_keys(inputs)[:, -1])
    torch.testing.assert_close(values[0], full[1:].topk(4).values, rtol=1e-5, atol=1e-5)
    assert set(items[0].tolist()) == set((full[1:].topk(4).indices + 1).tolist())
    others = full[1:].clone()
    others[items[0] - 1] = float("-inf")
    torch.testing.assert_close(rest[0], others.logsumexp(0), rtol=1e-5, atol=1e-5)


def test_a_bound_on_logits_per_batch_gives_the_same_cache() -> None:
    """The cache does not depend on how its batches are cut: bounded to a handful of positions
    per batch (a 150k-item catalogue's case), every prefix keeps the same top-K."""
    _, teacher = models(3)
    train = windows(3, n=12)
    whole = build_teacher_cache(teacher, train, top_k=5, temperature=2.0, batch_size=64, progress=False)
    bounded = build_teacher_cache(teacher, train, top_k=5, temperature=2.0, batch_size=64, progress=False,
                                  max_logits=3 * teacher.n_items)
    assert np.array_equal(whole.keys, bounded.keys)
    torch.testing.assert_close(bounded.logits, whole.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bounded.rest_lse, whole.rest_lse, rtol=1e-5, atol=1e-5)


def test_batches_respect_rows_and_positions_and_cover_every_row() -> None:
    from recpress_utils.distill.teacher_cache import _batches

    assert _batches([2, 2, 2, 2, 9, 1], max_rows=3, max_positions=5) == [(0, 2), (2, 4), (4, 5), (5, 6)]
    assert _batches([1] * 7, max_rows=3, max_positions=100) == [(0, 3), (3, 6), (6, 7)]
    assert _batches([], 3, 5) == []


def test_a_prefix_outside_the_cache_is_an_error() -> None:
    student, teacher = models(3)
    cache = build_teacher_cache(teacher, windows(3), top_k=5, temperature=1.0, progress=False)
    loss = distillation_loss(teacher, 1.0, cache=cache)
    inputs, targets = batch(99)
    with pytest.raises(KeyError, match="not in the teacher cache"):
        loss(student, inputs, targets)
    with pytest.raises(ValueError, match="built at T = 1"):
        distillation_loss(teacher, 2.0, cache=cache)
    with pytest.raises(ValueError, match="nothing to cache"):
        build_teacher_cache(teacher, Sessions([np.array([3])], [np.ones(1, dtype=np.int8)]), 5, 1.0, progress=False)


def _cached_case(seed: int, k: int = 3, temperature: float = 2.0, n_items: int = 9):
    """Student and teacher logits (padding column 0) and the teacher's top-K cache of them."""
    v, z = logits(seed, rows=4, n_items=n_items), logits(seed + 1, rows=4, n_items=n_items)
    top = z[:, 1:].topk(k, dim=1)
    rest = (z[:, 1:] / temperature).scatter(1, top.indices, float("-inf")).logsumexp(1)
    return v, top.indices + 1, top.values, rest


def test_a_pool_of_every_item_once_gives_the_exact_cached_loss() -> None:
    """With each item pooled once and N q_j = 1 the bucket's estimate is its exact mass."""
    v, items, values, rest = _cached_case(11)
    pool = torch.arange(1, v.shape[1])
    value = sampled_cached_kd_loss(v.gather(1, items), items, v[:, pool].clone(), pool,
                                   torch.zeros(len(pool), dtype=v.dtype), values, rest, 2.0)
    torch.testing.assert_close(value, cached_kd_loss(v, items, values, rest, 2.0))


def test_popularity_pools_estimate_the_cached_loss() -> None:
    """Averaged over pools drawn by popularity, the logQ-corrected estimate lands near the exact
    loss (the log of an unbiased estimate is biased low by O(1/N); 2,000 draws here)."""
    n_items = 41
    v, items, values, rest = _cached_case(12, k=5, n_items=n_items)
    exact = cached_kd_loss(v, items, values, rest, 2.0).item()
    pool = PopularityPool(torch.arange(n_items, 0, -1).double(), n_negatives=2000, uniform_mix=0.1, seed=0)
    estimates = []
    for _ in range(20):
        drawn = pool.draw()
        estimates.append(sampled_cached_kd_loss(v.gather(1, items), items, v[:, drawn].clone(), drawn,
                                                pool.log_expected_count[drawn].double(), values, rest, 2.0).item())
    assert abs(np.mean(estimates) - exact) < 0.03 * exact, (np.mean(estimates), exact)


def test_pooled_items_are_found_in_each_rows_items_by_brute_force() -> None:
    """Every copy of a pooled item is marked, items absent from the pool or repeated in a row
    change nothing, and a pool drawn from a catalogue larger than any row's items works."""
    rng = np.random.default_rng(5)
    for n_items, rows, k, n in [(9, 6, 3, 40), (500, 30, 20, 64), (4, 3, 1, 2)]:
        pool = torch.from_numpy(rng.integers(1, n_items, size=n))
        items = torch.from_numpy(rng.integers(1, n_items, size=(rows, k)))
        items[0, 0] = pool[-1]  # a hit on a pooled item's last copy
        expected = torch.tensor([[int(p) in set(row.tolist()) for p in pool] for row in items])
        assert torch.equal(pooled_in_rows(pool, items), expected)
    pool = torch.tensor([3, 3, 7, 2, 3])
    assert pooled_in_rows(pool, torch.tensor([[3, 3], [9, 1]])).tolist() == [
        [True, True, False, False, True], [False] * 5]
    assert pooled_in_rows(pool, torch.zeros(0, 4, dtype=torch.long)).shape == (0, 5)


def test_a_row_whose_pool_lies_in_its_top_k_drops_the_bucket_with_finite_gradients() -> None:
    v, items, values, rest = _cached_case(13)
    v.requires_grad_()
    pool = items[0].clone()  # row 0: every pooled item is one of its top-K
    value = sampled_cached_kd_loss(v.gather(1, items), items, v[:, pool], pool,
                                   torch.zeros(len(pool), dtype=v.dtype), values, rest, 2.0)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(v.grad[:, 1:]).all()


def test_distilling_with_a_sampled_student_pool_lowers_the_exact_cached_loss() -> None:
    student, teacher = models(4)
    train = windows(4, n=60)
    cache = build_teacher_cache(teacher, train, top_k=5, temperature=1.0, progress=False)
    pool = PopularityPool(torch.ones(N_ITEMS), n_negatives=8, seed=0)
    sampled = distillation_loss(teacher, 1.0, cache=cache, pool=pool)
    exact = distillation_loss(teacher, 1.0, cache=cache)
    assert sampled.generator is pool.generator  # saved in checkpoints: an exact resume
    batches = list(train_batches(train, 16, torch.Generator().manual_seed(0)))
    with torch.no_grad():
        before = sum(exact(student, i, t).item() for i, t in batches)
    student.train()
    optimiser = torch.optim.Adam(student.parameters(), lr=0.01)
    for _ in range(15):
        for inputs, targets in batches:
            optimiser.zero_grad()
            sampled(student, inputs, targets).backward()
            optimiser.step()
    student.eval()
    with torch.no_grad():
        after = sum(exact(student, i, t).item() for i, t in batches)
    assert after < 0.8 * before, (before, after)
    with pytest.raises(ValueError, match="needs the teacher cache"):
        distillation_loss(teacher, 1.0, pool=pool)


def test_the_hard_term_with_a_pool_is_the_sampled_softmax_over_the_same_pool() -> None:
    student, teacher = models(5)
    train = windows(5)
    cache = build_teacher_cache(teacher, train, top_k=4, temperature=1.0, progress=False)
    inputs, targets = next(iter(train_batches(train, 16, torch.Generator().manual_seed(0))))
    pools = [PopularityPool(torch.ones(N_ITEMS), n_negatives=8, seed=3) for _ in range(3)]
    kd = distillation_loss(teacher, 1.0, cache=cache, pool=pools[0])(student, inputs, targets)
    both = distillation_loss(teacher, 1.0, cache=cache, pool=pools[1], hard_weight=0.5)(student, inputs, targets)
    negatives = pools[2].draw()
    mask = targets != 0
    hard = sampled_softmax_loss(student, output_states(student, student.hidden(inputs)[mask]), targets[mask],
                                negatives, pools[2].log_expected_count)
    torch.testing.assert_close(both, kd + 0.5 * hard)



def test_one_pass_caches_every_temperature_as_separate_builds_would(tmp_path) -> None:
    """The pipeline runs the teacher once per seed for all of its students' temperatures: each
    temperature's cache is the one a build at that temperature alone gives, and survives a round
    trip through the file the distill and kd jobs read."""
    _, teacher = models(4)
    train = windows(4, n=12)
    caches = build_teacher_caches(teacher, train, top_k=5, temperatures=[2, 0.5, 1], progress=False)
    assert sorted(caches) == [0.5, 1.0, 2.0]
    path = tmp_path / "cache.pt"
    save_teacher_caches(caches, path, {"seconds": 1.5})
    assert [p.name for p in tmp_path.iterdir()] == ["cache.pt"], "no temporary file is left behind"
    for temperature in (0.5, 1.0, 2.0):
        alone = build_teacher_cache(teacher, train, top_k=5, temperature=temperature, progress=False)
        loaded, info = load_teacher_cache(path, temperature)
        assert info == {"seconds": 1.5}
        for cache in (caches[temperature], loaded):
            assert cache.temperature == temperature and np.array_equal(cache.keys, alone.keys)
            assert torch.equal(cache.items, alone.items) and torch.equal(cache.logits, alone.logits)
            assert torch.equal(cache.rest_lse, alone.rest_lse)
    with pytest.raises(ValueError, match=r"cache.pt: teacher cache built for T in \[0.5, 1.0, 2.0\], not 5"):
        load_teacher_cache(path, 5)


def test_the_run_reads_the_cache_file_and_records_its_build(tmp_path) -> None:
    """A run given the pipeline's cache file distils from it (no second teacher pass) and records
    the build's seconds and the file; one that asks for another K is refused."""
    from recpress_utils.runs import _teacher_cache
    from recpress_utils.train import TrainConfig

    _, teacher = models(5)
    train = windows(5, n=12)
    cfg = TrainConfig(max_len=10)
    built, built_info = _teacher_cache(teacher, train, cfg, 0, 5, 1.0, None, progress=False)
    assert set(built_info) == {"top_k", "prefixes", "seconds"}
    path = tmp_path / "t.pt"
    save_teacher_caches({1.0: built}, path, {"seconds": 12.0})
    read, info = _teacher_cache(None, train, cfg, 0, 5, 1.0, path, progress=False)
    assert info == {"top_k": 5, "prefixes": len(built.keys), "seconds": 12.0, "file": str(path)}
    assert torch.equal(read.logits, built.logits)
    with pytest.raises(ValueError, match="keeps the top 5, the run asks for 7"):
        _teacher_cache(None, train, cfg, 0, 7, 1.0, path, progress=False)


def test_one_cache_file_per_trained_teacher_and_seed_at_every_students_temperature() -> None:
    """With `distill.top_k`, the paper's students and the toolkit's cache-reading methods of a
    teacher share one file; methods that read no cache, same-size student teachers (born-again)
    and peers trained alongside get none, and neither does a profile without `top_k`."""
    from recpress_utils import config as rc

    plain = rc.load_config("config/tiny.yaml")
    teacher = "results/tiny/synthetic/runs/mixed_attention-n2v_s43/model.pt"
    assert rc.teacher_cache_file(plain, teacher) == ""
    cfg = rc.load_config("config/tiny.yaml", {"distill": {"top_k": 20}})
    assert rc.teacher_cache_file(cfg, teacher) == "results/tiny/synthetic/teacher_cache/mixed_attention-n2v_s43.pt"
    assert rc.teacher_cache_file(cfg, teacher, "rd") == rc.teacher_cache_file(cfg, teacher, "soft")
    for method in ("hint", "dml", "control"):
        assert rc.teacher_cache_file(cfg, teacher, method) == "", method
    assert rc.teacher_cache_file(cfg, "results/tiny/synthetic/kd/e16/control_s42/model.pt", "born_again") == ""
    multi = rc.kd_teacher_caches(cfg, "multi", rc.kd_teachers(cfg, "multi", "e64", 42))
    assert [path.split("/")[-1] for path in multi] == ["mixed_attention-n2v_s42.pt", "sasrec_s42.pt", "gru4rec_s42.pt"]
    assert rc.kd_teacher_caches(cfg, "rd", rc.kd_teachers(cfg, "rd", "e64", 42))[0].endswith("mixed_attention-n2v_s42.pt")
    assert rc.kd_teacher_caches(cfg, "hint", rc.kd_teachers(cfg, "hint", "e64", 42)) == [""]
    assert rc.kd_teacher_caches(plain, "multi", rc.kd_teachers(plain, "multi", "e64", 42)) == ["", "", ""]
    assert rc.cache_temperatures(cfg) == [0.5, 1.0, 2.0, 5.0]
    hot = rc.load_config("config/tiny.yaml", {"distill": {"top_k": 20},
                                              "kd": {"methods": {"soft": {"method": "soft_labels",
                                                                          "settings": {"temperature": 3}}}}})
    assert rc.cache_temperatures(hot) == [0.5, 1.0, 2.0, 3.0, 5.0]
    resolved = rc.resolve("05_distill", {"temperature": 2.0}, None, verbose=False)
    assert resolved["teacher_cache"] == "", "the default profile distils on the fly"
