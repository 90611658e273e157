"""Next-item training losses, one home: each a factory of a :data:`LossFn` in a small module, and
:data:`LOSSES` / :func:`build_loss` naming them for configs (a new loss = one module + one entry
in ``_FACTORIES`` and ``LOSSES``). SASRec's three of lecture 003, two that scale to large
catalogues, and BERT4Rec's cloze task:

Each factory returns ``loss(model, inputs (B, L), targets (B, L) with 0 = no target)``:

* :func:`full_cross_entropy` (:mod:`.full`) -- softmax over all items with the true next item
  ("SASRec+", Klenitskiy & Vasilev 2023), the shared loop's default.
* :func:`bce_one_negative` (:mod:`.sampled`) -- the original SASRec loss: per positive one uniformly sampled
  negative, ``-log s(r_pos) - log(1 - s(r_neg))``, averaged over positives. Only the two items'
  scores are computed (:func:`scores_for`), never all logits.
* :func:`sampled_cross_entropy` -- softmax over the positive and ``n_negatives`` sampled items
  (Petrov & Macdonald's / Klenitskiy's sampled CE).
* :func:`sampled_softmax` -- the same shared pool, drawn from item popularity (optionally mixed
  with uniform), with the logQ correction that makes it estimate the full softmax.
* :func:`chunked_cross_entropy` (:mod:`.full`) -- the exact full cross-entropy, computed
  ``chunk_items`` items at a time forward and backward, so a 40k-item catalogue never needs a
  ``M x n_items`` matrix.
* :func:`masked_item_loss` (:mod:`.masked_item`) -- BERT4Rec's cloze task.

Why two more: at 43k items the full softmax's output layer costs ~0.7 ms per target (forward +
backward, one CPU thread), a shared pool of 2,048 negatives ~0.05 ms and of 512 ~0.01 ms
(``python -m recpress_utils.losses --bench``). A uniform pool (:func:`sampled_cross_entropy`)
over 40k items is mostly rare items, easy negatives; popular items are the hard ones, but a pool
drawn by popularity is biased unless corrected. When the exact loss is wanted, the chunked CE
gives it in bounded memory (and, in small chunks, faster than the full CE on a CPU).

Negatives are drawn over items ``1..n_items-1`` (uniformly, or by popularity for
:func:`sampled_softmax`) from a ``torch.Generator`` seeded when the loss is built, so a run is
deterministic given the seed (sampled on the CPU, then moved).

* BCE: the negative is never the positive: ``r ~ U{1..n-2}``, ``neg = r + (r >= pos)`` is
  uniform over the other items in one draw (needs ``n_items >= 3``).
* Sampled CE: one pool of ``n_negatives`` items (with replacement) is drawn per batch and
  shared by every position (a ``(M, N)`` product instead of gathering ``M x N`` vectors); where
  a pooled item equals a row's positive its score is set to -inf, so no row counts its positive
  as a negative (such a row then has fewer than N negatives; with N << n_items this is rare).
  With the pool = all items this is exactly the full cross-entropy (tested).

Models must expose ``item_output() -> (W (n_items, D), bias (n_items,) or None)`` for every loss
but the full CE (SASRec: the shared item embeddings; GRU4Rec and the paper's models: the last
layer of the head, which the paper's models reach through ``output_states``, their MLP).
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Mapping

from torch import Tensor

from recpress_utils.losses.common import LossFn, item_output, output_states, scores_for, target_states
from recpress_utils.losses.full import chunked_cross_entropy, full_cross_entropy
from recpress_utils.losses.masked_item import masked_item_loss
from recpress_utils.losses.sampled import (PopularityPool, bce_one_negative, one_negative_per_positive,
                                           popularity_distribution, sampled_cross_entropy, sampled_softmax,
                                           sampled_softmax_loss)

#: What a config may name as a model's ``loss``. ``counts`` trains nothing: the model (popularity)
#: is fitted by counting training items (``fit_counts``).
LOSSES: dict[str, str] = {
    "cross_entropy": "full CE",
    "bce_one_negative": "BCE, 1 negative",
    "sampled_cross_entropy": "sampled CE",
    "sampled_softmax": "sampled softmax, logQ",
    "chunked_cross_entropy": "full CE, chunked",
    "masked_item": "masked items",
    "counts": "training counts",
}


def check_loss(name: str, model_cls: type) -> None:
    """Fail early, with the reason, when ``name`` cannot train models of ``model_cls``."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known losses: {', '.join(LOSSES)}")
    if name not in ("cross_entropy", "masked_item", "counts") and not hasattr(model_cls, "item_output"):
        raise ValueError(f"loss {name!r} needs the model's item output vectors; "
                         f"{model_cls.__name__} has no item_output()")
    if (name == "masked_item") != (getattr(model_cls, "default_loss", None) == "masked_item"):
        raise ValueError(f"loss 'masked_item' is BERT4Rec's and BERT4Rec trains only with it, "
                         f"not {name!r} for {model_cls.__name__}")
    if (name == "counts") != hasattr(model_cls, "fit_counts"):
        raise ValueError(f"loss 'counts' is for count-based models only, not {name!r} "
                         f"for {model_cls.__name__}")


def build_loss(name: str, seed: int, positions: Literal["all", "last"] = "all",
               settings: Mapping[str, Any] | None = None,
               item_counts: Tensor | None = None) -> LossFn | None:
    """The training loss called ``name`` (None for ``counts``: nothing to optimise).

    ``seed`` seeds the negative sampler or the masking; ``positions`` is the training config's
    ``loss_positions`` (BERT4Rec's cloze task has its own positions); ``settings`` are the
    factory's other arguments (``n_negatives``, ``mask_prob``, ...). ``item_counts`` (the
    training count of every item id, padding first) is data, not a setting: the run passes it
    and ``sampled_softmax`` draws its negatives by it; the other losses ignore it.
    """
    settings = dict(settings or {})

    def popularity_sampled() -> LossFn:
        if item_counts is None:
            raise ValueError("loss 'sampled_softmax' needs item_counts (training counts)")
        return sampled_softmax(item_counts, seed=seed, positions=positions, **settings)

    factories: dict[str, Callable[[], LossFn | None]] = {
        "cross_entropy": lambda: full_cross_entropy(positions, **settings),
        "bce_one_negative": lambda: bce_one_negative(seed, positions, **settings),
        "sampled_cross_entropy": lambda: sampled_cross_entropy(seed=seed, positions=positions,
                                                               **settings),
        "sampled_softmax": popularity_sampled,
        "chunked_cross_entropy": lambda: chunked_cross_entropy(positions=positions, **settings),
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


__all__ = ["LOSSES", "LossFn", "PopularityPool", "bce_one_negative", "build_loss", "check_loss",
           "chunked_cross_entropy", "full_cross_entropy", "item_output", "masked_item_loss",
           "one_negative_per_positive", "output_states", "popularity_distribution", "sampled_cross_entropy",
           "sampled_softmax", "sampled_softmax_loss", "scores_for", "target_states"]
