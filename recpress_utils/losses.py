"""SASRec's three training losses (lecture 003), as :data:`~recpress_utils.train.LossFn`s.

Each factory returns ``loss(model, inputs (B, L), targets (B, L) with 0 = no target)``:

* :func:`full_cross_entropy` -- softmax over all items with the true next item ("SASRec+",
  Klenitskiy & Vasilev 2023). It *is* :func:`recpress_utils.train.next_item_loss`; for
  SASRec ``model.head`` *is* the shared-embedding product ``h @ item_emb.T``.
* :func:`bce_one_negative` -- the original SASRec loss: per positive one uniformly sampled
  negative, ``-log s(r_pos) - log(1 - s(r_neg))``, averaged over positives. Only the two items'
  scores are computed (:func:`scores_for`), never all logits.
* :func:`sampled_cross_entropy` -- softmax over the positive and ``n_negatives`` sampled items
  (Petrov & Macdonald's / Klenitskiy's sampled CE).

Negatives are uniform over items ``1..n_items-1`` from a ``torch.Generator`` seeded when the
loss is built, so a run is deterministic given the seed (sampled on the CPU, then moved).

* BCE: the negative is never the positive: ``r ~ U{1..n-2}``, ``neg = r + (r >= pos)`` is
  uniform over the other items in one draw (needs ``n_items >= 3``).
* Sampled CE: one pool of ``n_negatives`` items (with replacement) is drawn per batch and
  shared by every position (a ``(M, N)`` product instead of gathering ``M x N`` vectors); where
  a pooled item equals a row's positive its score is set to -inf, so no row counts its positive
  as a negative (such a row then has fewer than N negatives; with N << n_items this is rare).
  With the pool = all items this is exactly the full cross-entropy (tested).

Models must expose ``item_output() -> (W (n_items, D), bias (n_items,) or None)`` for the two
sampled losses (SASRec: the shared item embeddings; GRU4Rec: its output layer).
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from recpress_utils.models.bert4rec import BERT4Rec, masked_item_loss
from recpress_utils.sequences import PAD
from recpress_utils.train import LossFn, next_item_loss


def scores_for(model: torch.nn.Module, hidden: Tensor, item_ids: Tensor) -> Tensor:
    """Logits of chosen items only: ``hidden (M, D)`` and ``item_ids`` either ``(M, K)`` (own
    items per row) or ``(K,)`` (the same items for every row); returns ``(M, K)``.

    Equals ``model.head(hidden).gather(-1, item_ids)`` (without the padding mask) at the cost
    of K instead of ``n_items`` dot products per row.
    """
    if not hasattr(model, "item_output"):
        raise TypeError(f"{type(model).__name__} has no item_output(); sampled losses need "
                        "the item output vectors")
    weight, bias = model.item_output()
    vectors = weight[item_ids]
    if item_ids.dim() == 1:
        scores = hidden @ vectors.T
    else:
        scores = (vectors @ hidden[..., :, None]).squeeze(-1)
    return scores if bias is None else scores + bias[item_ids]


def _positives(model: torch.nn.Module, inputs: Tensor, targets: Tensor,
               positions: Literal["all", "last"]) -> tuple[Tensor, Tensor]:
    """Hidden states ``(M, D)`` and target ids ``(M,)`` at the positions that have a target."""
    hidden = model.hidden(inputs)
    if positions == "last":
        hidden, targets = hidden[:, -1:], targets[:, -1:]
    mask = targets != PAD
    return hidden[mask], targets[mask]


#: Cross-entropy over all items with the true next item (every position, or the last): the
#: shared loop's default loss, under the name SASRec's literature uses.
full_cross_entropy = next_item_loss


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
        hidden, positives = _positives(model, inputs, targets, positions)
        negatives = one_negative_per_positive(positives, model.n_items, generator)
        scores = scores_for(model, hidden, torch.stack([positives, negatives], dim=1))
        labels = torch.zeros_like(scores)
        labels[:, 0] = 1.0
        # sum of the two terms per positive, mean over positives
        return F.binary_cross_entropy_with_logits(scores, labels, reduction="sum") / len(scores)

    return loss


def sampled_softmax_loss(model: torch.nn.Module, hidden: Tensor, positives: Tensor,
                         negatives: Tensor) -> Tensor:
    """Cross-entropy of ``positives (M,)`` against themselves plus the shared ``negatives
    (N,)``; a negative equal to a row's positive is masked out of that row."""
    pos = scores_for(model, hidden, positives[:, None])
    neg = scores_for(model, hidden, negatives)
    neg = neg.masked_fill(negatives[None, :] == positives[:, None], float("-inf"))
    logits = torch.cat([pos, neg], dim=1)
    return F.cross_entropy(logits, torch.zeros_like(positives))


def sampled_cross_entropy(n_negatives: int = 100, seed: int = 0,
                          positions: Literal["all", "last"] = "all") -> LossFn:
    """Softmax over the positive and ``n_negatives`` uniform negatives shared by the batch."""
    if n_negatives < 1:
        raise ValueError(f"n_negatives must be >= 1, got {n_negatives}")
    generator = torch.Generator().manual_seed(seed)

    def loss(model: torch.nn.Module, inputs: Tensor, targets: Tensor) -> Tensor:
        hidden, positives = _positives(model, inputs, targets, positions)
        negatives = torch.randint(1, model.n_items, (n_negatives,),
                                  generator=generator).to(positives.device)
        return sampled_softmax_loss(model, hidden, positives, negatives)

    return loss


# --------------------------------------------------------------------------- losses by name
#: What a config may name as a model's ``loss``. ``counts`` trains nothing: the model (popularity)
#: is fitted by counting training items (``fit_counts``).
LOSSES: dict[str, str] = {
    "cross_entropy": "full CE",
    "bce_one_negative": "BCE, 1 negative",
    "sampled_cross_entropy": "sampled CE",
    "masked_item": "masked items",
    "counts": "training counts",
}


def check_loss(name: str, model_cls: type) -> None:
    """Fail early, with the reason, when ``name`` cannot train models of ``model_cls``."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known losses: {', '.join(LOSSES)}")
    if name in ("bce_one_negative", "sampled_cross_entropy") and not hasattr(model_cls, "item_output"):
        raise ValueError(f"loss {name!r} needs the model's item output vectors; "
                         f"{model_cls.__name__} has no item_output()")
    if (name == "masked_item") != issubclass(model_cls, BERT4Rec):
        raise ValueError(f"loss 'masked_item' is BERT4Rec's and BERT4Rec trains only with it, "
                         f"not {name!r} for {model_cls.__name__}")
    if (name == "counts") != hasattr(model_cls, "fit_counts"):
        raise ValueError(f"loss 'counts' is for count-based models only, not {name!r} "
                         f"for {model_cls.__name__}")


def build_loss(name: str, seed: int, positions: Literal["all", "last"] = "all",
               settings: Mapping[str, Any] | None = None) -> LossFn | None:
    """The training loss called ``name`` (None for ``counts``: nothing to optimise).

    ``seed`` seeds the negative sampler or the masking; ``positions`` is the training config's
    ``loss_positions`` (BERT4Rec's cloze task has its own positions); ``settings`` are the
    factory's other arguments (``n_negatives``, ``mask_prob``, ...).
    """
    settings = dict(settings or {})
    factories: dict[str, Callable[[], LossFn | None]] = {
        "cross_entropy": lambda: full_cross_entropy(positions, **settings),
        "bce_one_negative": lambda: bce_one_negative(seed, positions, **settings),
        "sampled_cross_entropy": lambda: sampled_cross_entropy(seed=seed, positions=positions,
                                                               **settings),
        "masked_item": lambda: masked_item_loss(seed=seed, **settings),
        "counts": lambda: None,
    }
    if name not in factories:
        raise ValueError(f"unknown loss {name!r}; known losses: {', '.join(LOSSES)}")
    if name == "counts" and settings:
        raise ValueError(f"loss 'counts' takes no settings, got {sorted(settings)}")
    try:
        return factories[name]()
    except TypeError as err:
        raise ValueError(f"bad settings for loss {name!r}: {err}") from None


__all__ = ["LOSSES", "bce_one_negative", "build_loss", "check_loss", "full_cross_entropy", "one_negative_per_positive",
           "sampled_cross_entropy", "sampled_softmax_loss", "scores_for"]
