"""Next-item training losses (SASRec's three of lecture 003 and two that scale to large
catalogues), as :data:`~recpress_utils.train.LossFn`s.

Each factory returns ``loss(model, inputs (B, L), targets (B, L) with 0 = no target)``:

* :func:`full_cross_entropy` -- softmax over all items with the true next item ("SASRec+",
  Klenitskiy & Vasilev 2023). It *is* :func:`recpress_utils.train.next_item_loss`; for
  SASRec ``model.head`` *is* the shared-embedding product ``h @ item_emb.T``.
* :func:`bce_one_negative` -- the original SASRec loss: per positive one uniformly sampled
  negative, ``-log s(r_pos) - log(1 - s(r_neg))``, averaged over positives. Only the two items'
  scores are computed (:func:`scores_for`), never all logits.
* :func:`sampled_cross_entropy` -- softmax over the positive and ``n_negatives`` sampled items
  (Petrov & Macdonald's / Klenitskiy's sampled CE).
* :func:`sampled_softmax` -- the same shared pool, drawn from item popularity (optionally mixed
  with uniform), with the logQ correction that makes it estimate the full softmax.
* :func:`chunked_cross_entropy` -- the exact full cross-entropy, computed ``chunk_items`` items
  at a time forward and backward, so a 40k-item catalogue never needs a ``M x n_items`` matrix.

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

import argparse
import time
from typing import Any, Callable, Iterator, Literal, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from recpress_utils.models.bert4rec import BERT4Rec, masked_item_loss
from recpress_utils.sequences import PAD
from recpress_utils.train import LossFn, next_item_loss


def item_output(model: torch.nn.Module) -> tuple[Tensor, Tensor | None]:
    """``model.item_output()``: the output vectors ``(n_items, D)`` and bias, or a clear error."""
    if not hasattr(model, "item_output"):
        raise TypeError(f"{type(model).__name__} has no item_output(); this loss needs "
                        "the item output vectors")
    return model.item_output()


def scores_for(model: torch.nn.Module, hidden: Tensor, item_ids: Tensor) -> Tensor:
    """Logits of chosen items only: ``hidden (M, D)`` and ``item_ids`` either ``(M, K)`` (own
    items per row) or ``(K,)`` (the same items for every row); returns ``(M, K)``.

    Equals ``model.head(hidden).gather(-1, item_ids)`` (without the padding mask) at the cost
    of K instead of ``n_items`` dot products per row. The result is a new tensor whose backward
    does not need it, so callers may modify it in place.
    """
    weight, bias = item_output(model)
    vectors = weight[item_ids]
    if item_ids.dim() == 1:  # one fused product + bias: the (M, K) matrix is written once
        return hidden @ vectors.T if bias is None else torch.addmm(bias[item_ids], hidden, vectors.T)
    scores = (vectors @ hidden[..., :, None]).squeeze(-1)
    return scores if bias is None else scores + bias[item_ids]


def output_states(model: torch.nn.Module, hidden: Tensor) -> Tensor:
    """What the item output vectors multiply: ``model.output_states(hidden)`` for a model whose
    head has layers before them (the paper's models: an MLP), else ``hidden`` itself."""
    return model.output_states(hidden) if hasattr(model, "output_states") else hidden


def _positives(model: torch.nn.Module, inputs: Tensor, targets: Tensor,
               positions: Literal["all", "last"]) -> tuple[Tensor, Tensor]:
    """Output states ``(M, D)`` (:func:`output_states`) and target ids ``(M,)`` at the positions
    that have a target."""
    hidden = model.hidden(inputs)
    if positions == "last":
        hidden, targets = hidden[:, -1:], targets[:, -1:]
    mask = targets != PAD
    return output_states(model, hidden[mask]), targets[mask]


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
        hidden, positives = _positives(model, inputs, targets, positions)
        negatives = torch.randint(1, model.n_items, (n_negatives,),
                                  generator=generator).to(positives.device)
        return sampled_softmax_loss(model, hidden, positives, negatives)

    loss.generator = generator  # its state is saved in training checkpoints (exact resume)
    return loss


def popularity_distribution(item_counts: Tensor, uniform_mix: float = 0.0) -> Tensor:
    """Sampling probabilities ``q (n_items,)`` of the negatives: training counts, mixed with
    uniform over ``1..n_items-1`` with share ``uniform_mix``; the padding item gets 0.

    Every real item must have ``q > 0``: an item that is never drawn would have an infinite
    logQ correction when it is a positive (give it a count, or set ``uniform_mix > 0``).
    """
    if not 0.0 <= uniform_mix <= 1.0:
        raise ValueError(f"uniform_mix must be in [0, 1], got {uniform_mix}")
    counts = torch.as_tensor(item_counts, dtype=torch.float64).clone()
    if counts.dim() != 1 or len(counts) < 2 or (counts < 0).any() or counts[1:].sum() <= 0:
        raise ValueError("item_counts must be a 1-D tensor of counts >= 0 per item id "
                         "(padding first) with a positive total")
    counts[PAD] = 0.0
    uniform = torch.ones_like(counts)
    uniform[PAD] = 0.0
    probs = (1.0 - uniform_mix) * counts / counts.sum() + uniform_mix * uniform / uniform.sum()
    if (probs[1:] == 0).any():
        raise ValueError(f"{int((probs[1:] == 0).sum())} item(s) have count 0 and could never "
                         "be drawn; set uniform_mix > 0")
    return probs


def sampled_softmax(item_counts: Tensor, n_negatives: int = 2048, uniform_mix: float = 0.0,
                    seed: int = 0, positions: Literal["all", "last"] = "all") -> LossFn:
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
    """
    pool = PopularityPool(item_counts, n_negatives, uniform_mix, seed)

    def loss(model: torch.nn.Module, inputs: Tensor, targets: Tensor) -> Tensor:
        pool.check(model)
        hidden, positives = _positives(model, inputs, targets, positions)
        negatives = pool.draw(positives.device)
        return sampled_softmax_loss(model, hidden, positives, negatives,
                                    pool.log_expected_count.to(positives.device))

    loss.generator = pool.generator  # its state is saved in training checkpoints (exact resume)
    return loss


class PopularityPool:
    """One pool of ``n_negatives`` items per batch, drawn with replacement from
    :func:`popularity_distribution` (``item_counts``, ``uniform_mix``), with each item's
    ``log_expected_count = log(N q_j)``, the logQ correction (:func:`sampled_softmax`). Shared by
    the sampled losses here and the sampled distillation loss (:mod:`recpress_utils.distill`)."""

    def __init__(self, item_counts: Tensor, n_negatives: int = 2048, uniform_mix: float = 0.0,
                 seed: int = 0) -> None:
        if n_negatives < 1:
            raise ValueError(f"n_negatives must be >= 1, got {n_negatives}")
        self.n_negatives = n_negatives
        self.probs = popularity_distribution(item_counts, uniform_mix)
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


def _item_chunks(hidden: Tensor, weight: Tensor, bias: Tensor | None,
                 chunk_items: int) -> Iterator[tuple[int, Tensor]]:
    """``(start, logits (M, C))`` of items ``start..start+C-1``, for consecutive chunks of
    ``chunk_items`` real items ``1..n_items-1``: the padding item 0 is never scored, as the
    head's -inf column never counts it."""
    for start in range(PAD + 1, len(weight), chunk_items):
        stop = min(start + chunk_items, len(weight))
        if bias is None:
            yield start, hidden @ weight[start:stop].T
        else:
            yield start, torch.addmm(bias[start:stop], hidden, weight[start:stop].T)


class _ChunkedLogSumExp(torch.autograd.Function):
    """``logsumexp(hidden @ W[1:].T + b[1:], dim=1)`` with at most ``chunk_items`` logit columns
    alive at once, forward (a running log-sum-exp) and backward (the chunk's logits are
    recomputed and turned into ``softmax * grad`` chunk by chunk), so memory is ``M x chunk``
    instead of ``M x n_items`` for the logits and again for their gradient."""

    @staticmethod
    def forward(ctx: FunctionCtx, hidden: Tensor, weight: Tensor, bias: Tensor | None,
                chunk_items: int) -> Tensor:
        lse = hidden.new_full((len(hidden),), float("-inf"))
        for _, logits in _item_chunks(hidden, weight, bias, chunk_items):
            lse = torch.logaddexp(lse, torch.logsumexp(logits, dim=1))
        ctx.save_for_backward(hidden, weight, bias, lse)
        ctx.chunk_items = chunk_items
        return lse

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_lse: Tensor
                 ) -> tuple[Tensor | None, Tensor | None, Tensor | None, None]:
        hidden, weight, bias, lse = ctx.saved_tensors
        need_hidden, need_weight, need_bias, _ = ctx.needs_input_grad
        grad_hidden = torch.zeros_like(hidden) if need_hidden else None
        grad_weight = torch.zeros_like(weight) if need_weight else None
        grad_bias = torch.zeros_like(bias) if need_bias else None
        for start, logits in _item_chunks(hidden, weight, bias, ctx.chunk_items):
            # d lse / d logits = softmax over all items, restricted to this chunk
            grad_logits = logits.sub_(lse[:, None]).exp_().mul_(grad_lse[:, None])
            stop = start + grad_logits.shape[1]
            if grad_hidden is not None:
                grad_hidden.addmm_(grad_logits, weight[start:stop])
            if grad_weight is not None:
                torch.mm(grad_logits.T, hidden, out=grad_weight[start:stop])
            if grad_bias is not None:
                torch.sum(grad_logits, dim=0, out=grad_bias[start:stop])
        return grad_hidden, grad_weight, grad_bias, None


def chunked_cross_entropy(chunk_items: int = 1024,
                          positions: Literal["all", "last"] = "all") -> LossFn:
    """Exactly the full cross-entropy (:func:`full_cross_entropy`), never holding more than
    ``chunk_items`` columns of logits: ``log-sum-exp over all items - positive's logit``, the
    first streamed over item chunks (:class:`_ChunkedLogSumExp`), the second from the positive's
    vector alone (:func:`scores_for`). It does four ``M x n_items x D`` products instead of the
    full CE's three (backward recomputes the logits), for memory bounded at any catalogue size:
    a batch of 5,120 targets over 43k items needs 0.9 GB for the logits and as much for their
    gradient in the full CE, 21 MB per chunk here at the default 1,024 items. Small chunks are
    also the fastest on a CPU (less memory traffic: ~0.45 ms per target at 43k items against
    ~0.7 for the full CE, one thread; 8,192-item chunks ~0.7).
    """
    if chunk_items < 1:
        raise ValueError(f"chunk_items must be >= 1, got {chunk_items}")

    def loss(model: torch.nn.Module, inputs: Tensor, targets: Tensor) -> Tensor:
        hidden, positives = _positives(model, inputs, targets, positions)
        weight, bias = item_output(model)
        lse = _ChunkedLogSumExp.apply(hidden, weight, bias, chunk_items)
        return (lse - scores_for(model, hidden, positives[:, None])[:, 0]).mean()

    return loss


# --------------------------------------------------------------------------- losses by name
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
    if (name == "masked_item") != issubclass(model_cls, BERT4Rec):
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


# --------------------------------------------------------------------------- benchmark
def benchmark_output_layer(n_items: int = 43_000, batch: int = 256, length: int = 20,
                           dim: int = 64, chunk_items: int = 1024,
                           negatives: tuple[int, ...] = (512, 2048), repeats: int = 3,
                           threads: int = 1) -> dict[str, dict[str, float]]:
    """Milliseconds per target of the output layer's forward + backward under each loss.

    A GRU4Rec output layer (``Linear(dim, n_items)``) on fixed hidden states ``(batch, length,
    dim)`` with a target at every position: the recurrent part is the same for every loss, so
    it is left out and only what the loss changes is timed. ``wall``: median of ``repeats``;
    ``cpu``: this thread's CPU time per call, which other processes on shared cores inflate
    less than the wall time.
    """
    from recpress_utils.latency import time_call  # latency imports runs, which imports this
    from recpress_utils.models import GRU4Rec

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = GRU4Rec(n_items, emb_dim=dim, gru_dim=dim).train()
    states = torch.randn(batch, length, dim, requires_grad=True)
    model.hidden = lambda items: states
    targets = torch.randint(1, n_items, (batch, length))
    counts = 1.0 / torch.arange(1, n_items + 1, dtype=torch.float64)  # Zipf-like popularity
    timed = {"full CE": full_cross_entropy(),
             f"chunked CE ({chunk_items} items)": chunked_cross_entropy(chunk_items)}
    timed |= {f"sampled softmax ({n} negatives)": sampled_softmax(counts, n) for n in negatives}
    per_target = {}
    for name, loss in timed.items():
        def step(loss: LossFn = loss) -> None:
            model.zero_grad(set_to_none=True)
            states.grad = None
            loss(model, targets, targets).backward()

        cpu_start = time.thread_time()
        wall = time_call(step, repeats=repeats, warmup=1)["median"]
        cpu = (time.thread_time() - cpu_start) / (repeats + 1)
        per_target[name] = {"wall": 1000 * wall / targets.numel(), "cpu": 1000 * cpu / targets.numel()}
        print(f"{name:32s} {1000 * wall:8.1f} ms per batch  {per_target[name]['wall']:.4f} ms per "
              f"target (CPU {per_target[name]['cpu']:.4f})", flush=True)
    return per_target


__all__ = ["LOSSES", "bce_one_negative", "benchmark_output_layer", "build_loss", "check_loss",
           "chunked_cross_entropy", "full_cross_entropy", "item_output",
           "one_negative_per_positive", "popularity_distribution", "sampled_cross_entropy",
           "sampled_softmax", "sampled_softmax_loss", "scores_for"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Time the output layer under each loss.")
    parser.add_argument("--bench", action="store_true", help="run the benchmark")
    parser.add_argument("--n-items", type=int, default=43_000)
    parser.add_argument("--chunk-items", type=int, default=1024)
    args = parser.parse_args()
    if not args.bench:
        parser.error("nothing to do: pass --bench")
    benchmark_output_layer(args.n_items, chunk_items=args.chunk_items)
