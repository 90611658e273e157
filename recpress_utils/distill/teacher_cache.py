"""The teacher's top-K predictions per training prefix, computed once, for distillation at scale.

On-the-fly distillation asks the teacher for a full-vocabulary distribution at every position
of every batch, every epoch: at 40k items that is a second forward pass and a (positions x 40k)
softmax per step, for targets that never change (the teacher is frozen). Instead, the teacher
is run once over the training windows before the student trains, and each training prefix keeps
its K largest logits with their items plus one number, the log of the remaining mass at the
run's temperature. The student is then distilled towards that (K + 1)-way distribution: the K
items, and "any other item" as one bucket (:func:`cached_kd_loss`). With K = all items this is
exactly the full KL of :func:`recpress_utils.distill.soft_labels.kd_loss` (tested).

A prefix is found by its content: a 64-bit rolling hash of its items, oldest first, in which
left padding (item 0) leaves no trace. The teachers here place positions from a session's first
item, so the same prefix gets the same prediction whatever the padding of its batch; the cache
is therefore what the on-the-fly teacher would say, computed once per run instead of per epoch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from recpress_utils.distill.base import logits_at
from recpress_utils.io import atomic_path
from recpress_utils.sequences import Sessions, left_pad

#: odd 64-bit multiplier of the rolling hash (from SplitMix64); arithmetic wraps modulo 2^64
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


def prefix_keys(inputs: Tensor) -> np.ndarray:
    """``(B, L)`` left-padded items -> ``(B, L)`` uint64 keys, key[b, t] identifying the prefix
    ``inputs[b, :t + 1]`` without its padding (``h = h * M + item``, from h = 0, so leading
    zeros keep h = 0; item ids are >= 1, so prefixes of different lengths differ)."""
    items = inputs.detach().cpu().numpy().astype(np.uint64)
    keys = np.zeros(items.shape, dtype=np.uint64)
    h = np.zeros(items.shape[0], dtype=np.uint64)
    with np.errstate(over="ignore"):
        for t in range(items.shape[1]):
            h = h * _MULTIPLIER + items[:, t]
            keys[:, t] = h
    return keys


@dataclass
class TeacherCache:
    """Top-K teacher predictions per distinct training prefix, rows sorted by ``keys``."""

    keys: np.ndarray  # (N,) uint64, sorted, unique
    items: Tensor  # (N, K) long: item ids (>= 1), largest logit first
    logits: Tensor  # (N, K) float: the teacher's logits of those items
    rest_lse: Tensor  # (N,) float: logsumexp of logits / T over every other item (-inf if none)
    temperature: float

    @property
    def top_k(self) -> int:
        return self.items.shape[1]

    def lookup(self, keys: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
        """(items, logits, rest_lse) of the prefixes ``keys``; a prefix never cached is an
        error (it would be distilled towards another prefix's prediction)."""
        rows = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        if len(keys) and not np.array_equal(self.keys[rows], keys):
            missing = int((self.keys[rows] != keys).sum())
            raise KeyError(f"{missing} of {len(keys)} training prefixes are not in the teacher cache:"
                           " it was built from other training windows")
        index = torch.from_numpy(rows.astype(np.int64))
        return self.items[index], self.logits[index], self.rest_lse[index]


def build_teacher_cache(teacher: nn.Module, windows: Sessions, top_k: int, temperature: float,
                        batch_size: int = 256, progress: bool = True, max_logits: int = 1 << 26) -> TeacherCache:
    """The cache of :func:`build_teacher_caches` at one ``temperature``."""
    return build_teacher_caches(teacher, windows, top_k, [temperature], batch_size, progress, max_logits)[
        float(temperature)]


@torch.no_grad()
def build_teacher_caches(teacher: nn.Module, windows: Sessions, top_k: int, temperatures: Sequence[float],
                         batch_size: int = 256, progress: bool = True,
                         max_logits: int = 1 << 26) -> dict[float, TeacherCache]:
    """Run the frozen ``teacher`` once over the training ``windows`` (already cut to the
    student's ``max_len``, as :func:`~recpress_utils.train.budget_windows` does) and keep,
    per distinct prefix with a target, its ``top_k`` items and logits and the rest's log-mass at
    each of ``temperatures``: one teacher pass serves every temperature (the top-K and its logits
    do not depend on T; only the bucket's mass does), and the caches share those tensors.
    Windows are visited by length, so each batch is padded little; a batch holds at most
    ``batch_size`` windows and ``max_logits`` logits (256 MB: 447 positions at 150k items), so
    the catalogue's size never decides the peak memory."""
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    temperatures = sorted({float(t) for t in temperatures})
    if not temperatures or temperatures[0] <= 0:
        raise ValueError(f"temperatures must be > 0, got {temperatures}")
    if not any(len(s) > 1 for s in windows.items):
        raise ValueError("no training window has a target: nothing to cache")
    teacher.eval()
    device = next(teacher.parameters()).device
    order = sorted(range(len(windows)), key=lambda i: len(windows.items[i]))
    parts: dict[str, list] = {"keys": [], "items": [], "logits": [], "rest": []}
    batches = _batches([len(windows.items[i]) - 1 for i in order], batch_size, max(1, max_logits // teacher.n_items))
    for start, stop in tqdm(batches, desc="teacher cache", disable=not progress):
        rows = [windows.items[i] for i in order[start:stop]]
        inputs = left_pad([s[:-1] for s in rows])
        mask = left_pad([s[1:] for s in rows], inputs.shape[1]) != 0
        logits = logits_at(teacher, inputs.to(device), mask.to(device))[:, 1:].float()
        k = min(top_k, logits.shape[1])
        top_logits, top_index = logits.topk(k, dim=1)
        rest = logits.scatter(1, top_index, float("-inf"))
        parts["keys"].append(prefix_keys(inputs)[mask.numpy()])
        parts["items"].append(top_index.cpu() + 1)
        parts["logits"].append(top_logits.cpu())
        parts["rest"].append(torch.stack([(rest / t).logsumexp(dim=1) for t in temperatures], dim=1).cpu())
    keys, first = np.unique(np.concatenate(parts["keys"]), return_index=True)  # a shared prefix: one row
    index = torch.from_numpy(first.astype(np.int64))
    items, logits, rest = (torch.cat(parts[name])[index] for name in ("items", "logits", "rest"))
    items = items.long()
    return {t: TeacherCache(keys, items, logits, rest[:, j].contiguous(), t) for j, t in enumerate(temperatures)}


def save_teacher_caches(caches: Mapping[float, TeacherCache], path: str | Path, info: Mapping[str, Any]) -> None:
    """Write the caches of one teacher pass (:func:`build_teacher_caches`) to ``path`` with
    ``info`` (what built them: teacher, seed, seconds), atomically: a killed job leaves no
    half-written cache for the next job to trust."""
    first = next(iter(caches.values()))
    temperatures = sorted(caches)
    state = {"keys": torch.from_numpy(first.keys.view(np.int64)), "items": first.items.int(),
             "logits": first.logits, "temperatures": torch.tensor(temperatures, dtype=torch.float64),
             "rest_lse": torch.stack([caches[t].rest_lse for t in temperatures], dim=1),
             "info": json.dumps(dict(info))}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_teacher_cache(path: str | Path, temperature: float) -> tuple[TeacherCache, dict[str, Any]]:
    """The cache at ``temperature`` from a file of :func:`save_teacher_caches`, and its info; a
    temperature the file was not built for is an error naming the ones it has."""
    state = torch.load(path, weights_only=True)
    temperatures = state["temperatures"].tolist()
    matches = [j for j, t in enumerate(temperatures) if abs(t - float(temperature)) < 1e-9]
    if not matches:
        raise ValueError(f"{path}: teacher cache built for T in {temperatures}, not {float(temperature):g}")
    cache = TeacherCache(state["keys"].numpy().view(np.uint64), state["items"].long(), state["logits"],
                         state["rest_lse"][:, matches[0]].contiguous(), float(temperatures[matches[0]]))
    return cache, json.loads(state["info"])


def _batches(targets: list[int], max_rows: int, max_positions: int) -> list[tuple[int, int]]:
    """Consecutive ``(start, stop)`` groups of rows with at most ``max_rows`` rows and, unless one
    row alone exceeds it, at most ``max_positions`` targets."""
    out, start, total = [], 0, 0
    for row, n in enumerate(targets):
        if row > start and (row - start == max_rows or total + n > max_positions):
            out.append((start, row))
            start, total = row, 0
        total += n
    return out + [(start, len(targets))] if targets else out


def cached_kd_loss(student_logits: Tensor, items: Tensor, teacher_logits: Tensor, rest_lse: Tensor,
                   temperature: float) -> Tensor:
    """``T^2 * KL(p || q)`` over K + 1 outcomes: the teacher's top-K items and "another item".

    ``p`` is the teacher's softmax at T restricted to those outcomes (the bucket's log-mass is
    ``rest_lse``); ``q`` is the student's full softmax at T, its bucket the mass of every item
    outside the teacher's K. ``student_logits`` is ``(N, n_items)`` with column 0 the padding
    item; ``items``, ``teacher_logits`` ``(N, K)``; ``rest_lse`` ``(N,)``. Averaged over rows.
    """
    if student_logits.shape[0] == 0:
        return student_logits.sum()
    log_q = F.log_softmax(student_logits[:, 1:] / temperature, dim=-1)
    index = items - 1
    log_q_top = log_q.gather(1, index)
    # the top-K masked by the lowest finite value, not -inf: with K = all items the bucket is
    # empty and a logsumexp over -inf alone would send NaN into the gradient
    log_q_rest = log_q.scatter(1, index, torch.finfo(log_q.dtype).min).logsumexp(dim=1)
    return _top_and_rest_kl(log_q_top, log_q_rest, teacher_logits, rest_lse, temperature)


def sampled_cached_kd_loss(top_scores: Tensor, items: Tensor, pool_scores: Tensor, pool: Tensor,
                           log_expected_count: Tensor, teacher_logits: Tensor, rest_lse: Tensor,
                           temperature: float) -> Tensor:
    """:func:`cached_kd_loss` with the student's bucket estimated from a sampled pool, so a
    step costs K + N dot products per position instead of one per catalogue item.

    ``top_scores (M, K)`` are the student's logits of the teacher's top-K ``items``;
    ``pool_scores (M, N)`` its logits of the shared ``pool (N,)``, drawn with replacement with
    ``N q_j`` expected copies of item j (``log_expected_count (N,)`` = ``log(N q_j)`` of each
    pooled item). The student's K + 1 probabilities come from :func:`sampled_student_log_probs`.
    A row whose every pooled item is in its top-K has no estimate of the bucket: its bucket term
    is left out, and its top-K are normalised among themselves. ``pool_scores`` is modified in
    place.
    """
    if top_scores.shape[0] == 0:
        return top_scores.sum()
    log_q_top, log_q_rest, estimated = sampled_student_log_probs(top_scores, items, pool_scores, pool,
                                                                 log_expected_count, temperature)
    return _top_and_rest_kl(log_q_top, log_q_rest, teacher_logits, rest_lse, temperature, keep_rest=estimated)


def sampled_student_log_probs(top_scores: Tensor, items: Tensor, pool_scores: Tensor, pool: Tensor,
                              log_expected_count: Tensor, temperature: float,
                              counted: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The student's log-probabilities at ``temperature`` of each row's ``items (M, K)`` and of
    "any other item", from their logits ``top_scores (M, K)`` and a sampled pool's.

    With pooled items that are among a row's ``items`` removed,
    ``sum_{j in pool} exp(v_j / T - log(N q_j))`` is an unbiased estimate of the bucket's
    unnormalised mass ``sum_{j not in items} exp(v_j / T)`` (the logQ correction of
    :func:`recpress_utils.losses.sampled_softmax`); the K + 1 probabilities are normalised with
    it. ``counted (M, K)``, when given, marks the entries that enter the normaliser: False for an
    item repeated in its row (several teachers' lists), which must count once. Returns
    ``(log_q_top (M, K), log_q_rest (M,), estimated (M,))``, ``estimated`` False where every pooled
    item is among the row's items (no estimate: ``log_q_rest`` -inf, the top normalised alone).
    ``pool_scores`` is modified in place."""
    lowest = torch.finfo(top_scores.dtype).min  # the lowest finite value, not -inf: no NaN in gradients
    z_top = top_scores / temperature
    z_pool = pool_scores.div_(temperature).sub_(log_expected_count)
    in_top = pooled_in_rows(pool, items)
    z_pool.masked_fill_(in_top, lowest)
    estimated = ~in_top.all(dim=1)
    log_rest = torch.where(estimated, z_pool.logsumexp(dim=1), torch.full_like(z_top[:, 0], float("-inf")))
    z_norm = z_top if counted is None else z_top.masked_fill(~counted, lowest)
    log_norm = torch.logaddexp(z_norm.logsumexp(dim=1), log_rest)
    return z_top - log_norm[:, None], log_rest - log_norm, estimated


def pooled_in_rows(pool: Tensor, items: Tensor) -> Tensor:
    """``(M, N)`` bool: whether pooled item ``pool[j]`` (``(N,)``, drawn with replacement, so an
    item may fill several slots) is among row m's ``items`` ``(M, K)``.

    The pool is shared by every row, so its distinct items get a slot each through one dense
    item -> slot table; each row's K items are looked up in it (M * K lookups, not M * N binary
    searches over the row's items: 6x faster at 600 rows, K = 100, N = 2048), marked per row and
    slot, and spread back to the N pooled positions with one gather."""
    if not items.numel():
        return torch.zeros(len(items), len(pool), dtype=torch.bool, device=pool.device)
    distinct, slot_of_position = torch.unique(pool, return_inverse=True)
    size = max(int(pool.max()), int(items.max())) + 1
    slot = torch.full((size,), -1, dtype=torch.long, device=pool.device)
    slot[distinct] = torch.arange(len(distinct), device=pool.device)
    found = slot[items.reshape(len(items), -1)]
    rows, columns = torch.nonzero(found >= 0, as_tuple=True)
    marked = torch.zeros(len(items), len(distinct), dtype=torch.uint8, device=pool.device)
    marked[rows, found[rows, columns]] = 1
    return marked.gather(1, slot_of_position.expand(len(items), -1)).bool()


def _top_and_rest_kl(log_q_top: Tensor, log_q_rest: Tensor, teacher_logits: Tensor, rest_lse: Tensor,
                     temperature: float, keep_rest: Tensor | None = None) -> Tensor:
    """``T^2 * KL(p || q)`` averaged over rows, from the student's log-probabilities of the top-K
    items and of the bucket; ``p`` from the cached teacher logits and bucket log-mass. Rows where
    ``keep_rest`` is False (the student's bucket unknown) drop the bucket and renormalise ``p``
    over the top-K."""
    z = teacher_logits.to(log_q_top.dtype) / temperature
    rest_lse = rest_lse.to(log_q_top.dtype)
    if keep_rest is not None:
        rest_lse = torch.where(keep_rest, rest_lse, torch.full_like(rest_lse, float("-inf")))
    log_norm = torch.logaddexp(z.logsumexp(dim=1), rest_lse)
    log_p_top, log_p_rest = z - log_norm[:, None], rest_lse - log_norm
    kl_top = (log_p_top.exp() * (log_p_top - log_q_top)).sum(dim=1)
    p_rest = log_p_rest.exp()
    kl_rest = torch.where(p_rest > 0, p_rest * (log_p_rest - log_q_rest), torch.zeros_like(p_rest))
    return temperature ** 2 * (kl_top + kl_rest).mean()
