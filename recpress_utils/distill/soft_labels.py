"""Soft labels: the teacher's softened next-item distribution (Hinton et al. 2015; the paper's
method, Section 3, eqs. 6-7; SPEC section 5).

With student logits v, teacher logits z and temperature T, the student minimises
``T^2 * KL(softmax(z / T) || softmax(v / T))`` (Hinton et al.'s scaling: the gradient w.r.t. v
is ``T * (softmax(v / T) - softmax(z / T))`` per row, so its size does not shrink as 1/T^2 and
the T values of the paper stay comparable). The paper uses the KL term alone; an added
cross-entropy with the true next item (``hard_weight``) is an ablation, default 0.

The teacher's logits are computed on the fly, without gradients and in eval mode, from the
very training batches the student sees (``fit`` only ever hands the loss training batches),
so no validation or test session is ever shown to the teacher for distillation. On a large
catalogue, ``distill.top_k`` replaces them by the teacher's top-K per training prefix, computed
once before training (:mod:`recpress_utils.distill.teacher_cache`), and ``distill.negatives`` replaces the
student's full softmax by the top-K plus a sampled, logQ-corrected pool for the rest (its cost then
does not grow with the catalogue either).
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recpress_utils.distill.base import Distiller, follow_device, freeze
from recpress_utils.distill.teacher_cache import TeacherCache, cached_kd_loss, prefix_keys, sampled_cached_kd_loss
from recpress_utils.losses import LossFn, PopularityPool, output_states, sampled_softmax_loss, scores_for


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """``T^2 * KL(softmax(z/T) || softmax(v/T))`` averaged over rows (z teacher, v student).

    Logits are ``(..., n_items)`` with column 0 the padding item (-inf in both models); it is
    dropped before the softmax, so -inf never meets -inf (no NaN) and it gets no gradient.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student and teacher logits differ in shape: "
                         f"{tuple(student_logits.shape)} vs {tuple(teacher_logits.shape)}")
    n_items = student_logits.shape[-1]
    v = student_logits[..., 1:].reshape(-1, n_items - 1)
    z = teacher_logits[..., 1:].reshape(-1, n_items - 1).to(v.dtype)
    if v.shape[0] == 0:
        return v.sum()  # no rows: zero, still attached to the graph
    log_q_student = F.log_softmax(v / temperature, dim=-1)
    log_p_teacher = F.log_softmax(z / temperature, dim=-1)
    kl = F.kl_div(log_q_student, log_p_teacher, log_target=True, reduction="batchmean")
    return temperature ** 2 * kl


def distillation_loss(teacher: nn.Module, temperature: float, hard_weight: float = 0.0,
                      positions: Literal["all", "last"] = "all", cache: TeacherCache | None = None,
                      pool: PopularityPool | None = None) -> LossFn:
    """A :data:`~recpress_utils.train.LossFn` for ``fit``: KD from the frozen ``teacher``.

    ``positions="all"`` distils at every position with a target (targets != 0), ``"last"`` at
    the last position of each row that has a target; the teacher is asked at exactly the same
    positions. ``hard_weight > 0`` adds ``hard_weight * cross_entropy(student, true next item)``.
    The teacher is frozen here (eval mode, no gradients) and kept in eval mode. With ``cache``
    (built at the same temperature) the teacher is not run: each position's target is its
    prefix's cached top-K (:func:`~recpress_utils.distill.teacher_cache.cached_kd_loss`); with ``pool`` as
    well, the student scores only those K items and one pool of negatives per batch
    (:func:`~recpress_utils.distill.teacher_cache.sampled_cached_kd_loss`; the hard term, if any, is the
    sampled softmax over the same pool).
    """
    if positions not in ("all", "last"):
        raise ValueError(f"positions must be 'all' or 'last', not {positions!r}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if hard_weight < 0:
        raise ValueError(f"hard_weight must be >= 0, got {hard_weight}")
    if cache is not None and cache.temperature != temperature:
        raise ValueError(f"the teacher cache was built at T = {cache.temperature:g}, not {temperature:g}")
    if pool is not None and cache is None:
        raise ValueError("a sampled student pool needs the teacher cache (distill.top_k): the "
                         "on-the-fly teacher computes every item's logit anyway")
    freeze(teacher)

    def loss(model: nn.Module, inputs: Tensor, targets: Tensor) -> Tensor:
        if cache is not None:
            return _cached(model, inputs, targets)
        teacher.eval()
        follow_device(teacher, inputs.device)
        if positions == "last":
            keep = targets[:, -1] != 0
            inputs, labels = inputs[keep], targets[keep, -1]
            student_logits = model.last_logits(inputs)
            with torch.no_grad():
                teacher_logits = teacher.last_logits(inputs)
        else:
            mask = targets != 0
            labels = targets[mask]
            student_logits = model.head(model.hidden(inputs)[mask])
            with torch.no_grad():
                teacher_logits = teacher.head(teacher.hidden(inputs)[mask])
        value = kd_loss(student_logits, teacher_logits, temperature)
        if hard_weight and labels.numel():
            value = value + hard_weight * F.cross_entropy(student_logits, labels)
        return value

    def _cached(model: nn.Module, inputs: Tensor, targets: Tensor) -> Tensor:
        mask = targets != 0
        if positions == "last":  # only each row's last position, as last_logits would
            last, mask = mask[:, -1], torch.zeros_like(mask)
            mask[:, -1] = last
        keys = prefix_keys(inputs)[mask.cpu().numpy()]
        items, logits, rest = (t.to(inputs.device) for t in cache.lookup(keys))
        hidden, labels = model.hidden(inputs)[mask], targets[mask]
        if pool is None:
            student_logits = model.head(hidden)
            value = cached_kd_loss(student_logits, items, logits, rest, temperature)
            if hard_weight and mask.any():
                value = value + hard_weight * F.cross_entropy(student_logits, labels)
            return value
        pool.check(model)
        hidden = output_states(model, hidden)
        negatives = pool.draw(inputs.device)
        log_expected = pool.log_expected_count.to(inputs.device)
        value = sampled_cached_kd_loss(scores_for(model, hidden, items), items, scores_for(model, hidden, negatives),
                                       negatives, log_expected[negatives], logits, rest, temperature)
        if hard_weight and mask.any():
            value = value + hard_weight * sampled_softmax_loss(model, hidden, labels, negatives, log_expected)
        return value

    if pool is not None:
        loss.generator = pool.generator  # its state is saved in training checkpoints (exact resume)
    return loss


class SoftLabels(Distiller):
    """Soft labels at ``temperature`` (:func:`distillation_loss`), from the teacher on the fly or,
    when the run built one, its cached top-K (``cache``, and the student's sampled ``pool``).
    ``hard_weight`` 0 by default (the paper's KL alone); 1 mixes in the student's own loss."""

    default_hard_weight = 0.0

    def __init__(self, teachers: Sequence[nn.Module], base_loss: LossFn, hard_weight: float | None = None,
                 weight: float = 1.0, positions: Literal["all", "last"] = "all", temperature: float = 1.0,
                 cache: TeacherCache | None = None, pool: PopularityPool | None = None) -> None:
        super().__init__(teachers, base_loss, hard_weight, weight, positions)
        self.temperature = float(temperature)
        self._soft = distillation_loss(self.teacher, self.temperature, 0.0, positions, cache, pool)
        self.generator = getattr(self._soft, "generator", None)  # the pool's, when sampled

    def distil(self, student: Any, inputs: Tensor, targets: Tensor) -> Tensor:
        return self._soft(student, inputs, targets)
