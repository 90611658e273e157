"""Losses that score the positive against a few sampled items instead of the whole catalogue:
SASRec's original BCE with one negative, the sampled CE over a uniform pool, and the sampled
softmax over a popularity pool with the logQ correction (see the package docstring for when each
is worth it).

Negatives come from a ``torch.Generator`` seeded when the loss is built (drawn on the CPU, then
moved), so a run is deterministic given its seed; each factory's loss carries it as
``loss.generator``, whose state training checkpoints save.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from recpress_utils.losses.common import LossFn, scores_for, target_states
from recpress_utils.sequences import PAD


def one_negative_per_positive(positives: Tensor, n_items: int,
                              generator: torch.Generator) -> Tensor:
    """One uniform negative per positive, never equal to it: ``(M,)`` in ``1..n_items-1``."""
    if n_items < 3:
        raise ValueError("one negative other than the positive needs n_items >= 3")
    r = torch.randint(1, n_items - 1, positives.shape, generator=generator).to(positives.device)
    return r + (r >= positives).long()


def bce_one_negative(seed: int = 0, positions: Literal["all", "last"] = "all") -> LossFn:
    """Original SASRec loss: binary cross-entropy on the positive and one sampled negative."""
    generator = torch.Generator().manual_seed(seed)

    def loss(model: torch.nn.Module, inputs: Tensor, targets: Tensor) -> Tensor:
        hidden, positives = target_states(model, inputs, targets, positions)
        negatives = one_negative_per_positive(positives, model.n_items, generator)
        scores = scores_for(model, hidden, torch.stack([positives, negatives], dim=1))
        labels = torch.zeros_like(scores)
        labels[:, 0] = 1.0
        # sum of the two terms per positive, mean over positives
        return F.binary_cross_entropy_with_logits(scores, labels, reduction="sum") / len(scores)

    loss.generator = generator  # its state is saved in training checkpoints (exact resume)
    return loss


def sampled_softmax_loss(model: torch.nn.Module, hidden: Tensor, positives: Tensor,
                         negatives: Tensor, log_expected_count: Tensor | None = None) -> Tensor:
    """Cross-entropy of ``positives (M,)`` against themselves plus the shared ``negatives
    (N,)``; a negative equal to a row's positive is masked out of that row.

    ``log_expected_count`` ``(n_items,)``: when given, ``log(N q_j)`` is subtracted from the
    logit of every candidate j, positive and negatives alike (the logQ correction, see
    :func:`sampled_softmax`); None leaves the logits as they are (uniform pools need none).
    The ``(M, N)`` negative scores are corrected and masked in place: with thousands of
    negatives each out-of-place pass over them costs a third to a half of one of the loss's
    matrix products (profiled at 2,048 negatives).
    """
    pos = scores_for(model, hidden, positives[:, None])
    neg = scores_for(model, hidden, negatives)
    if log_expected_count is not None:
        pos = pos - log_expected_count[positives][:, None]
        neg.sub_(log_expected_count[negatives])
    neg.masked_fill_(negatives[None, :] == positives[:, None], float("-inf"))
    logits = torch.cat([pos, neg], dim=1)
    return F.cross_entropy(logits, torch.zeros_like(positives))


def sampled_cross_entropy(n_negatives: int = 100, seed: int = 0,
                          positions: Literal["all", "last"] = "all") -> LossFn:
    """Softmax over the positive and ``n_negatives`` uniform negatives shared by the batch."""
    if n_negatives < 1:
        raise ValueError(f"n_negatives must be >= 1, got {n_negatives}")
    generator = torch.Generator().manual_seed(seed)

    def loss(model: torch.nn.Module, inputs: Tensor, targets: Tensor) -> Tensor:
        hidden, positives = target_states(model, inputs, targets, positions)
        negatives = torch.randint(1, model.n_items, (n_negatives,),
                                  generator=generator).to(positives.device)
        return sampled_softmax_loss(model, hidden, positives, negatives)

    loss.generator = generator  # its state is saved in training checkpoints (exact resume)
    return loss


def popularity_distribution(item_counts: Tensor, uniform_mix: float = 0.0, alpha: float = 1.0) -> Tensor:
    """Sampling probabilities ``q (n_items,)`` of the negatives: training counts raised to
    ``alpha``, mixed with uniform over ``1..n_items-1`` with share ``uniform_mix``; the padding
    item gets 0.

    ``alpha`` flattens the popularity skew: 1 draws by counts, 0 uniformly over the items seen in
    training (the official GRU4Rec's ``sample_alpha``; its best YooChoose settings use 0.2).
    Every real item must have ``q > 0``: an item that is never drawn would have an infinite
    logQ correction when it is a positive (give it a count, or set ``uniform_mix > 0``).
    """
    if not 0.0 <= uniform_mix <= 1.0:
        raise ValueError(f"uniform_mix must be in [0, 1], got {uniform_mix}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    counts = torch.as_tensor(item_counts, dtype=torch.float64).clone()
    if counts.dim() != 1 or len(counts) < 2 or (counts < 0).any() or counts[1:].sum() <= 0:
        raise ValueError("item_counts must be a 1-D tensor of counts >= 0 per item id "
                         "(padding first) with a positive total")
    counts[PAD] = 0.0
    if alpha != 1.0:
        counts = torch.where(counts > 0, counts ** alpha, counts)  # 0 ** 0 would make unseen items drawable
    uniform = torch.ones_like(counts)
    uniform[PAD] = 0.0
    probs = (1.0 - uniform_mix) * counts / counts.sum() + uniform_mix * uniform / uniform.sum()
    if (probs[1:] == 0).any():
        raise ValueError(f"{int((probs[1:] == 0).sum())} item(s) have count 0 and could never "
                         "be drawn; set uniform_mix > 0")
    return probs


def sampled_softmax(item_counts: Tensor, n_negatives: int = 2048, uniform_mix: float = 0.0,
                    seed: int = 0, positions: Literal["all", "last"] = "all", alpha: float = 1.0) -> LossFn:
    """Sampled softmax with the logQ correction over one pool of ``n_negatives`` items per batch,
    drawn with replacement from :func:`popularity_distribution` ``q`` (``item_counts``: the
    training count of every item id, ``items.parquet``'s ``train_count``).

    Popular items are the negatives the model confuses with the positive, so they teach most;
    but drawn by popularity they appear ``N q_j`` times per pool on average, and the uncorrected
    softmax over the pool then pushes popular items down ``N q_j`` times too hard (a model trained
    so ranks popular items too low). Subtracting ``log(N q_j)`` from each pooled logit makes
    ``sum_{j in pool} exp(o_j - log(N q_j))`` an unbiased estimate of the sum of ``exp(o_j)`` over
    all items, i.e. the full softmax's normaliser (Bengio & Senecal 2008).

    The positive gets the same correction, ``o_pos - log(N q_pos)``: the standard choice of
    Jean et al. 2015 (TensorFlow's ``sampled_softmax_loss``, ``subtract_log_q``) and Yi et al.
    2019 (whose eq. 3 corrects every in-batch logit, the positive's included). The loss is then
    the cross-entropy of "which candidate of ``{positive} + pool`` is the true next item"; by
    Bayes' rule that posterior is proportional to ``P(j | session) / q_j``, so corrected logits
    ``o_j - log q_j`` are minimised where ``softmax(o)`` is the true next-item distribution,
    the full softmax's optimum (exactly so but for the removed accidental hits). That holds at
    the optimum, not per example: a rare positive (``N q_pos < 1``) has its logit raised and so
    a smaller gradient than under the full softmax. Khrylchenko et al. 2024 ("Correcting the
    LogQ Correction") treat the positive differently for that reason; this loss keeps the
    standard form.

    Pooled items equal to a row's positive are removed from that row (accidental hits).
    ``alpha`` flattens the sampling distribution (:func:`popularity_distribution`); the
    correction uses the flattened ``q``, so the estimate stays unbiased.
    """
    pool = PopularityPool(item_counts, n_negatives, uniform_mix, seed, alpha)

    def loss(model: torch.nn.Module, inputs: Tensor, targets: Tensor) -> Tensor:
        pool.check(model)
        hidden, positives = target_states(model, inputs, targets, positions)
        negatives = pool.draw(positives.device)
        return sampled_softmax_loss(model, hidden, positives, negatives,
                                    pool.log_expected_count.to(positives.device))

    loss.generator = pool.generator  # its state is saved in training checkpoints (exact resume)
    return loss


class PopularityPool:
    """One pool of ``n_negatives`` items per batch, drawn with replacement from
    :func:`popularity_distribution` (``item_counts``, ``uniform_mix``, ``alpha``), with each item's
    ``log_expected_count = log(N q_j)``, the logQ correction (:func:`sampled_softmax`). Shared by
    the sampled losses here and the sampled distillation loss (:mod:`recpress_utils.distill`)."""

    def __init__(self, item_counts: Tensor, n_negatives: int = 2048, uniform_mix: float = 0.0,
                 seed: int = 0, alpha: float = 1.0) -> None:
        if n_negatives < 1:
            raise ValueError(f"n_negatives must be >= 1, got {n_negatives}")
        self.n_negatives = n_negatives
        self.probs = popularity_distribution(item_counts, uniform_mix, alpha)
        # -inf for the padding item only: it is never drawn and never a positive
        self.log_expected_count = torch.log(n_negatives * self.probs).float()
        self.generator = torch.Generator().manual_seed(seed)

    def check(self, model: torch.nn.Module) -> None:
        """A clear error when the counts and ``model`` disagree on the item ids."""
        if model.n_items != len(self.probs):
            raise ValueError(f"item_counts cover {len(self.probs)} item ids, the model has "
                             f"{model.n_items}")

    def draw(self, device: torch.device | str = "cpu") -> Tensor:
        """The next pool, ``(n_negatives,)`` item ids on ``device``."""
        return torch.multinomial(self.probs, self.n_negatives, replacement=True,
                                 generator=self.generator).to(device)
