"""The paper's baseline (Fig. 1): item embedding -> LSTM -> 2-layer MLP -> logits over items."""

from __future__ import annotations

from torch import Tensor, nn

from recpress_utils.models.base import SequentialRecommender
from recpress_utils.models.layers import mlp_head, shift_rows
from recpress_utils.sequences import PAD


class LSTMBaseline(SequentialRecommender):
    """One-layer LSTM over the session; its state after each item feeds the MLP head.

    Padding zeros in front of a session would still move the LSTM state (through the gate
    biases), so each row is rotated to right padding before the LSTM and rotated back after:
    real items then start from the zero state whatever the padding length, and the padding
    that now follows them cannot reach them (the LSTM is causal). The states rotated back onto
    padded positions were computed after the session, so they are zeroed to stay causal.
    Sizes are the paper's (emb, LSTM and MLP 64); the dropout rate is ours (the paper gives none).
    """

    def __init__(self, n_items: int, emb_dim: int = 64, lstm_dim: int = 64, mlp_hidden: int = 64,
                 dropout: float = 0.1) -> None:
        super().__init__(n_items, emb_dim)
        self.output = mlp_head(lstm_dim, mlp_hidden, n_items, dropout)
        self.lstm = nn.LSTM(emb_dim, lstm_dim, num_layers=1, batch_first=True)

    def hidden(self, items: Tensor) -> Tensor:
        padded = items == PAD
        n_pad = padded.sum(dim=1)
        states, _ = self.lstm(self.item_emb(shift_rows(items, n_pad)))
        return shift_rows(states, -n_pad).masked_fill(padded[..., None], 0.0)
