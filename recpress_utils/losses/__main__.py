"""Time the output layer under each loss: ``python -m recpress_utils.losses --bench``."""

from __future__ import annotations

import argparse
import time

import torch

from recpress_utils.losses import chunked_cross_entropy, full_cross_entropy, sampled_softmax
from recpress_utils.losses.common import LossFn


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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Time the output layer under each loss.")
    parser.add_argument("--bench", action="store_true", help="run the benchmark")
    parser.add_argument("--n-items", type=int, default=43_000)
    parser.add_argument("--chunk-items", type=int, default=1024)
    args = parser.parse_args()
    if not args.bench:
        parser.error("nothing to do: pass --bench")
    benchmark_output_layer(args.n_items, chunk_items=args.chunk_items)
