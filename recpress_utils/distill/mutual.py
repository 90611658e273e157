"""Online distillation by deep mutual learning, DML (Zhang et al., CVPR 2018): no trained teacher;
a peer (the teacher's architecture, from scratch) and the student train together, each on the true
next item and each towards the other's softened distribution.

Per batch, with student logits ``v`` and peer logits ``z`` at the positions with a target:

    ``loss = CE(v) + CE(z) + T^2 KL(softmax(z/T) || softmax(v/T)) + T^2 KL(softmax(v/T) || softmax(z/T))``

where each KL term moves only the model it is written for (the other side is detached), so one
backward pass gives each model its DML gradient and one optimiser steps both. The student's CE is
its own loss (``base_loss``, ``hard_weight`` 1); the peer's is ``peer_loss`` (its own training loss),
added unweighted; ``weight`` scales the two KL terms.
The peer is a submodule: ``fit`` optimises it and saves it in checkpoints; only the student is
evaluated and kept.

Both distributions span the whole catalogue, which at 37k items makes a step 30x dearer than the
student's own sampled softmax (2.9 s against 0.08 s on one thread, Yoochoose 1/64). With a
``pool`` (the run's ``distill.negatives``) each KL is taken instead over one shared candidate set
per row: its true next item and the batch's pooled negatives, every logit at T corrected by
``log(N q_j)`` as in :func:`recpress_utils.losses.sampled_softmax`, so that both softmaxes over the
candidates are self-normalised importance estimates of the full ones (a pooled copy of the row's
true item is masked in both, as an accidental hit).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recpress_utils.distill.base import Distiller, SharedHidden
from recpress_utils.distill.soft_labels import kd_loss
from recpress_utils.losses import LossFn, PopularityPool, output_states, scores_for


class MutualLearning(Distiller):
    """DML with one ``peer`` trained alongside the student (``T^2``-scaled KL both ways)."""

    n_teachers = 0

    def __init__(self, peer: nn.Module, peer_loss: LossFn, base_loss: LossFn, hard_weight: float | None = None,
                 weight: float = 1.0, positions: Literal["all", "last"] = "all", temperature: float = 1.0,
                 pool: PopularityPool | None = None) -> None:
        super().__init__((), base_loss, hard_weight, weight, positions)
        if not getattr(peer, "causal", True):
            raise ValueError(f"a bidirectional peer ({type(peer).__name__}) has no next-item logits at every "
                             "position from one pass; use a causal architecture")
        self.peer = peer
        self.peer_loss = peer_loss
        self.temperature = float(temperature)
        self.pool = pool
        self.generator = None if pool is None else pool.generator  # saved in training checkpoints (exact resume)

    def distil(self, student: Any, inputs: Tensor, targets: Tensor) -> Tensor:
        """The two KL terms; the peer's own loss is added unweighted by :meth:`forward`."""
        mask = self.target_mask(targets)
        peer_hidden = self.peer.hidden(inputs)
        self._peer_term = self.peer_loss(SharedHidden(self.peer, inputs, peer_hidden), inputs, targets)
        if self.pool is not None:
            return self._sampled(student, student.hidden(inputs)[mask], peer_hidden[mask], targets[mask])
        v = student.head(student.hidden(inputs)[mask])
        z = self.peer.head(peer_hidden[mask])
        return kd_loss(v, z.detach(), self.temperature) + kd_loss(z, v.detach(), self.temperature)

    def _sampled(self, student: Any, student_hidden: Tensor, peer_hidden: Tensor, labels: Tensor) -> Tensor:
        """Both KL terms over each row's true item and the batch's pooled negatives."""
        self.pool.check(student)
        negatives = self.pool.draw(labels.device)
        log_expected = self.pool.log_expected_count.to(labels.device)
        hit = negatives[None, :] == labels[:, None]
        v = candidate_logits(student, student_hidden, labels, negatives, log_expected, hit, self.temperature)
        z = candidate_logits(self.peer, peer_hidden, labels, negatives, log_expected, hit, self.temperature)
        return sampled_kl(v, z.detach(), self.temperature) + sampled_kl(z, v.detach(), self.temperature)

    def forward(self, student: nn.Module, inputs: Tensor, targets: Tensor) -> Tensor:
        value = super().forward(student, inputs, targets)
        return value + self._peer_term


def candidate_logits(model: nn.Module, hidden: Tensor, labels: Tensor, negatives: Tensor, log_expected_count: Tensor,
                     hit: Tensor, temperature: float) -> Tensor:
    """``(M, 1 + N)`` logits at ``temperature`` of each row's true item and the shared ``negatives``,
    less ``log(N q_j)``; accidental hits (``hit``: a pooled copy of the row's item) get the lowest
    finite value, so both models give them no mass and the KL no NaN."""
    hidden = output_states(model, hidden)
    true = scores_for(model, hidden, labels[:, None]).div(temperature) - log_expected_count[labels][:, None]
    pooled = scores_for(model, hidden, negatives).div_(temperature).sub_(log_expected_count[negatives])
    pooled.masked_fill_(hit, torch.finfo(pooled.dtype).min)
    return torch.cat([true, pooled], dim=1)


def sampled_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """``T^2 KL(softmax(teacher) || softmax(student))`` over the candidate columns, averaged over
    rows; the logits are already divided by T (:func:`candidate_logits`)."""
    if student_logits.shape[0] == 0:
        return student_logits.sum()
    kl = F.kl_div(F.log_softmax(student_logits, dim=1), F.log_softmax(teacher_logits, dim=1), log_target=True,
                  reduction="batchmean")
    return temperature ** 2 * kl
