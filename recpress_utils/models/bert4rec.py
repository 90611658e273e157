"""BERT4Rec (Sun et al., 2019; lecture 003): a bidirectional transformer encoder trained with
the cloze (masked item) task, predicting the next item from a [mask] token appended to the
session.

Architecture (defaults after RecBole's BERT4Rec: 2 blocks, 2 heads, width 64, FFN 256,
dropout 0.2, mask ratio 0.2; the profiles set their own dropout, ratio and learning rate):

1. ``x = LayerNorm(item_emb + pos_emb)``, dropout. The item table has ``n_items + 1`` rows:
   ids ``1..n_items-1`` are the catalogue, 0 is padding, and ``n_items`` is the special
   [mask] token (:attr:`BERT4Rec.mask_id`). Positions are counted from the session's first
   real item (as in the other models), so left padding does not move them.
2. ``n_blocks`` post-LN transformer blocks (BERT style): multi-head self-attention with
   ``F.scaled_dot_product_attention`` -> dropout -> residual -> LayerNorm -> GELU FFN ->
   dropout -> residual -> LayerNorm. Attention is **bidirectional**: only padded keys are
   hidden (each position may also attend to itself, so padded query rows are never empty).
3. Output head as in the paper: ``GELU(h W^P + b^P) E^T + b^O`` with ``E`` the item embedding
   rows of the catalogue only (tied weights), so logits are over the ``n_items`` ids; the
   [mask] token has no column and is never recommended, and column 0 (padding) is ``-inf``
   like every model's. ``tied_head=False`` uses the paper's 2-layer MLP head (``layers.mlp_head``) instead.

Initialisation: PyTorch's defaults (``N(0, 1)`` embeddings, Kaiming-uniform linear layers) by
default; ``init_std=0.02`` gives BERT's small normal init (RecBole's choice), which a profile may
pick on validation (config/sweeps/ml-100k/bert4rec.csv). With the small init the model sat
at popularity level for its first 9 epochs on the default profile; measured there (seed 42,
dropout 0.2, lr 3e-3, 25 epochs, one thread), validation NDCG@10 rose from 0.216 to 0.318 with the
default init, and to 0.372 with dropout 0.1 and lr 6e-3 (the default profile's settings).

Inference (:meth:`BERT4Rec.last_logits`): [mask] is appended after the last item (the oldest
item is dropped when the length would exceed ``max_len``) and the logits at the mask position
are the next-item scores. Because the encoder is bidirectional, ``hidden(items)[:, t]`` depends
on later positions; that is by design. The guarantees that matter are that evaluation inputs
never contain the target (the evaluation code drops it) and that training never shows a
masked target (:func:`mask_batch` replaces it by [mask]).

Training: the cloze loss of :mod:`recpress_utils.losses.masked_item` (``loss: masked_item``),
the model's default and only loss.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recpress_utils.models.base import SequentialRecommender
from recpress_utils.models.layers import PositionEmbedding, mlp_head, normal_init, split_heads
from recpress_utils.sequences import PAD


class _Block(nn.Module):
    """Post-LN transformer encoder block over bidirectional SDPA attention."""

    def __init__(self, dim: int, n_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.attn_dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), nn.Linear(ffn_dim, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        b, length, dim = x.shape
        q, k, v = split_heads(self.qkv(x), self.n_heads).unbind(0)  # each (B, H, L, d)
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.attn_dropout if self.training else 0.0)
        attended = self.proj(attended.transpose(1, 2).reshape(b, length, dim))
        x = self.norm1(x + self.dropout(attended))
        return self.norm2(x + self.dropout(self.ffn(x)))


class BERT4Rec(SequentialRecommender):
    """Bidirectional transformer with a [mask] token (id ``n_items``); see the module docstring.

    ``n_items`` counts the padding item, as for every model; the embedding table has one more
    row (the [mask] token), logits have ``n_items`` columns.
    """

    causal = False  # bidirectional by design; the cloze loss keeps targets hidden instead
    default_loss = "masked_item"

    def __init__(self, n_items: int, emb_dim: int = 64, n_blocks: int = 2, n_heads: int = 2,
                 ffn_dim: int = 256, dropout: float = 0.2, max_len: int = 50,
                 tied_head: bool = True, mlp_hidden: int = 64, init_std: float | None = None) -> None:
        if emb_dim % n_heads:
            raise ValueError(f"emb_dim ({emb_dim}) must be divisible by n_heads ({n_heads})")
        if n_blocks < 1 or max_len < 2:
            raise ValueError("n_blocks must be >= 1 and max_len >= 2 (an item and the [mask])")
        super().__init__(n_items, emb_dim, item_rows=n_items + 1)  # one row beyond the catalogue: [mask]
        self.mask_id = n_items
        self.max_len = max_len
        self.tied_head = tied_head
        if not tied_head:
            self.output = mlp_head(emb_dim, mlp_hidden, n_items, dropout)
        self.pos_emb = PositionEmbedding(max_len, emb_dim)
        self.emb_norm = nn.LayerNorm(emb_dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_Block(emb_dim, n_heads, ffn_dim, dropout)
                                    for _ in range(n_blocks))
        if tied_head:
            # The paper's projection GELU(h W^P + b^P); E^T and b^O are applied in head().
            self.output = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.GELU())
            self.output_bias = nn.Parameter(torch.zeros(n_items))
        if init_std is not None:
            self.apply(partial(normal_init, std=init_std))
        # Otherwise PyTorch's default init (see the module docstring); padding rows start at zero.

    # -- interface --------------------------------------------------------------------------
    def hidden(self, items: Tensor) -> Tensor:
        """Bidirectional states ``(B, L, emb_dim)``; items may contain :attr:`mask_id`."""
        real = items != PAD
        x = self.dropout(self.emb_norm(self.item_emb(items) + self.pos_emb(items)))
        length = items.shape[1]
        itself = torch.eye(length, dtype=torch.bool, device=items.device)
        mask = real[:, None, None, :] | itself  # (B, 1, L, L): padded keys hidden, no causality
        for block in self.blocks:
            x = block(x, mask)
        return x * real[..., None]

    def head(self, h: Tensor) -> Tensor:
        """Logits ``(..., n_items)``: catalogue columns only ([mask] has none), padding -inf."""
        if not self.tied_head:
            return super().head(h)
        return self.mask_padding_logit(
            F.linear(self.output(h), self.item_emb.weight[:self.n_items], self.output_bias))

    def append_mask(self, items: Tensor) -> Tensor:
        """``items`` with [mask] appended, cut to the last ``max_len`` columns."""
        masks = torch.full((items.shape[0], 1), self.mask_id, dtype=items.dtype,
                           device=items.device)
        return torch.cat([items, masks], dim=1)[:, -self.max_len:]

    def last_logits(self, items: Tensor) -> Tensor:
        """Next-item logits ``(B, n_items)``: the scores at a [mask] appended after the session."""
        return self.head(self.hidden(self.append_mask(items))[:, -1])


__all__ = ["BERT4Rec"]
