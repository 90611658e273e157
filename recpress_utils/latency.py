"""Latency of returning the top 100 items, per 1,000 requests (paper Table 6), measured fairly.

Every model is timed in one process, on the same requests, at its best (eval mode,
``torch.inference_mode``, its cheapest last-position path), batched and one request at a
time, after warm-up, over repeated runs (median and spread). Two references frame the numbers:

- the **scoring floor**: one (requests x 64) @ (64 x |I|) product plus top-100, which no model
  that scores every item with a 64-d vector can beat;
- the teacher **as the paper describes it**, looking every item's neighbours up in the
  knowledge graph for every request, beside the same teacher with precomputed neighbour tables.

The default dataset has ~2k items, where every model ends in the same small output product;
:func:`catalogue_scaling` times the same architectures, with random weights, at the paper's
catalogue sizes (~150k products), where that product dominates.
"""

from __future__ import annotations

import copy
import gc
import io
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from recpress_utils.data.synthetic import SyntheticConfig
from recpress_utils.io import read_json, write_json
from recpress_utils.kg import Edges, KnowledgeGraph
from recpress_utils.models import build_model, uses_kg
from recpress_utils.models.mixed_attention import MixedAttention
from recpress_utils.models.session_knn import SessionKNN
from recpress_utils.runs import load_run
from recpress_utils.sequences import PAD, eval_examples, load_sessions, n_items

TOP_K = 100
#: Catalogue sizes of :func:`catalogue_scaling`: the default dataset's order, 10x, the paper's.
CATALOGUE_SIZES: tuple[int, ...] = (2_000, 20_000, 150_000)
#: Display label -> (name in :data:`~recpress_utils.models.MODELS`, constructor settings).
Architectures = Mapping[str, tuple[str, Mapping[str, Any]]]


def time_call(fn: Callable[[], object], repeats: int = 7, warmup: int = 2) -> dict[str, float]:
    """Median, min, max and interquartile range of ``fn``'s wall time in seconds."""
    return time_in_turns({"fn": fn}, repeats, warmup)["fn"]


def time_in_turns(fns: Mapping[str, Callable[[], object]], repeats: int = 7, warmup: int = 2
                  ) -> dict[str, dict[str, float]]:
    """:func:`time_call`'s statistics for several calls timed in turns, not one after another.

    Each round runs every call once, starting one further along each round, so a burst of
    load from other processes on shared cores slows all of them alike instead of whichever
    happened to be running: the ratios between them stay fair.
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    runs: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            fns[name]()
            runs[name].append(time.perf_counter() - start)
    return {name: _summary(times) for name, times in runs.items()}


def _summary(runs: list[float]) -> dict[str, float]:
    q1, _, q3 = statistics.quantiles(runs, n=4) if len(runs) > 1 else (runs[0],) * 3
    return {"median": statistics.median(runs), "min": min(runs), "max": max(runs), "iqr": q3 - q1,
            "repeats": len(runs)}


def _scaled(stats: dict[str, float], factor: float) -> dict[str, float]:
    return {k: (v * factor if k != "repeats" else v) for k, v in stats.items()}


def batched_seconds_per_1000(model: torch.nn.Module, requests: torch.Tensor, repeats: int = 7) -> dict:
    """Seconds to return the top 100 for 1,000 requests sent as one batch."""
    return _scaled(time_call(_batched_call(model, requests), repeats), 1000 / len(requests))


def _batched_call(model: torch.nn.Module, requests: torch.Tensor, bucket: int = 128
                  ) -> Callable[[], object]:
    """One top-100 ``recommend`` over all ``requests``, scored ``bucket`` requests at a time
    (at most ``bucket x n_items`` logits at once: 77 MB at 150k items, not 600 MB)."""
    model.eval()
    k = min(TOP_K, model.n_items - 1)
    return lambda: model.recommend(requests, k, bucket)


def single_seconds_per_1000(
    model: torch.nn.Module, requests: torch.Tensor, n_single: int = 200, repeats: int = 3
) -> dict:
    """Seconds per 1,000 requests answered one at a time (measured on ``n_single``, scaled)."""
    model.eval()
    rows = [r[r != PAD][None] for r in requests[:n_single]]  # each request at its own length
    k = min(TOP_K, model.n_items - 1)

    def one_by_one() -> None:
        for row in rows:
            model.recommend(row, k)

    return _scaled(time_call(one_by_one, repeats, warmup=1), 1000 / len(rows))


def scoring_floor(n_items: int, n_requests: int = 1000, dim: int = 64, repeats: int = 7,
                  seed: int = 0) -> dict[str, dict[str, float]]:
    """The cost no model can go below: a 64-d user vector against every item, then top-100."""
    return {name: _scaled(time_call(_floor_call(n_items, n_requests, dim, seed, topk), repeats),
                          1000 / n_requests)
            for name, topk in (("product", False), ("product_topk", True))}


def _floor_call(n_items: int, n_requests: int, dim: int, seed: int, topk: bool,
                bucket: int | None = None) -> Callable[[], object]:
    """The floor's work: random (requests x dim) @ (dim x n_items), then top-100 if ``topk``;
    in chunks of ``bucket`` requests as ``recommend`` scores them, else in one product."""
    gen = torch.Generator().manual_seed(seed)
    users = torch.randn(n_requests, dim, generator=gen)
    items = torch.randn(dim, n_items, generator=gen)
    chunks = users.split(bucket or n_requests)
    k = min(TOP_K, n_items)

    def run() -> None:
        with torch.inference_mode():
            for chunk in chunks:
                scores = chunk @ items
                if topk:
                    torch.topk(scores, k, dim=1)

    return run


def model_size(model: torch.nn.Module) -> dict[str, int]:
    """Trainable parameters, bytes of the saved state dict (the checkpoint that ships to a
    server) and, stated apart, bytes of the dataset's tables inference also needs (the KG
    teacher's neighbour tables: buffers stored once per dataset, not in the checkpoint)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    saved = set(model.state_dict())
    tables = sum(b.numel() * b.element_size() for name, b in model.named_buffers() if name not in saved)
    return {"parameters": sum(p.numel() for p in model.parameters()), "bytes": buffer.getbuffer().nbytes,
            "table_bytes": tables}


class GraphTraversalTeacher(MixedAttention):
    """The teacher as the paper describes it: neighbours looked up in the graph per request.

    Same weights and same outputs as the table-based teacher (tested), but
    :meth:`neighbors_for` looks every item of every request up in the graph's adjacency
    instead of indexing precomputed top-``top_m`` tables. The adjacency is the graph's edge
    list, converted once to per-property CSR arrays whose rows are already in the paper's
    order (weight desc, then id asc): a look-up is a walk to the item's row and a read of its
    first ``top_m`` entries, not a walk over a graph library's dicts plus a sort of every
    neighbour, which on a dense graph (MovieLens-100k) made one benchmark take more than 9 minutes.
    """

    properties: list[str]
    top_m: int
    #: Per property: CSR ``(indptr (n_items + 1,), neighbours, weights)``, rows sorted.
    adjacency: list[tuple[np.ndarray, np.ndarray, np.ndarray]]

    @classmethod
    def from_teacher(cls, teacher: MixedAttention, graph: KnowledgeGraph) -> "GraphTraversalTeacher":
        model = copy.deepcopy(teacher)
        model.__class__ = cls
        model.properties = graph.properties
        model.top_m = teacher.neighbor_index.shape[-1]
        model.adjacency = [_sorted_adjacency(graph.edges[p], teacher.n_items) for p in graph.properties]
        return model

    def neighbors_for(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = items.reshape(-1).tolist()
        n_props = len(self.properties)
        index = np.zeros((len(flat), n_props, self.top_m), dtype=np.int64)
        weight = np.zeros((len(flat), n_props, self.top_m), dtype=np.float32)
        for row, item in enumerate(flat):
            if item == PAD:
                continue
            for p, (indptr, neighbours, weights) in enumerate(self.adjacency):
                start = indptr[item]
                stop = min(indptr[item + 1], start + self.top_m)
                index[row, p, :stop - start] = neighbours[start:stop]
                weight[row, p, :stop - start] = weights[start:stop]
        shape = (*items.shape, n_props, self.top_m)
        return (torch.from_numpy(index).view(shape).to(items.device),
                torch.from_numpy(weight).view(shape).to(items.device))


def _sorted_adjacency(edges: Edges, n_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CSR adjacency of one property over nodes ``0..n_items-1``, each row sorted once.

    Row ``i`` holds both ends of every edge at ``i`` (a self-loop once), ordered by weight
    descending, then neighbour id ascending: the order of the neighbour tables. Nodes outside
    the model's catalogue can never be looked up and are left out.
    """
    twice = edges.u != edges.v
    src = np.concatenate([edges.u, edges.v[twice]])
    dst = np.concatenate([edges.v, edges.u[twice]])
    w = np.concatenate([edges.weight, edges.weight[twice]])
    inside = src < n_items
    src, dst, w = src[inside], dst[inside], w[inside]
    order = np.lexsort((dst, -w, src))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n_items))])
    return indptr, dst[order], w[order]


def benchmark(
    models: dict[str, torch.nn.Module],
    requests: torch.Tensor,
    n_items: int,
    threads: int,
    repeats: int = 7,
    n_single: int = 200,
) -> dict:
    """Time every model (batched and single) and the floor in one run; sizes too."""
    torch.set_num_threads(threads)
    floor = scoring_floor(n_items, len(requests), repeats=repeats)
    out = {"threads": threads, "n_requests": len(requests), "n_items": n_items, "top_k": TOP_K,
           "floor": floor, "models": {}}
    for name, model in models.items():
        batched = batched_seconds_per_1000(model, requests, repeats)
        out["models"][name] = {
            "batched": batched,
            "single": single_seconds_per_1000(model, requests, n_single),
            "x_floor": batched["median"] / floor["product_topk"]["median"],
            **model_size(model),
        }
    return out


def random_neighbor_tables(n_items: int, n_properties: int, top_m: int, seed: int = 0
                           ) -> dict[str, Any]:
    """Random neighbour tables in the format of :meth:`KnowledgeGraph.neighbor_tables`.

    The teacher's cost depends on the tables' shape (``n_properties x n_items x top_m``), not
    on which items are neighbours, so timing it at a catalogue size with no graph needs only
    well-formed tables: every item (row 0, padding, stays empty) gets ``top_m`` distinct
    neighbours other than itself, spread over the whole catalogue, with weights in [0.1, 1)
    and sorted as the real tables are (weight desc, then id asc). Rows are drawn directly
    rather than through a random :class:`KnowledgeGraph`, which at 150k items took 18 s and
    1 GB; the relation is therefore not symmetric, which the teacher never reads.
    """
    catalogue = n_items - 1
    if not 1 <= top_m < catalogue:
        raise ValueError(f"top_m must be in [1, {catalogue - 1}] for {catalogue} items, got {top_m}")
    rng = np.random.default_rng(seed)
    index = np.zeros((n_properties, n_items, top_m), dtype=np.int64)
    weight = np.zeros((n_properties, n_items, top_m), dtype=np.float32)
    rows = np.arange(catalogue)[:, None]
    for p in range(n_properties):
        # strictly increasing offsets in [1, catalogue - 1]: distinct neighbours, never the item
        offsets = rng.integers(1, (catalogue - 1) // top_m + 1, size=(catalogue, top_m)).cumsum(axis=1)
        neighbours = (rows + offsets) % catalogue + 1
        w = rng.uniform(0.1, 1.0, size=(catalogue, top_m)).astype(np.float32)
        order = np.lexsort((neighbours, -w), axis=-1)
        index[p, 1:] = np.take_along_axis(neighbours, order, axis=-1)
        weight[p, 1:] = np.take_along_axis(w, order, axis=-1)
    return {"properties": [f"random_{p}" for p in range(n_properties)],
            "index": torch.from_numpy(index), "weight": torch.from_numpy(weight)}


def _random_model(name: str, n_items: int, settings: Mapping[str, Any], top_m: int, seed: int
                  ) -> torch.nn.Module:
    """Model ``name`` over ``n_items`` (incl. padding) with seeded random weights, in eval mode.

    Latency does not depend on the weights' values, so no training is needed at catalogue
    sizes no dataset here has; a KG model gets random tables of the real shape.
    """
    with torch.random.fork_rng(devices=[]):  # seeded without moving the caller's generator
        torch.manual_seed(seed)
        model = build_model(name, n_items, **settings)
    if uses_kg(name):
        model.set_neighbor_tables(random_neighbor_tables(n_items, model.n_projections, top_m, seed))
    return model.eval()


def _request_lengths(n_requests: int, pool: Sequence[int] | None, rng: np.random.Generator,
                     max_len: int = 50) -> np.ndarray:
    """``n_requests`` session lengths: drawn from ``pool`` (e.g. a test set's) with replacement,
    else from the synthetic generator's REES46-like log-normal law, cut to ``[1, max_len]``."""
    if pool is not None:
        return np.maximum(rng.choice(np.asarray(pool, dtype=np.int64), n_requests), 1)
    law = SyntheticConfig()
    drawn = law.session_length_median * np.exp(law.session_length_sigma * rng.standard_normal(n_requests))
    return np.clip(np.rint(drawn), 1, max_len).astype(np.int64)


def _random_requests(n_items: int, lengths: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """Left-padded sessions of the given lengths over items ``1..n_items-1``, drawn uniformly."""
    width = int(lengths.max())
    ids = rng.integers(1, n_items, size=(len(lengths), width))
    ids[np.arange(width)[None, :] < (width - lengths)[:, None]] = PAD
    return torch.from_numpy(ids)


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: the high-water mark since the last reset
    (Linux ``VmHWM``), else the lifetime peak."""
    status = Path("/proc/self/status")
    if status.exists():
        line = next(x for x in status.read_text().splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, else kB
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


class _PeakRSS:
    """Peak resident memory (MB) of a stretch of work and of the whole run.

    Linux lets a process reset its high-water mark (``/proc/self/clear_refs``), so each
    stretch gets its own peak (``scope = "stretch"``); elsewhere every reading is the
    process's lifetime peak (``scope = "process"``), an upper bound.
    """

    def __init__(self) -> None:
        self.scope = "stretch" if self._reset() else "process"
        self._overall = 0.0

    @staticmethod
    def _reset() -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            return False
        return True

    def start(self) -> None:
        """Close the previous stretch (building counts toward the overall peak), start one."""
        self._overall = max(self._overall, peak_rss_mb())
        gc.collect()
        self._reset()

    def stop(self) -> float:
        """Peak since :meth:`start`."""
        peak = peak_rss_mb()
        self._overall = max(self._overall, peak)
        return peak

    def overall(self) -> float:
        """Peak since construction, every stretch included."""
        return max(self._overall, peak_rss_mb())


#: The name under which :func:`catalogue_scaling` times the scoring floor among the models.
_FLOOR = "scoring floor"


def catalogue_scaling(
    architectures: Architectures,
    sizes: Sequence[int] = CATALOGUE_SIZES,
    n_requests: int = 1000,
    lengths: Sequence[int] | None = None,
    repeats: int = 5,
    warmup: int = 1,
    bucket: int = 128,
    top_m: int = 20,
    seed: int = 0,
) -> dict[str, Any]:
    """Batched top-100 latency of each architecture at each catalogue size, random weights.

    At the default dataset's ~2k items every model ends in the same small output product, so
    its latency ratios say little about the paper's ~150k products, where that product
    dominates. Here every architecture (display label -> registry name and constructor
    settings, e.g. as configured) is rebuilt at ``sizes`` items (padding excluded) with seeded
    random weights (KG models with random tables of ``top_m`` neighbours), and answers the
    same ``n_requests`` requests (lengths drawn from ``lengths``, e.g. the test set's, else a
    log-normal law; items uniform) in chunks of ``bucket`` requests, so at most
    ``bucket x size`` logits exist at once. At each size the models and the chunked scoring
    floor are timed in turns (:func:`time_in_turns`; median of ``repeats`` after ``warmup``
    rounds), so load on shared cores does not bias their ratios.

    Returns a JSON-ready dict: the settings; ``records``, one per model and size (``model``,
    ``architecture``, ``n_items``, ``batched_s_per_1000`` (median), ``iqr``, ``min``,
    ``parameters``, ``x_floor``); ``floor``, one per size (``n_items``,
    ``batched_s_per_1000``, ``iqr``); ``peak_rss``, one per size (``n_items``,
    ``peak_rss_mb`` while timing, every model of the size resident); the whole call's
    ``peak_rss_mb`` (building included) and ``wall_s``. :func:`scaling_ratios` reads ``records``.
    """
    if _FLOOR in architectures:
        raise ValueError(f"{_FLOOR!r} is the floor's label; name the model otherwise")
    started = time.perf_counter()
    rss = _PeakRSS()
    rng = np.random.default_rng(seed)
    request_lengths = _request_lengths(n_requests, lengths, rng)
    records, floors, peak_rss = [], [], []
    for size in sizes:
        requests = _random_requests(size + 1, request_lengths, rng)
        models = {label: _random_model(name, size + 1, settings, top_m, seed)
                  for label, (name, settings) in architectures.items()}
        calls = {label: _batched_call(model, requests, bucket) for label, model in models.items()}
        calls[_FLOOR] = _floor_call(size + 1, n_requests, 64, seed, topk=True, bucket=bucket)
        rss.start()
        stats = {label: _scaled(s, 1000 / n_requests)
                 for label, s in time_in_turns(calls, repeats, warmup).items()}
        peak_rss.append({"n_items": size, "peak_rss_mb": rss.stop()})
        floor = stats.pop(_FLOOR)
        floors.append({"n_items": size, "batched_s_per_1000": floor["median"], "iqr": floor["iqr"]})
        records += [{"model": label, "architecture": architectures[label][0], "n_items": size,
                     "batched_s_per_1000": s["median"], "iqr": s["iqr"], "min": s["min"],
                     "parameters": sum(p.numel() for p in models[label].parameters()),
                     "x_floor": s["median"] / floor["median"]}
                    for label, s in stats.items()]
        del models, calls
    return {
        "sizes": list(sizes), "n_requests": n_requests, "top_k": TOP_K, "bucket": bucket,
        "repeats": repeats, "warmup": warmup, "top_m": top_m, "seed": seed,
        "threads": torch.get_num_threads(),
        "request_lengths": {"source": "given" if lengths is not None else "log-normal",
                            "mean": float(request_lengths.mean()),
                            "median": float(np.median(request_lengths)),
                            "max": int(request_lengths.max())},
        "records": records, "floor": floors, "peak_rss": peak_rss,
        "peak_rss_mb": rss.overall(), "peak_rss_scope": rss.scope,
        "wall_s": time.perf_counter() - started,
    }


def scaling_ratios(records: Iterable[Mapping[str, Any]], student: str, teacher: str, baseline: str,
                   statistic: str = "batched_s_per_1000") -> list[dict[str, float]]:
    """Per catalogue size, how many times faster the student is than the teacher and baseline.

    ``statistic`` is the record field compared: the median by default; ``"min"`` is the
    estimate least disturbed by other processes on shared cores.
    """
    seconds = {(r["model"], r["n_items"]): r[statistic] for r in records}
    return [{"n_items": size,
             "student_vs_teacher": seconds[teacher, size] / seconds[student, size],
             "student_vs_baseline": seconds[baseline, size] / seconds[student, size]}
            for size in sorted({size for _, size in seconds})]


def _run_architecture(run_dir: str | Path, model: torch.nn.Module) -> tuple[str, dict[str, Any]]:
    """A run's registry name and constructor settings as trained (its ``metrics.json``), with
    the KG projection count its neighbour tables gave it (not part of the settings)."""
    info = read_json(Path(run_dir) / "metrics.json")
    settings = dict(info["model_kwargs"])
    if uses_kg(info["model"]):
        settings["n_projections"] = model.n_projections
    return info["model"], settings


def run_benchmark(
    prepared_dir: str | Path,
    runs: dict[str, str | Path],
    teacher: str,
    neighbors_path: str | Path,
    graph_path: str | Path,
    out_path: str | Path,
    threads: int,
    repeats: int = 7,
    n_single: int = 200,
    n_requests: int = 1000,
    catalogue_sizes: Sequence[int] = (),
) -> dict:
    """Load the trained models named in ``runs``, add the graph-traversing teacher, time all.

    ``teacher`` names the entry of ``runs`` that is the distillation teacher; when it reads the
    knowledge graph (Mixed Attention) it is timed with its tables and, as
    ``"<teacher> (graph traversal)"``, with graph look-ups; any other teacher is timed as is.
    With ``catalogue_sizes``, the same architectures and settings are also timed at those
    catalogue sizes (:func:`catalogue_scaling`, on the test requests' lengths), under the key
    ``catalogue_scaling``.
    """
    test = load_sessions(prepared_dir, "test")
    inputs, _ = eval_examples(test, "last")
    requests = inputs[torch.arange(n_requests) % len(inputs)]
    models = {name: load_run(run_dir, prepared_dir, neighbors_path) for name, run_dir in runs.items()}
    if isinstance(models[teacher], MixedAttention):
        kg = KnowledgeGraph.read(graph_path)
        models[f"{teacher} (graph traversal)"] = GraphTraversalTeacher.from_teacher(models[teacher], kg)
    result = benchmark(models, requests, n_items(prepared_dir), threads, repeats, n_single)
    result["runs"] = {name: str(path) for name, path in runs.items()}
    if catalogue_sizes:
        result["catalogue_scaling"] = catalogue_scaling(
            # session kNN's cost grows with its indexed sessions, not the catalogue: timed on the data only
            {name: _run_architecture(run_dir, models[name]) for name, run_dir in runs.items()
             if not isinstance(models[name], SessionKNN)},
            catalogue_sizes, n_requests, lengths=(requests != PAD).sum(dim=1).tolist(),
            repeats=repeats, top_m=int(torch.load(neighbors_path)["index"].shape[-1]))
    write_json(result, out_path)
    return result


def latency_table(result: dict) -> pd.DataFrame:
    """Seconds per 1,000 requests per model, its spread, size and multiple of the scoring floor."""
    rows = {}
    for name, row in result["models"].items():
        rows[name] = {
            "batched s/1000": row["batched"]["median"],
            "batched IQR": row["batched"]["iqr"],
            "single s/1000": row["single"]["median"],
            "x floor (batched)": row["x_floor"],
            "parameters": row["parameters"],
            "MB on disk": row["bytes"] / 1e6,
            # what inference reads beside the checkpoint (older digests kept it inside "on disk")
            **({"MB of data tables": row["table_bytes"] / 1e6} if "table_bytes" in row else {}),
        }
    floor = result["floor"]["product_topk"]
    rows["scoring floor (64 x |I| product + top-100)"] = {
        "batched s/1000": floor["median"], "batched IQR": floor["iqr"], "x floor (batched)": 1.0}
    return pd.DataFrame(rows).T


def speed_ratios(result: dict, student: str, teacher: str, baseline: str) -> dict[str, float]:
    """How many times faster the student is than the teacher (with tables and, for a KG
    teacher, with graph traversal) and than the baseline, batched and one request at a time."""
    out = {}
    for mode in ("batched", "single"):
        time = {name: row[mode]["median"] for name, row in result["models"].items()}
        others = {"teacher (tables)": teacher, "teacher (graph traversal)": f"{teacher} (graph traversal)",
                  "baseline": baseline}
        out.update({f"student vs {label}, {mode}": time[name] / time[student]
                    for label, name in others.items() if name in time})
    return out


def size_latency(prepared_dir: str | Path, runs: Mapping[str, str | Path], out_path: str | Path, threads: int,
                 repeats: int = 7, n_requests: int = 1000) -> dict:
    """Batched seconds per 1,000 top-100 requests of one trained student per size (``runs``: size ->
    run folder; the distillation toolkit's no-KD controls), timed in turns in one process on the
    test requests, with each student's size: the latency axis of the toolkit's compression figure.
    A method changes the weights, never the cost, so one student per size is timed."""
    torch.set_num_threads(threads)
    test = load_sessions(prepared_dir, "test")
    inputs, _ = eval_examples(test, "last")
    requests = inputs[torch.arange(n_requests) % len(inputs)]
    models = {size: load_run(run_dir, prepared_dir) for size, run_dir in runs.items()}
    timed = time_in_turns({size: _batched_call(model, requests) for size, model in models.items()}, repeats)
    result = {"threads": threads, "n_requests": len(requests), "n_items": n_items(prepared_dir),
              "sizes": {size: {"batched": _scaled(timed[size], 1000 / len(requests)), **model_size(models[size]),
                               "run": str(runs[size])} for size in models}}
    write_json(result, out_path)
    return result


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Latency of one student per size (the distillation toolkit).")
    parser.add_argument("--prepared", required=True, help="the prepared dataset folder")
    parser.add_argument("--runs", required=True, help="JSON: size -> run folder")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    size_latency(args.prepared, json.loads(args.runs), args.out, args.threads, args.repeats)
