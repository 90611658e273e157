"""SASRec (Kang & McAuley 2018): a causal transformer over the session whose output scores
items by a dot product with the SAME item embeddings used at the input.

Per position t of a left-padded session:

1. ``x = LayerNorm(item_emb + pos_emb)``, dropout; positions count from the session's first
   real item (as in the teacher and the student), so left padding does not move them.
2. ``n_blocks`` pre-LayerNorm blocks: ``x += Dropout(MHA(LN(x)))`` with
   ``F.scaled_dot_product_attention`` and the base's causal + key-padding
   :meth:`~recpress_utils.models.base.SequentialRecommender.attention_mask`, then
   ``x += Dropout(FFN(LN(x)))`` with a pointwise ``Linear -> GELU -> Dropout -> Linear``;
   padded positions are zeroed after every block (SASRec's "timeline mask").
3. A final LayerNorm gives ``h`` (width ``emb_dim``).
4. Logits ``h @ item_emb.weight.T + bias``: the input embeddings are the output embeddings
   (no separate item matrix). ``bias`` is a per-item zero vector kept so every model exposes
   ``output[-1].bias``; it is a fixed buffer (original SASRec has no bias) unless
   ``item_bias=True`` makes it learnable.

Embeddings and linear weights start from N(0, 0.02) as in RecBole's SASRec, so the tied
logits start small. Losses live in :mod:`recpress_utils.losses` (full CE, BCE with one
negative, sampled CE); :meth:`SASRec.item_output` gives them the item vectors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recpress_utils.models.base import SequentialRecommender
from recpress_utils.models.layers import ItemBias, PositionEmbedding, attention_probs, normal_init, split_heads
from recpress_utils.sequences import PAD


class SASRecBlock(nn.Module):
    """Pre-LN transformer block: causal multi-head self-attention, then a pointwise FFN."""

    def __init__(self, dim: int, n_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.attn_norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(ffn_dim, dim))
        self.dropout = nn.Dropout(dropout)
        self.attn_dropout = dropout

    def attention_probs(self, x: Tensor, mask: Tensor) -> Tensor:
        """The block's attention weights ``(B, H, L, L)`` on its input ``x``."""
        q, k, _ = split_heads(self.qkv(self.attn_norm(x)), self.n_heads).unbind(0)
        return attention_probs(q, k, mask)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        b, length, dim = x.shape
        q, k, v = split_heads(self.qkv(self.attn_norm(x)), self.n_heads).unbind(0)  # each (B, H, L, d)
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.attn_dropout if self.training else 0.0)
        x = x + self.dropout(self.proj(attended.transpose(1, 2).reshape(b, length, dim)))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class SASRec(SequentialRecommender):
    """Causal self-attentive recommender with shared input/output item embeddings.

    Defaults follow the SASRec paper / RecBole at our scale: emb 64, 2 blocks, 2 heads,
    FFN 256 (4 x emb, as RecBole), dropout 0.2, max length 50.
    """

    def __init__(self, n_items: int, emb_dim: int = 64, n_blocks: int = 2, n_heads: int = 2,
                 ffn_dim: int = 256, dropout: float = 0.2, max_len: int = 50,
                 item_bias: bool = False) -> None:
        if emb_dim % n_heads:
            raise ValueError(f"emb_dim ({emb_dim}) must be divisible by n_heads ({n_heads})")
        if n_blocks < 1 or max_len < 1:
            raise ValueError("n_blocks and max_len must be >= 1")
        super().__init__(n_items, emb_dim)
        self.output = nn.Sequential(ItemBias(n_items, learnable=item_bias))
        self.max_len = max_len
        self.pos_emb = PositionEmbedding(max_len, emb_dim)
        self.input_norm = nn.LayerNorm(emb_dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(SASRecBlock(emb_dim, n_heads, ffn_dim, dropout)
                                    for _ in range(n_blocks))
        self.final_norm = nn.LayerNorm(emb_dim)
        self.apply(normal_init)

    def _encode(self, items: Tensor, n_blocks: int) -> tuple[Tensor, Tensor, Tensor]:
        """``(x, mask, keep)``: the states after the first ``n_blocks`` blocks, the attention mask and
        the real-position weights."""
        x = self.dropout(self.input_norm(self.item_emb(items) + self.pos_emb(items)))
        keep = (items != PAD)[..., None].to(x.dtype)
        x = x * keep
        mask = self.attention_mask(items)
        for block in self.blocks[:n_blocks]:
            x = block(x, mask) * keep
        return x, mask, keep

    def hidden(self, items: Tensor) -> Tensor:
        x, _, _ = self._encode(items, len(self.blocks))
        return self.final_norm(x)

    def attention_maps(self, items: Tensor) -> Tensor:
        """The last block's attention weights ``(B, L, L)``, averaged over heads."""
        x, mask, _ = self._encode(items, len(self.blocks) - 1)
        return self.blocks[-1].attention_probs(x, mask).mean(dim=1)

    def head(self, h: Tensor) -> Tensor:
        """Tied logits ``h @ item_emb.weight.T + bias``, padding column at -inf."""
        return self.mask_padding_logit(self.output(h @ self.item_emb.weight.T))

    def item_output(self) -> tuple[Tensor, Tensor | None]:
        """Output vectors (= the input item embeddings) and the per-item bias."""
        return self.item_emb.weight, self.output[-1].bias
