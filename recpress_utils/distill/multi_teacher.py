"""Multi-teacher soft labels: the student learns the weighted average of several teachers'
softened next-item distributions (for example Mixed Attention, SASRec and GRU4Rec together).

``p = sum_t w_t softmax(z_t / T)`` (weights normalised to sum 1; equal by default) replaces the one
teacher's distribution of :mod:`.soft_labels`: the term is ``T^2 * KL(p || softmax(v / T))`` over
the catalogue (padding left out), at every position with a target. The teachers run on the fly
on the fly, or, on a large catalogue (``distill.top_k``), from each teacher's cached top-K: the
mixture is then taken over the union of the teachers' top-K items plus one bucket, "any other
item" (:func:`mixture_outcomes`), and the student's side is its full softmax or, with
``distill.negatives``, the union plus a sampled pool, as one teacher's cached soft labels are
(:mod:`.teacher_cache`).

The cached mixture is exact when each cache holds every item. Otherwise teacher t's probability of
an item that is in another teacher's top-K but not in its own is unknown (it lies in t's bucket,
below t's K-th probability); it is left in the bucket, so the union's items get at most
``sum_t w_t * (their count outside t's top-K) * p_t(K-th)`` too little mass and the bucket that much
too much.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recpress_utils.distill.base import Distiller, logits_at
from recpress_utils.distill.teacher_cache import TeacherCache, prefix_keys, sampled_student_log_probs
from recpress_utils.losses import LossFn, PopularityPool, output_states, scores_for


def mixture_kd_loss(student_logits: Tensor, teacher_logits: Sequence[Tensor], weights: Tensor,
                    temperature: float) -> Tensor:
    """``T^2 * KL(sum_t w_t softmax(z_t / T) || softmax(v / T))`` averaged over rows; logits
    ``(M, n_items)`` with column 0 the padding item, which is left out."""
    if student_logits.shape[0] == 0:
        return student_logits.sum()
    log_q = F.log_softmax(student_logits[:, 1:] / temperature, dim=-1)
    p = sum(w * F.softmax(z[:, 1:].to(log_q.dtype) / temperature, dim=-1) for w, z in zip(weights, teacher_logits))
    kl = (p * (p.clamp_min(torch.finfo(p.dtype).tiny).log() - log_q)).sum(dim=1).mean()
    return temperature ** 2 * kl


def mixture_outcomes(looked_up: Sequence[tuple[Tensor, Tensor, Tensor]], weights: Tensor,
                     temperature: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The weighted mixture of several teachers' cached (K + 1)-way distributions, over the union
    of their top-K items and one bucket.

    ``looked_up``: per teacher, ``(items (M, K_t), logits (M, K_t), rest_lse (M,))`` of the same M
    prefixes (:meth:`TeacherCache.lookup`); ``weights`` sum to 1. Returns ``items (M, W)`` (W =
    sum of K_t; each row sorted, an item repeated where several teachers list it), ``p (M, W)``
    (the mixture's probability at each item's first entry, 0 at its repeats), ``first (M, W)``
    (True at first entries) and ``p_rest (M,)``, the mixture's mass outside the union. ``p`` and
    ``p_rest`` sum to 1 per row."""
    items, probs, p_rest = [], [], 0.0
    for (top_items, top_logits, rest_lse), w in zip(looked_up, weights):
        z = top_logits / temperature
        log_norm = torch.logaddexp(z.logsumexp(dim=1), rest_lse.to(z.dtype))
        items.append(top_items)
        probs.append(w * (z - log_norm[:, None]).exp())
        p_rest = p_rest + w * (rest_lse.to(z.dtype) - log_norm).exp()
    items, order = torch.cat(items, dim=1).sort(dim=1)
    p = torch.cat(probs, dim=1).gather(1, order)
    first = torch.ones_like(items, dtype=torch.bool)
    first[:, 1:] = items[:, 1:] != items[:, :-1]
    group = first.long().cumsum(dim=1) - 1  # each entry's item, numbered within its row
    merged = torch.zeros_like(p).scatter_add_(1, group, p)
    return items, torch.where(first, merged.gather(1, group), torch.zeros_like(p)), first, p_rest


def mixture_kl(p: Tensor, p_rest: Tensor, log_q: Tensor, log_q_rest: Tensor, temperature: float,
               keep_rest: Tensor | None = None) -> Tensor:
    """``T^2 * KL(p || q)`` over a row's outcomes (entries with ``p`` 0, such as repeats, drop out)
    and its bucket, averaged over rows. Rows where ``keep_rest`` is False (the student's bucket
    unknown) drop the bucket and renormalise ``p`` over the union."""
    if keep_rest is not None:
        p_rest = torch.where(keep_rest, p_rest, torch.zeros_like(p_rest))
        p = p / (p.sum(dim=1) + p_rest).clamp_min(torch.finfo(p.dtype).tiny)[:, None]
    log_p = torch.where(p > 0, p, torch.ones_like(p)).log()
    kl = torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(dim=1)
    log_p_rest = torch.where(p_rest > 0, p_rest, torch.ones_like(p_rest)).log()
    kl_rest = torch.where(p_rest > 0, p_rest * (log_p_rest - log_q_rest), torch.zeros_like(p_rest))
    return temperature ** 2 * (kl + kl_rest).mean()


class MultiTeacher(Distiller):
    """Soft labels from the ``weights``-averaged distributions of two or more teachers: on the fly,
    or from each teacher's cached top-K (``caches``, one per teacher, and the student's sampled
    ``pool`` when the run gives one)."""

    default_hard_weight = 0.0  # soft labels alone, as the one-teacher method
    n_teachers = None

    def __init__(self, teachers: Sequence[nn.Module], base_loss: LossFn, hard_weight: float | None = None,
                 weight: float = 1.0, positions: Literal["all", "last"] = "all", temperature: float = 1.0,
                 weights: Sequence[float] | None = None, caches: Sequence[TeacherCache] | None = None,
                 pool: PopularityPool | None = None) -> None:
        super().__init__(teachers, base_loss, hard_weight, weight, positions)
        if len(teachers) < 2:
            raise ValueError(f"multi-teacher distillation needs two or more teachers, got {len(teachers)}")
        weights = torch.ones(len(teachers)) if weights is None else torch.tensor(weights, dtype=torch.float32)
        if len(weights) != len(teachers) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"weights must be {len(teachers)} numbers >= 0 with a positive sum, got {weights.tolist()}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if caches is not None and (len(caches) != len(teachers) or any(
                abs(c.temperature - temperature) > 1e-9 for c in caches)):
            raise ValueError(f"one cache per teacher at T = {temperature:g}, got "
                             f"{[c.temperature for c in caches]} for {len(teachers)} teachers")
        if pool is not None and caches is None:
            raise ValueError("a sampled student pool needs the teachers' caches (distill.top_k)")
        self.temperature = float(temperature)
        self.caches, self.pool = caches, pool
        self.generator = None if pool is None else pool.generator  # saved in training checkpoints (exact resume)
        self.register_buffer("teacher_weights", weights / weights.sum(), persistent=False)

    def distil(self, student: Any, inputs: Tensor, targets: Tensor) -> Tensor:
        mask = self.target_mask(targets)
        if self.caches is not None:
            return self._cached(student, inputs, mask)
        with torch.no_grad():
            teacher_logits = [logits_at(teacher, inputs, mask) for teacher in self.teachers]
        return mixture_kd_loss(student.head(student.hidden(inputs)[mask]), teacher_logits,
                               self.teacher_weights, self.temperature)

    def _cached(self, student: Any, inputs: Tensor, mask: Tensor) -> Tensor:
        keys = prefix_keys(inputs)[mask.cpu().numpy()]
        looked_up = [tuple(t.to(inputs.device) for t in cache.lookup(keys)) for cache in self.caches]
        items, p, first, p_rest = mixture_outcomes(looked_up, self.teacher_weights.to(inputs.device),
                                                   self.temperature)
        hidden = student.hidden(inputs)[mask]
        if hidden.shape[0] == 0:
            return hidden.sum()
        if self.pool is None:
            log_q = F.log_softmax(student.head(hidden)[:, 1:] / self.temperature, dim=-1)
            index = items - 1
            log_q_rest = log_q.scatter(1, index, torch.finfo(log_q.dtype).min).logsumexp(dim=1)
            return mixture_kl(p, p_rest, log_q.gather(1, index), log_q_rest, self.temperature)
        self.pool.check(student)
        states = output_states(student, hidden)
        negatives = self.pool.draw(inputs.device)
        log_expected = self.pool.log_expected_count.to(inputs.device)[negatives]
        log_q, log_q_rest, estimated = sampled_student_log_probs(
            scores_for(student, states, items), items, scores_for(student, states, negatives), negatives,
            log_expected, self.temperature, counted=first)
        return mixture_kl(p, p_rest, log_q, log_q_rest, self.temperature, keep_rest=estimated)
