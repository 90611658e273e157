"""One training loop for every model: seeded, deterministic, evaluated on validation each epoch.

The loss is pluggable (cross-entropy with the true next item by default; distillation passes
its own), so the baseline, the teacher, the student and the peers all train the same way.
"""

from __future__ import annotations

import copy
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm import tqdm

from recpress_utils.io import atomic_path
from recpress_utils.losses import LossFn, full_cross_entropy
from recpress_utils.metrics import MetricAccumulator
from recpress_utils.sequences import Sessions, TargetMode, eval_examples, train_batches, training_windows
from recpress_utils.settings import Settings

@dataclass(frozen=True)
class TrainConfig(Settings):
    """Optimisation settings shared by all models."""

    KIND = "training"

    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.01
    patience: int = 3  # epochs without a better validation score before stopping
    loss_positions: Literal["all", "last"] = "all"  # next-item loss at every position or the last
    select_metric: str = "NDCG@10"  # validation metric that picks the best epoch
    eval_batch_size: int = 512
    max_len: int = 50
    device: str = "auto"  # "auto": CUDA when present, else CPU
    #: Evaluation protocol: leave each sequence's earlier items out of its ranking. On for
    #: MovieLens (a user rates a movie once; RecBole and Petrov & Macdonald's full-ranking
    #: numbers filter seen items), off for sessions, where a repeat is a real target.
    exclude_seen: bool = False
    #: After early stopping, train a fresh model on every training session (``train_all``: the
    #: newest ones too, as the published SR-GNN-protocol models did) for the chosen number of
    #: epochs, and evaluate that one.
    refit: bool = False
    #: A budget for data too large to train through on a CPU (the paper-scale profile): train on a
    #: seeded sample of this many training windows, the same in every epoch and in the teacher's
    #: top-K cache (:func:`budget_windows`). None: all of them.
    max_windows: int | None = None
    #: The evaluation's budget at the same scale: validate every epoch and test on a fixed sample
    #: of this many sessions (:func:`eval_sample`), the same sample in every run so runs stay
    #: paired. None: every session.
    max_eval_sessions: int | None = None

    def __post_init__(self) -> None:
        if self.loss_positions not in ("all", "last"):
            raise ValueError(f"loss_positions must be 'all' or 'last', not {self.loss_positions!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ValueError("epochs, batch_size and patience must be >= 1")
        if self.max_windows is not None and self.max_windows < 1:
            raise ValueError("max_windows must be >= 1 (or null: every training window)")
        if self.max_eval_sessions is not None and self.max_eval_sessions < 1:
            raise ValueError("max_eval_sessions must be >= 1 (or null: every session)")



@dataclass
class FitResult:
    history: list[dict[str, float]]
    best_epoch: int
    best_state: dict[str, torch.Tensor]
    train_seconds: float
    refit_history: list[dict[str, float]] = field(default_factory=list)  # a refit's epochs, if any


def set_determinism(seed: int, threads: int) -> None:
    """Seed every RNG and fix threads, so the same run regenerates the same numbers."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


def pick_device(preference: str = "auto") -> torch.device:
    """CUDA when present and asked for ('auto' or 'cuda'), else CPU."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module,
    sessions: Sessions,
    mode: TargetMode = "last",
    batch_size: int = 512,
    max_len: int = 50,
    device: torch.device | str = "cpu",
    exclude_seen: bool = False,
) -> MetricAccumulator:
    """Full-ranking metrics of ``model`` on ``sessions`` (inputs never include the targets);
    with ``exclude_seen`` each sequence's earlier items are left out of its ranking."""
    model.eval()
    inputs, targets = eval_examples(sessions, mode, max_len)
    seen = seen_items(sessions, mode) if exclude_seen else None
    acc = MetricAccumulator()
    for start in range(0, len(inputs), batch_size):
        batch = inputs[start:start + batch_size].to(device)
        scores = model.last_logits(batch).float()
        if seen is not None:
            rows, cols = seen_rows(seen[start:start + batch_size], device)
            scores[rows, cols] = float("-inf")  # ranked after every unseen item (ties pessimistic)
        acc.add(scores, targets[start:start + batch_size].to(device))
    return acc


def seen_items(sessions: Sessions, mode: TargetMode = "last") -> list[np.ndarray]:
    """Each sequence's items before its target(s): the whole history, not only the last
    ``max_len`` the model reads, since a user has seen all of it."""
    if mode == "last":
        return [s[:-1] for s in sessions.items]
    return [s[:max(1, len(s) // 2)] for s in sessions.items]


def seen_rows(seen: list[np.ndarray], device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, item) indices of every seen item of a batch, for one masked assignment."""
    lengths = torch.tensor([len(s) for s in seen])
    rows = torch.repeat_interleave(torch.arange(len(seen)), lengths)
    cols = torch.from_numpy(np.concatenate(seen).astype(np.int64)) if len(seen) else torch.zeros(0, dtype=torch.long)
    return rows.to(device), cols.to(device)


def seeded_sample(sessions: Sessions, n: int, seed: int) -> Sessions:
    """``n`` of ``sessions`` drawn without replacement with ``seed``, kept in their order."""
    keep = np.sort(np.random.default_rng(seed).choice(len(sessions), n, replace=False))
    return Sessions([sessions.items[i] for i in keep], [sessions.actions[i] for i in keep])


def budget_windows(train: Sessions, cfg: TrainConfig, seed: int) -> Sessions:
    """The training windows a run trains on (:func:`training_windows`): all of them, or with
    ``cfg.max_windows`` a sample of that many drawn with ``seed`` (kept in their order), so the
    student and the teacher cache built for it see the same ones."""
    windows = training_windows(train, cfg.max_len)
    if cfg.max_windows is None or cfg.max_windows >= len(windows):
        return windows
    return seeded_sample(windows, cfg.max_windows, seed)


#: The seed of the evaluation sample (:func:`eval_sample`): fixed, not the run's seed, so every
#: model and seed is scored on the same sessions and paired comparisons stay paired.
EVAL_SAMPLE_SEED = 0


def eval_sample(sessions: Sessions, cfg: TrainConfig) -> Sessions:
    """The sessions an evaluation scores: all of them, or with ``cfg.max_eval_sessions`` a sample
    of that many drawn with :data:`EVAL_SAMPLE_SEED` (kept in their order)."""
    if cfg.max_eval_sessions is None or cfg.max_eval_sessions >= len(sessions):
        return sessions
    return seeded_sample(sessions, cfg.max_eval_sessions, EVAL_SAMPLE_SEED)


def fit(
    model: torch.nn.Module,
    train: Sessions,
    valid: Sessions,
    cfg: TrainConfig,
    seed: int,
    loss_fn: LossFn | None = None,
    progress: bool = True,
    keep_last: bool = False,
    checkpoint: str | Path | None = None,
    keep_checkpoint: bool = False,
) -> FitResult:
    """Train with AdamW, evaluate on validation every epoch, stop early, keep the best state.

    ``keep_last`` trains all ``cfg.epochs`` and keeps the last state (a refit whose epoch count
    was chosen before, when the validation data is part of ``train`` and cannot select).

    ``checkpoint``: after every epoch the whole training state (weights, optimiser, every random
    generator, history, best state) is written there atomically, and a call that finds one made
    with the same settings continues after its last epoch, so a killed job rerun ends exactly
    where an uninterrupted one would. The file is removed once training ends, unless
    ``keep_checkpoint`` (a refit follows: a job killed during the refit must not train the
    selection run again; the caller removes it).

    ``progress`` shows a tqdm bar per epoch; a one-line summary is printed after every epoch.
    """
    device = pick_device(cfg.device)
    model.to(device)
    valid = eval_sample(valid, cfg)
    loss_fn = loss_fn or full_cross_entropy(cfg.loss_positions)
    # A loss with parameters of its own (a distillation method's regressor, a peer trained online)
    # trains, switches mode and is checkpointed with the model.
    loss_module = loss_fn if isinstance(loss_fn, torch.nn.Module) else None
    parameters = list(model.parameters())
    if loss_module is not None:
        loss_module.to(device)
        parameters += [p for p in loss_module.parameters() if p.requires_grad]
    optimiser = adamw(parameters, cfg, device)
    generator = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    best_score, best_epoch, best_state, since_best = -1.0, 0, copy.deepcopy(model.state_dict()), 0
    train = budget_windows(train, cfg, seed)
    n_batches = -(-len(train) // cfg.batch_size)
    started = time.perf_counter()
    # Settings left at None are not part of the key: a setting added later (default None) does
    # not orphan the checkpoints written before it.
    settings = {k: v for k, v in asdict(cfg).items() if v is not None}
    key = {"settings": settings, "seed": seed, "keep_last": keep_last, "train_sequences": len(train),
           "parameters": count_parameters(model)}
    if loss_module is not None:
        key["loss_parameters"] = count_parameters(loss_module)
    generators = {"batches": generator, **loss_generators(loss_fn)}
    start_epoch, elapsed = 1, 0.0
    state = _load_checkpoint(checkpoint, key)
    if state is not None:
        model.load_state_dict(state["model"])
        if loss_module is not None:
            loss_module.load_state_dict(state["loss"])
        optimiser.load_state_dict(state["optimiser"])
        _set_rng_states(state["rng"], generators)
        history, best_state = state["history"], state["best_state"]
        best_score, best_epoch, since_best = state["best_score"], state["best_epoch"], state["since_best"]
        start_epoch, elapsed = state["epoch"] + 1, state["elapsed"]
        print(f"resumed from {checkpoint} after epoch {state['epoch']}", flush=True)
        if state["stopped"]:
            start_epoch = cfg.epochs + 1
    started -= elapsed
    for epoch in range(start_epoch, cfg.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        if loss_module is not None:
            loss_module.train()
        total, count = 0.0, 0
        bar = tqdm(train_batches(train, cfg.batch_size, generator, cfg.max_len), total=n_batches,
                   desc=f"epoch {epoch}", leave=False, disable=not progress)
        for inputs, targets in bar:
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(model, inputs.to(device), targets.to(device))
            loss.backward()
            optimiser.step()
            total += loss.item()
            count += 1
            bar.set_postfix(loss=f"{total / count:.4f}")
        train_seconds = time.perf_counter() - epoch_start
        metrics = evaluate(model, valid, "last", cfg.eval_batch_size, cfg.max_len, device, cfg.exclude_seen).result()
        history.append({"epoch": epoch, "train_loss": total / max(count, 1),
                        "epoch_seconds": train_seconds, **metrics})
        print(f"epoch {epoch}: loss {total / max(count, 1):.4f}  valid {cfg.select_metric} "
              f"{metrics[cfg.select_metric]:.4f}  ({train_seconds:.1f} s)", flush=True)
        if keep_last or metrics[cfg.select_metric] > best_score:
            best_score, best_epoch, since_best = metrics[cfg.select_metric], epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since_best += 1
        stop = since_best >= cfg.patience
        if checkpoint is not None:
            _save_checkpoint(checkpoint, {
                "key": key, "epoch": epoch, "stopped": stop, "elapsed": time.perf_counter() - started,
                "model": model.state_dict(), "optimiser": optimiser.state_dict(),
                **({"loss": loss_module.state_dict()} if loss_module is not None else {}),
                "rng": _rng_states(generators), "history": history, "best_state": best_state,
                "best_score": best_score, "best_epoch": best_epoch, "since_best": since_best})
        if stop:
            break
    model.load_state_dict(best_state)
    if checkpoint is not None and not keep_checkpoint:
        Path(checkpoint).unlink(missing_ok=True)
    return FitResult(history, best_epoch, best_state, time.perf_counter() - started)


def adamw(parameters: list[torch.nn.Parameter], cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """The optimiser every model trains with: AdamW, fused on CPU and CUDA.

    Why fused: the item tables (embedding and output layer, ``n_items`` rows each) make every step
    update millions of weights, and the default kernel walks them about ten times per step. On
    Yoochoose 1/64 (37k items, the student's 4.9 M parameters, 1 thread) a step took 104 ms with
    the default, 62 ms with ``foreach`` and 13 ms fused: 46 % of the student's training time
    before. The update is the same AdamW, equal to the default's up to rounding
    (``tests/test_train.py``; time it: ``python -m recpress_utils.train``). A checkpoint written
    before keeps the optimiser it was written with.
    """
    return torch.optim.AdamW(parameters, lr=cfg.lr, weight_decay=cfg.weight_decay,
                             fused=device.type in ("cpu", "cuda"))


def loss_generators(loss_fn: LossFn) -> dict[str, torch.Generator]:
    """The random generators a loss draws from, by name, for checkpoints: a plain loss's
    ``generator`` (negatives, masks) as ``loss``; a distillation method's own, its base loss's
    and, for a peer trained alongside (deep mutual learning), the peer's loss's."""
    named = {"loss": getattr(loss_fn, "generator", None),
             **{name: getattr(getattr(loss_fn, name, None), "generator", None) for name in ("base_loss", "peer_loss")}}
    return {name: g for name, g in named.items() if g is not None}


def _rng_states(generators: dict[str, torch.Generator | None]) -> dict[str, Any]:
    """Every random state training draws from: torch's global (dropout), numpy's, Python's, and
    the run's own generators (batch order; a loss's negatives or masks)."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            **{name: g.get_state() for name, g in generators.items() if g is not None}}


def _set_rng_states(states: dict[str, Any], generators: dict[str, torch.Generator | None]) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    for name, g in generators.items():
        if g is not None:
            g.set_state(states[name])


def _save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path: str | Path | None, key: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it was written by a run with the same settings (else None:
    a checkpoint of other settings must never be continued)."""
    if path is None or not Path(path).exists():
        return None
    state = torch.load(path, weights_only=False)
    return state if state.get("key") == key else None


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def benchmark_optimiser(n_items: int = 37_484, dim: int = 64, repeats: int = 7, threads: int = 1
                        ) -> dict[str, float]:
    """Milliseconds per AdamW step over the student's parameters at ``n_items``, for torch's
    default kernel, ``foreach`` and ``fused`` (what :func:`adamw` picks), timed in turns
    (:func:`recpress_utils.latency.time_in_turns`), so shared cores slow them alike."""
    from recpress_utils.latency import time_in_turns
    from recpress_utils.models import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    params = list(build_model("student", n_items, emb_dim=dim).parameters())
    print(f"the student at {n_items:,} items: {sum(p.numel() for p in params):,} parameters")
    for p in params:
        p.grad = torch.randn_like(p)
    kinds = {"default": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    steps = {name: torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01, **kw).step for name, kw in kinds.items()}
    ms = {name: 1000 * t["median"] for name, t in time_in_turns(steps, repeats, warmup=1).items()}
    for name, value in ms.items():
        print(f"AdamW {name:8s} {value:8.1f} ms per step  ({ms['default'] / value:.1f}x the default)")
    return ms


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Time one AdamW step per kernel (python -m recpress_utils.train).")
    parser.add_argument("--n-items", type=int, default=37_484, help="catalogue size (default: Yoochoose 1/64's)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    benchmark_optimiser(args.n_items, threads=args.threads)
