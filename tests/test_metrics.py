"""Tests for recpress_utils.metrics: hand-computed cases, ranx, and a brute-force reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ranx import Qrels, Run, evaluate

from recpress_utils.metrics import (
    KS,
    MetricAccumulator,
    compute_metrics,
    metric_names,
    per_session_metrics,
    target_ranks,
)


def _by_index_scores(b: int, n: int) -> torch.Tensor:
    """Scores s_j = -j, so item j has rank j; padding item 0 gets the highest score (0)."""
    return -torch.arange(n, dtype=torch.float64).repeat(b, 1)


def _expected_single(r: int) -> dict[str, float]:
    """The SPEC's single-item formulas, in metric_names() order."""
    out = {"MRR": 1 / r, "MRR@20": 1 / r if r <= 20 else 0.0}
    for k in KS:
        out[f"MAP@{k}"] = 1 / r if r <= k else 0.0
        out[f"NDCG@{k}"] = 1 / math.log2(r + 1) if r <= k else 0.0
        out[f"HR@{k}"] = 1.0 if r <= k else 0.0
    return {name: out[name] for name in metric_names()}


def _brute_force(scores: np.ndarray, targets: np.ndarray, ks=KS) -> dict[str, np.ndarray]:
    """Textbook per-session metrics from an explicit ranking, one session at a time; ties are
    pessimistic: within equal scores the relevant items come after all the others."""
    targets = targets.reshape(len(targets), -1)
    out = {name: np.zeros(len(scores)) for name in metric_names(ks)}
    for b, (s, t) in enumerate(zip(scores, targets)):
        items = np.arange(1, s.shape[0])
        rel = set(int(x) for x in t) - {0}
        is_rel = np.array([int(i) in rel for i in items])
        ranking = items[np.lexsort((items, is_rel, -s[1:]))]  # descending score, relevant last
        hits = np.array([int(i) in rel for i in ranking], dtype=float)
        for k in ks:
            h = hits[:k]
            precision = np.cumsum(h) / np.arange(1, len(h) + 1)
            out[f"MAP@{k}"][b] = np.sum(precision * h) / min(len(rel), k)
            discount = 1 / np.log2(np.arange(2, len(h) + 2))
            out[f"NDCG@{k}"][b] = np.sum(h * discount) / np.sum(discount[: min(len(rel), k)])
            out[f"HR@{k}"][b] = float(h.any())
        out["MRR"][b] = 1 / (np.argmax(hits) + 1)
        if "MRR@20" in out:
            out["MRR@20"][b] = out["MRR"][b] if np.argmax(hits) + 1 <= 20 else 0.0
    return out


def _random_sets(rng: np.random.Generator, b: int, n: int, max_rel: int, width: int) -> np.ndarray:
    """Rows of 1..max_rel distinct relevant ids, right-padded with 0 to ``width``."""
    t = np.zeros((b, width), dtype=np.int64)
    for i in range(b):
        m = rng.integers(1, max_rel + 1)
        t[i, :m] = rng.choice(np.arange(1, n), size=m, replace=False)
    return t


def _assert_metrics(got: dict[str, torch.Tensor], want: dict[str, np.ndarray | float]) -> None:
    assert list(got) == list(want)
    for name in want:
        np.testing.assert_allclose(got[name].numpy(), want[name], rtol=0, atol=1e-12, err_msg=name)


# --- hand-computed ---------------------------------------------------------------------------


def test_metric_names_order():
    assert metric_names() == [
        "MAP@1", "MAP@10", "MAP@20", "MAP@100",
        "NDCG@1", "NDCG@10", "NDCG@20", "NDCG@100",
        "HR@1", "HR@10", "HR@20", "HR@100",
        "MRR", "MRR@20",
    ]  # fmt: skip


@pytest.mark.parametrize("r", [1, 3, 11, 120])
def test_single_target_hand_computed(r):
    scores = _by_index_scores(1, 150)
    targets = torch.tensor([r])
    assert target_ranks(scores, targets).tolist() == [r]
    got = per_session_metrics(scores, targets)
    assert all(v.dtype == torch.float64 and v.shape == (1,) for v in got.values())
    _assert_metrics(got, {k: np.array([v]) for k, v in _expected_single(r).items()})


def test_single_target_exact_values():
    got = compute_metrics(_by_index_scores(4, 150), torch.tensor([1, 3, 11, 120]))
    assert got["MAP@10"] == pytest.approx((1 + 1 / 3) / 4, abs=1e-15)
    assert got["MAP@100"] == pytest.approx((1 + 1 / 3 + 1 / 11) / 4, abs=1e-15)
    assert got["NDCG@10"] == pytest.approx((1 + 0.5) / 4, abs=1e-15)
    assert got["NDCG@100"] == pytest.approx((1 + 0.5 + 1 / math.log2(12)) / 4, abs=1e-15)
    assert (got["HR@1"], got["HR@10"], got["HR@100"]) == (0.25, 0.5, 0.75)
    assert got["MRR"] == pytest.approx((1 + 1 / 3 + 1 / 11 + 1 / 120) / 4, abs=1e-15)


def test_ties_never_help_the_target():
    scores = torch.zeros(1, 10)
    # a constant scorer ranks every target last (9 real items), whatever its index
    assert target_ranks(scores.repeat(3, 1), torch.tensor([1, 4, 9])).tolist() == [9, 9, 9]
    # item 3 ties with items 2 and 5: both count above it, whatever their indices
    scores = torch.tensor([[0.0, 3.0, 1.0, 1.0, 0.5, 1.0]])
    assert target_ranks(scores, torch.tensor([3])).tolist() == [4]
    assert target_ranks(scores, torch.tensor([5])).tolist() == [4]
    assert target_ranks(scores, torch.tensor([1])).tolist() == [1]


def test_constant_scores_earn_nothing():
    """2,000 items, Zipf targets (the popular items low indices): ties must not hand a constant
    scorer the popularity ranking (tie-by-index gave NDCG@10 0.2255, equal to popularity's)."""
    rng = np.random.default_rng(0)
    n = 2001
    targets = torch.from_numpy(np.minimum(rng.zipf(1.3, size=5000), n - 1))
    got = compute_metrics(torch.zeros(len(targets), n), targets)
    assert got["HR@10"] == 0.0 and got["HR@100"] == 0.0 and got["NDCG@10"] == 0.0
    assert got["MRR"] == pytest.approx(1 / (n - 1))
    # a scorer that really orders by popularity (score -index) does earn
    popular = compute_metrics(-torch.arange(n, dtype=torch.float64).repeat(len(targets), 1), targets)
    assert popular["NDCG@10"] > 0.2


def test_set_mode_tied_relevant_items_take_the_last_places():
    # items 1..5; 2 and 4 relevant, tied with non-relevant 3 at the top: ranks 2 and 3
    scores = torch.tensor([[0.0, 0.0, 1.0, 1.0, 1.0, 0.5]])
    assert target_ranks(scores, torch.tensor([[2, 4]])).tolist() == [[2, 3]]
    assert target_ranks(scores, torch.tensor([[4, 2, 4]])).tolist() == [[2, 3, 0]]


def test_padding_item_never_counted():
    # padding has the highest score; the target is the best real item -> rank 1
    scores = torch.tensor([[100.0, 1.0, 5.0, 2.0]])
    assert target_ranks(scores, torch.tensor([2])).tolist() == [1]
    assert compute_metrics(scores, torch.tensor([2]))["HR@1"] == 1.0
    # -inf scores (e.g. masked items) tie among themselves, pessimistically; padding is skipped
    scores = torch.tensor([[5.0, 1.0, -math.inf, -math.inf, 2.0]])
    assert target_ranks(scores, torch.tensor([3])).tolist() == [4]
    assert target_ranks(scores, torch.tensor([2])).tolist() == [4]
    # padding at -inf tying with a -inf target still does not count (it is not ranked at all)
    scores = torch.tensor([[-math.inf, -math.inf, 1.0]])
    assert target_ranks(scores, torch.tensor([1])).tolist() == [2]


def test_set_mode_hand_computed():
    scores = _by_index_scores(2, 150)
    targets = torch.tensor([[2, 5, 0], [1, 2, 3]])  # ranks {2, 5} and {1, 2, 3}
    assert target_ranks(scores, targets).tolist() == [[2, 5, 0], [1, 2, 3]]
    got = per_session_metrics(scores, targets, ks=(1, 10, 100))
    idcg2 = 1 + 1 / math.log2(3)
    want = {
        "MAP@1": [0.0, 1.0],  # second row: 1 / min(3, 1) * P@1
        "MAP@10": [0.5 * (1 / 2 + 2 / 5), 1.0],
        "MAP@100": [0.5 * (1 / 2 + 2 / 5), 1.0],
        "NDCG@1": [0.0, 1.0],
        "NDCG@10": [(1 / math.log2(3) + 1 / math.log2(6)) / idcg2, 1.0],
        "NDCG@100": [(1 / math.log2(3) + 1 / math.log2(6)) / idcg2, 1.0],
        "HR@1": [0.0, 1.0],
        "HR@10": [1.0, 1.0],
        "HR@100": [1.0, 1.0],
        "MRR": [0.5, 1.0],
    }
    _assert_metrics(got, {k: np.array(v) for k, v in want.items()})
    assert got["MAP@10"][0].item() == pytest.approx(0.45, abs=1e-15)


def test_set_mode_duplicates_count_once():
    scores = _by_index_scores(1, 150)
    dup = torch.tensor([[2, 5, 5, 0, 2]])
    assert target_ranks(scores, dup).tolist() == [[2, 5, 0, 0, 0]]
    a = per_session_metrics(scores, dup)
    b = per_session_metrics(scores, torch.tensor([[5, 2]]))
    for name in metric_names():
        assert torch.equal(a[name], b[name]), name


def test_set_mode_with_one_relevant_equals_single_mode():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(40, 200, generator=gen)
    t = torch.randint(1, 200, (40,), generator=gen)
    single = per_session_metrics(scores, t)
    assert torch.equal(target_ranks(scores, t.unsqueeze(1)).squeeze(1), target_ranks(scores, t))
    for as_set in (t.unsqueeze(1), torch.stack([t, torch.zeros_like(t), t], dim=1)):
        got = per_session_metrics(scores, as_set)
        for name in metric_names():
            assert torch.equal(got[name], single[name]), name


# --- against ranx --------------------------------------------------------------------------


def _ranx_per_query(
    scores: np.ndarray, targets: np.ndarray, metrics: list[str]
) -> dict[str, np.ndarray]:
    """ranx per-query scores, with the padding item left out of the run."""
    targets = targets.reshape(len(targets), -1)
    qids = [f"q{i:04d}" for i in range(len(scores))]
    qrels = Qrels({q: {f"d{j}": 1 for j in set(t.tolist()) - {0}} for q, t in zip(qids, targets)})
    run = Run({q: {f"d{j}": float(s[j]) for j in range(1, len(s))} for q, s in zip(qids, scores)})
    evaluate(qrels, run, metrics, return_mean=False)
    return {m: np.array([run.scores[m][q] for q in qids]) for m in metrics}


def _tie_free_scores(seed: int, b: int, n: int) -> np.ndarray:
    # ranx breaks ties arbitrarily (unstable argsort), so only compare on tie-free rows
    s = np.random.default_rng(seed).standard_normal((b, n))
    assert all(len(np.unique(row[1:])) == n - 1 for row in s)
    return s


RANX_AGREE = [f"ndcg@{k}" for k in KS] + [f"hit_rate@{k}" for k in KS] + ["mrr"]
OURS = {f"ndcg@{k}": f"NDCG@{k}" for k in KS} | {f"hit_rate@{k}": f"HR@{k}" for k in KS}
OURS |= {"mrr": "MRR"} | {f"map@{k}": f"MAP@{k}" for k in KS}


def test_against_ranx_single_target():
    b, n = 50, 300
    scores = _tie_free_scores(1, b, n)
    targets = np.random.default_rng(2).integers(1, n, size=b)
    # put some targets near the top so every cut-off gets hits
    targets[:10] = np.argsort(-scores[:10, 1:], axis=1)[:, 0] + 1
    metrics = RANX_AGREE + [f"map@{k}" for k in KS]  # |R| = 1 <= k: ranx map@k coincides
    ref = _ranx_per_query(scores, targets, metrics)
    got = per_session_metrics(torch.from_numpy(scores), torch.from_numpy(targets))
    for m in metrics:
        np.testing.assert_allclose(got[OURS[m]].numpy(), ref[m], rtol=0, atol=1e-9, err_msg=m)
    assert got["HR@1"].sum() >= 10


def test_against_ranx_set_mode():
    b, n, max_rel = 50, 300, 8
    scores = _tie_free_scores(3, b, n)
    rng = np.random.default_rng(4)
    targets = _random_sets(rng, b, n, max_rel, width=10)
    # make relevant items rank high in half the rows so the cut-offs matter
    order = np.argsort(-scores[:, 1:], axis=1) + 1
    for i in range(0, b, 2):
        m = int((targets[i] > 0).sum())
        targets[i, :m] = rng.choice(order[i, :15], size=m, replace=False)
    metrics = RANX_AGREE + [f"map@{k}" for k in KS]
    ref = _ranx_per_query(scores, targets, metrics)
    got = per_session_metrics(torch.from_numpy(scores), torch.from_numpy(targets))
    for m in RANX_AGREE:
        np.testing.assert_allclose(got[OURS[m]].numpy(), ref[m], rtol=0, atol=1e-9, err_msg=m)
    # ranx map@k divides by |R|, ours by min(|R|, k): equal when |R| <= k, otherwise they differ
    # by exactly that factor. Checked as an exact relation, not by loosening the tolerance.
    n_rel = (targets > 0).sum(axis=1)
    assert (n_rel > 1).sum() > 10
    for k in KS:
        ours = got[f"MAP@{k}"].numpy()
        np.testing.assert_allclose(ours[n_rel <= k], ref[f"map@{k}"][n_rel <= k], rtol=0, atol=1e-9)
        factor = np.minimum(n_rel, k) / n_rel
        np.testing.assert_allclose(ours * factor, ref[f"map@{k}"], rtol=0, atol=1e-9)
    assert ((got["MAP@1"].numpy() > 0) & (n_rel > 1)).any()  # the differing case is exercised


# --- against a brute-force reference -------------------------------------------------------------


@pytest.mark.parametrize("mode", ["single", "set"])
@pytest.mark.parametrize("ties", [False, True])
def test_against_brute_force(mode, ties):
    rng = np.random.default_rng(5 + 2 * ties + (mode == "set"))
    b, n = 60, 250
    if ties:  # few distinct values plus masked (-inf) items: many ties
        scores = rng.integers(0, 6, size=(b, n)).astype(np.float64)
        scores[rng.random((b, n)) < 0.1] = -np.inf
    else:
        scores = rng.standard_normal((b, n))
    if mode == "single":
        targets = rng.integers(1, n, size=b)
    else:
        targets = _random_sets(rng, b, n, max_rel=20, width=25)
        targets[:, -1] = targets[:, 0]  # a duplicate in every row
    got = per_session_metrics(torch.from_numpy(scores), torch.from_numpy(targets))
    _assert_metrics(got, _brute_force(scores, targets))


def test_float32_and_custom_ks():
    rng = np.random.default_rng(9)
    scores = rng.standard_normal((30, 120)).astype(np.float32)
    targets = _random_sets(rng, 30, 120, max_rel=5, width=5)
    got = per_session_metrics(torch.from_numpy(scores), torch.from_numpy(targets), ks=(5, 20))
    _assert_metrics(got, _brute_force(scores, targets, ks=(5, 20)))


# --- accumulator ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["single", "set"])
def test_accumulator_equals_concatenation(mode):
    rng = np.random.default_rng(11)
    sizes = [7, 20, 1, 13]
    n = 150
    scores = torch.from_numpy(rng.standard_normal((sum(sizes), n)))
    if mode == "single":
        targets = torch.from_numpy(rng.integers(1, n, size=sum(sizes)))
    else:
        targets = torch.from_numpy(_random_sets(rng, sum(sizes), n, max_rel=6, width=6))
    acc = MetricAccumulator()
    assert acc.count == 0
    with pytest.raises(ValueError, match="no sessions"):
        acc.result()
    for s, t in zip(scores.split(sizes), targets.split(sizes)):
        acc.add(s, t)
    assert acc.count == sum(sizes)
    whole = compute_metrics(scores, targets)
    res = acc.result()
    assert list(res) == metric_names()
    for name in metric_names():
        assert res[name] == pytest.approx(whole[name], rel=0, abs=1e-12)
    per = acc.per_session()
    ref = per_session_metrics(scores, targets)
    for name in metric_names():
        assert per[name].dtype == np.float64
        np.testing.assert_array_equal(per[name], ref[name].numpy())


# --- errors and devices ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "targets", "match"),
    [
        (torch.zeros(2, 5), torch.tensor([1, 5]), "in \\[1, 4\\]"),
        (torch.zeros(2, 5), torch.tensor([0, 1]), "in \\[1, 4\\]"),
        (torch.zeros(2, 5), torch.tensor([[1, -1], [2, 0]]), "in \\[1, 4\\]"),
        (torch.zeros(2, 5), torch.tensor([1, 2, 3]), "targets must be"),
        (torch.zeros(2, 5), torch.ones(2, 2, 1, dtype=torch.long), "targets must be"),
        (torch.zeros(5), torch.tensor([1]), "scores must be"),
        (torch.zeros(2, 5), torch.tensor([1.0, 2.0]), "integer"),
        (torch.zeros(2, 5, dtype=torch.long), torch.tensor([1, 2]), "floating"),
        (torch.zeros(2, 5), torch.tensor([[1, 0], [0, 0]]), "at least one relevant"),
        (torch.tensor([[0.0, 1.0, math.nan]]), torch.tensor([1]), "NaN"),
        (torch.tensor([[0.0, 1.0, math.inf]]), torch.tensor([1]), "NaN or \\+inf"),
        # a NaN beside -inf in another row still surfaces (the check is one max over the batch)
        (torch.tensor([[-math.inf, math.nan, 1.0], [0.0, 1.0, 2.0]]), torch.tensor([2, 1]), "NaN"),
    ],
)
def test_invalid_inputs(scores, targets, match):
    with pytest.raises(ValueError, match=match):
        per_session_metrics(scores, targets)


def test_invalid_ks():
    with pytest.raises(ValueError, match="cut-offs"):
        per_session_metrics(torch.zeros(1, 5), torch.tensor([1]), ks=(0, 10))


def test_scores_requiring_grad():
    scores = torch.randn(3, 20, requires_grad=True)
    assert compute_metrics(scores, torch.tensor([1, 2, 3]))["MRR"] > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(13)
    scores = torch.from_numpy(rng.standard_normal((20, 100)))
    targets = torch.from_numpy(_random_sets(rng, 20, 100, max_rel=4, width=4))
    cpu = per_session_metrics(scores, targets)
    gpu = per_session_metrics(scores.cuda(), targets.cuda())
    for name in metric_names():
        assert gpu[name].is_cuda
        torch.testing.assert_close(gpu[name].cpu(), cpu[name], rtol=0, atol=1e-12)


def test_misses_count_in_the_denominator():
    """Sessions no model can hit (cold targets) are zeros in every metric, never skipped."""
    scores = _by_index_scores(4, 50)
    acc = MetricAccumulator()
    acc.add(scores, torch.tensor([1, 1, 1, 1]))
    acc.add_misses(4)
    assert acc.count == 8
    assert all(v == pytest.approx(0.5) for v in acc.result().values())
    with pytest.raises(ValueError):
        acc.add_misses(-1)


@pytest.mark.parametrize("n_rows", [7, 70])
@pytest.mark.parametrize("n_targets", [1, 2, 3, 40])
def test_count_at_least_is_the_brute_force_count_on_both_paths(n_targets, n_rows):
    """The one-pass count (many targets per row) and the blocked per-target count (70 rows span
    three CPU row blocks, the last one partial) equal R comparisons, with ties and -inf."""
    from recpress_utils.metrics import CPU_ROW_BLOCK, count_at_least

    assert n_rows < CPU_ROW_BLOCK or n_rows % CPU_ROW_BLOCK
    gen = torch.Generator().manual_seed(n_targets)
    items = torch.randint(-5, 6, (n_rows, 300), generator=gen).float()
    items[:, :10] = float("-inf")
    thresholds = items.gather(1, torch.randint(0, 300, (n_rows, n_targets), generator=gen))
    brute = torch.stack([(items >= thresholds[:, c:c + 1]).sum(1) for c in range(n_targets)], 1)
    counts = count_at_least(items, thresholds)
    assert counts.dtype == torch.int64 and torch.equal(counts, brute)
