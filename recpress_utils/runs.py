"""One training run end to end: data in, ``metrics.json`` and the best checkpoint out.

Every later table reads the ``metrics.json`` files written here, so their layout is the
contract: ``test`` (paper's task: the final item), ``test_rest`` (relevant set = the second
half of the session), ``history`` (validation metrics per epoch), settings, seed and times.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import pyarrow.parquet as pq
import torch

from recpress_utils.data.presplit import REFIT_SPLIT
from recpress_utils.distill import distillation_loss
from recpress_utils.io import atomic_path, read_json, write_json
from recpress_utils.models import MODELS, build_model, uses_kg
from recpress_utils.names import PAPER_NAMES, PEER_NAMES, student_name
from recpress_utils.sequences import Sessions, load_sessions, n_items
from recpress_utils.distill.teacher_cache import (TeacherCache, build_teacher_cache, build_teacher_caches,
                                                  load_teacher_cache, save_teacher_caches)
from recpress_utils.losses import LOSSES, LossFn, PopularityPool, build_loss, check_loss
from recpress_utils.train import (FitResult, TrainConfig, budget_windows, count_parameters, eval_sample, evaluate, fit,
                                  pick_device, set_determinism)

@dataclass(frozen=True)
class ModelSpec:
    """One configured model: which architecture, trained with which loss, built how.

    Built from one entry of the config's ``models`` section, whose key is the model's name in
    run folders and tables (``sasrec_bce``). ``architecture`` (a name in
    :data:`~recpress_utils.models.MODELS`) defaults to that key, ``loss`` (a name in
    :data:`~recpress_utils.losses.LOSSES`) to the architecture's ``default_loss``;
    ``loss_settings`` go to the loss, ``settings`` to the model's constructor, and ``train``
    overrides the shared training settings for this model only (BERT4Rec needs more epochs).
    """

    name: str
    architecture: str
    loss: str
    loss_settings: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, name: str, entry: Mapping[str, Any] | None = None) -> "ModelSpec":
        """Validate one ``models`` entry; unknown keys, architectures and losses fail here."""
        entry = dict(entry or {})
        unknown = sorted(set(entry) - {"architecture", "loss", "loss_settings", "settings", "train"})
        if unknown:
            raise ValueError(f"model {name!r}: unknown key(s) {', '.join(unknown)}; "
                             "accepted: architecture, loss, loss_settings, settings, train")
        architecture = entry.get("architecture", name)
        if architecture not in MODELS:
            raise ValueError(f"model {name!r}: unknown architecture {architecture!r}; "
                             f"known: {', '.join(sorted(MODELS))}")
        loss = entry.get("loss", MODELS[architecture].default_loss)
        check_loss(loss, MODELS[architecture])
        spec = cls(name, architecture, loss, dict(entry.get("loss_settings") or {}),
                   dict(entry.get("settings") or {}), dict(entry.get("train") or {}))
        TrainConfig.from_dict(spec.train)  # unknown training keys fail here
        return spec

    def train_config(self, shared: Mapping[str, Any]) -> TrainConfig:
        """The shared training settings with this model's own overrides on top."""
        return TrainConfig.from_dict({**shared, **self.train})

    def display_name(self, node2vec: bool = False) -> str:
        """The paper's name for its models, with the loss when it is not the paper's cross-entropy
        (``Mixed Attention + Node2Vec (sampled softmax, ...)``); for the peers, architecture and loss."""
        loss = getattr(MODELS[self.architecture], "fit_label", None) or LOSSES[self.loss]
        if "n_negatives" in self.loss_settings:
            loss += f", {self.loss_settings['n_negatives']} negatives"
        if paper := PAPER_NAMES.get((self.architecture, node2vec)):
            return paper if self.loss == "cross_entropy" else f"{paper} ({loss})"
        return f"{PEER_NAMES.get(self.architecture, self.name)} ({loss}){' + Node2Vec' if node2vec else ''}"


def teacher_of(config: Mapping[str, Any]) -> tuple[str, str]:
    """The configured distillation teacher: its run group (``distill.teacher``, e.g.
    ``mixed_attention-n2v``) and its display name. The Snakefile and the report both ask here."""
    group = config.get("distill", {}).get("teacher", "mixed_attention-n2v")
    name = group.removesuffix("-n2v")
    spec = ModelSpec.from_config(name, config.get("models", {}).get(name, {}))
    return group, spec.display_name(group.endswith("-n2v"))


#: Where a run keeps its training state after every epoch (removed when training ends), so a
#: killed job that is run again resumes after its last finished epoch.
CHECKPOINT = "checkpoint.pt"


def build_for_data(
    model: str,
    prepared_dir: str | Path,
    model_kwargs: dict[str, Any],
    node2vec_path: str | Path | None = None,
    neighbors_path: str | Path | None = None,
) -> torch.nn.Module:
    """The model sized for the dataset, with Node2Vec vectors and KG tables when given."""
    tables = torch.load(neighbors_path) if neighbors_path is not None and uses_kg(model) else None
    if tables is not None:
        model_kwargs = {**model_kwargs, "n_projections": len(tables["properties"])}
    net = build_model(model, n_items(prepared_dir), **model_kwargs)
    if node2vec_path is not None:
        net.init_item_embeddings(torch.load(node2vec_path))
    if tables is not None:
        net.set_neighbor_tables(tables)
    return net


def _prepared_stats(prepared_dir: str | Path) -> dict[str, Any]:
    stats = Path(prepared_dir) / "stats.json"
    return read_json(stats) if stats.exists() else {}


def cold_test_targets(prepared_dir: str | Path) -> int:
    """Test sequences left out of ``test.parquet`` because their target is outside the
    vocabulary (``stats.json``); the evaluation scores each as a miss."""
    return int(_prepared_stats(prepared_dir).get("cold_targets", {}).get("test", 0))


def target_modes(prepared_dir: str | Path) -> tuple[str, ...]:
    """Target modes to score: ``last`` always; ``rest`` (the later half of a session) only for
    sessions, not for published (prefix, next item) pairs (protocol ``srgnn``), where it has no
    meaning."""
    return ("last",) if _prepared_stats(prepared_dir).get("protocol") == "srgnn" else ("last", "rest")


def evaluate_test(net: torch.nn.Module, test: Sessions, cfg: TrainConfig, cold_targets: int = 0,
                  modes: tuple[str, ...] = ("last", "rest")) -> dict[str, Any]:
    """Test metrics per target mode (SPEC section 6), ``cold_targets`` sessions as misses; under a
    ``cfg.max_eval_sessions`` budget on the fixed sample (:func:`~recpress_utils.train.eval_sample`)
    with the cold targets in proportion."""
    device = pick_device(cfg.device)
    sample = eval_sample(test, cfg)
    if len(sample) < len(test):  # a budget (train.max_eval_sessions): cold targets in proportion
        cold_targets = round(cold_targets * len(sample) / len(test))
    test = sample
    out: dict[str, Any] = {"test_sessions": len(test), "test_cold_targets": cold_targets}
    for key, mode in (("test", "last"), ("test_rest", "rest")):
        if mode not in modes:
            continue
        acc = evaluate(net, test, mode, cfg.eval_batch_size, cfg.max_len, device, cfg.exclude_seen)
        acc.add_misses(cold_targets)
        out[key] = acc.result()
    return out


def train_run(
    spec: ModelSpec,
    prepared_dir: str | Path,
    run_dir: str | Path,
    train_cfg: TrainConfig,
    seed: int,
    threads: int,
    node2vec_path: str | Path | None = None,
    neighbors_path: str | Path | None = None,
    progress: bool = True,
) -> tuple[torch.nn.Module, FitResult, dict[str, Any]]:
    """Train one model with its loss on the training split; write ``metrics.json`` and ``model.pt``.

    A ``counts`` model (popularity) is fitted by counting training items: no epochs, an empty
    history, ``best_epoch`` 0.
    """
    set_determinism(seed, threads)
    splits = {s: load_sessions(prepared_dir, s) for s in ("train", "valid", "test")}
    net = build_for_data(spec.architecture, prepared_dir, spec.settings, node2vec_path,
                         neighbors_path)
    loss = build_loss(spec.loss, seed, train_cfg.loss_positions, spec.loss_settings,
                      item_counts=train_counts(prepared_dir))
    if loss is None:
        result = fit_counts(net, refit_sessions(prepared_dir) if train_cfg.refit else splits["train"])
    else:
        selection = Path(run_dir) / CHECKPOINT
        result = fit(net, splits["train"], splits["valid"], train_cfg, seed, loss_fn=loss,
                     progress=progress, checkpoint=selection, keep_checkpoint=True)
        if train_cfg.refit:
            set_determinism(seed, threads)
            net = build_for_data(spec.architecture, prepared_dir, spec.settings, node2vec_path,
                                 neighbors_path)
            result = refit(net, prepared_dir, splits["valid"], train_cfg, seed, loss, result, progress,
                           Path(run_dir) / f"refit_{CHECKPOINT}")
    info = {
        "model": spec.architecture,
        "display_name": spec.display_name(node2vec_path is not None),
        "node2vec": node2vec_path is not None,
        "model_kwargs": spec.settings,
        "spec": asdict(spec),
    }
    return net, result, _finish_run(net, result, splits["test"], train_cfg, seed, threads, run_dir, info,
                                    prepared_dir)


def train_counts(prepared_dir: str | Path) -> torch.Tensor:
    """Training occurrences of every item id, padding (0) first: ``items.parquet``'s
    ``train_count``, the popularity that popularity-sampled losses draw negatives from."""
    table = pq.read_table(Path(prepared_dir) / "items.parquet", columns=["item_idx", "train_count"])
    counts = torch.zeros(n_items(prepared_dir), dtype=torch.long)
    counts[torch.tensor(table["item_idx"].to_numpy(), dtype=torch.long)] = torch.tensor(
        table["train_count"].to_numpy(), dtype=torch.long)
    return counts


def refit_sessions(prepared_dir: str | Path) -> Sessions:
    """Every training session, for ``train.refit`` (SR-GNN splits write ``train_all.parquet``)."""
    if not (Path(prepared_dir) / f"{REFIT_SPLIT}.parquet").exists():
        raise FileNotFoundError(f"train.refit needs {Path(prepared_dir) / REFIT_SPLIT}.parquet: only the "
                                "SR-GNN datasets (protocol srgnn) keep every training session apart")
    return load_sessions(prepared_dir, REFIT_SPLIT)


def refit(net: torch.nn.Module, prepared_dir: str | Path, valid: Sessions, cfg: TrainConfig, seed: int,
          loss: LossFn, chosen: FitResult, progress: bool, checkpoint: Path | None = None) -> FitResult:
    """Train the fresh ``net`` on every training session for the epochs early stopping chose
    (``chosen.best_epoch``), keeping the last state. The returned history and best epoch are the
    selection run's (what chose the epochs); the refit's own epochs are in ``refit_history``."""
    fixed = replace(cfg, epochs=max(chosen.best_epoch, 1))
    again = fit(net, refit_sessions(prepared_dir), valid, fixed, seed, loss_fn=loss, progress=progress,
                keep_last=True, checkpoint=checkpoint, keep_checkpoint=True)
    return FitResult(chosen.history, chosen.best_epoch, again.best_state,
                     chosen.train_seconds + again.train_seconds, refit_history=again.history)


def fit_counts(net: torch.nn.Module, train: Sessions) -> FitResult:
    """Fit a model that needs no gradient steps (popularity counts, session kNN indexes the
    sessions) on the training sessions: no epochs, no history."""
    started = time.perf_counter()
    net.fit_counts(train.items)
    # session kNN keeps its index as extra state (a dict of tensors, copied by value here too)
    state = {k: v.clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v) for k, v in net.state_dict().items()}
    return FitResult([], 0, state,
                     time.perf_counter() - started)


def distill_run(
    prepared_dir: str | Path,
    run_dir: str | Path,
    teacher: dict[str, Any],
    student_kwargs: dict[str, Any],
    train_cfg: TrainConfig,
    temperature: float,
    seed: int,
    threads: int,
    hard_weight: float = 0.0,
    progress: bool = True,
    top_k: int | None = None,
    negatives: Mapping[str, Any] | None = None,
    teacher_cache: str | Path | None = None,
) -> tuple[torch.nn.Module, FitResult, dict[str, Any]]:
    """Distil the frozen best teacher into the student at ``temperature`` (SPEC section 5).

    ``teacher`` holds ``model``, ``model_kwargs``, ``checkpoint`` and ``neighbors_path`` (or None).
    Teacher logits are computed on the fly on training batches only; with ``top_k`` the
    teacher's top-K per training prefix is computed once, before training, and the student is
    distilled from that (:mod:`recpress_utils.distill.teacher_cache`; its seconds are in the metrics),
    read from the file ``teacher_cache`` when the pipeline built it once for every temperature
    (:func:`teacher_cache_run`). ``negatives`` (``n_negatives``, ``uniform_mix``; needs ``top_k``)
    lets the student score only those K items and a popularity pool per batch, seeded by ``seed``.
    """
    set_determinism(seed, threads)
    splits = {s: load_sessions(prepared_dir, s) for s in ("train", "valid", "test")}
    net_teacher = _trained_teacher(prepared_dir, teacher, train_cfg)
    student = build_for_data("student", prepared_dir, student_kwargs)
    cache, cache_info = None, None
    if top_k is not None:
        cache, cache_info = _teacher_cache(net_teacher, splits["train"], train_cfg, seed, top_k, temperature,
                                           teacher_cache, progress)
    pool = None if negatives is None else PopularityPool(train_counts(prepared_dir), seed=seed, **negatives)
    loss = distillation_loss(net_teacher, temperature, hard_weight, positions=train_cfg.loss_positions, cache=cache,
                             pool=pool)
    result = fit(student, splits["train"], splits["valid"], train_cfg, seed, loss_fn=loss, progress=progress,
                 checkpoint=Path(run_dir) / CHECKPOINT, keep_checkpoint=True)
    info = {
        "model": "student",
        "display_name": student_name(temperature),
        "node2vec": False,
        "model_kwargs": student_kwargs,
        "temperature": temperature,
        "hard_weight": hard_weight,
        "teacher_cache": None if cache is None else {**cache_info,
                                                     "negatives": None if negatives is None else dict(negatives)},
        "teacher": {k: str(v) if isinstance(v, Path) else v for k, v in teacher.items()},
    }
    return student, result, _finish_run(student, result, splits["test"], train_cfg, seed, threads, run_dir,
                                            info, prepared_dir)


@dataclass(frozen=True)
class KDJob:
    """One distillation run's settings, what :func:`kd_fit` trains and :func:`kd_run` records.

    ``method``: its name in the profile's ``kd.methods``, or None for the no-KD control the methods
    are judged against; ``method_settings`` is that entry (``method``, a name in
    :data:`recpress_utils.distill.METHODS`, and its ``settings``). ``teachers``: per teacher its
    ``model``, ``model_kwargs``, ``checkpoint`` (the trained run of the same seed),
    ``neighbors_path`` ("" for none), ``loss`` and ``loss_settings``; the method ``mutual`` trains a
    fresh peer of the first teacher's architecture with that loss instead of loading it.
    ``student_loss`` (``loss``, ``loss_settings``) is the student's own loss, the control's and
    every method's hard term. With ``top_k``, methods that read the teacher's top-K (soft labels,
    RD, RRD: the first teacher's; multi-teacher soft labels: every teacher's) get it cached once per
    training prefix, from the files ``teacher_caches`` (one per teacher, "" for none: built in the
    run; :func:`teacher_cache_run`) where the pipeline built them; ``negatives`` gives soft labels
    the student's sampled pool (as :func:`distill_run`) and deep mutual learning its KL over a pool.
    """

    method: str | None
    method_settings: Mapping[str, Any] | None
    teachers: list[dict[str, Any]]
    student_kwargs: dict[str, Any]
    student_loss: Mapping[str, Any]
    train_cfg: TrainConfig
    seed: int
    threads: int
    top_k: int | None = None
    negatives: Mapping[str, Any] | None = None
    teacher_caches: Sequence[str] = ()


def kd_run(
    prepared_dir: str | Path,
    run_dir: str | Path,
    job: KDJob,
    info: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> tuple[torch.nn.Module, FitResult, dict[str, Any]]:
    """Train the student as :func:`kd_fit` does, checkpointing every epoch in ``run_dir``; then
    test it and write ``metrics.json`` and ``model.pt`` there (``info`` joins the run's ``kd``
    record). A killed run resumes from its epoch checkpoint."""
    student, result, kd_info = kd_fit(prepared_dir, job, progress, checkpoint=Path(run_dir) / CHECKPOINT)
    run_info = {
        "model": "student",
        "display_name": "student, no KD" if job.method is None else f"student, {job.method}",
        "node2vec": False,
        "model_kwargs": job.student_kwargs,
        "kd": {**kd_info, **dict(info or {})},
    }
    return student, result, _finish_run(student, result, load_sessions(prepared_dir, "test"), job.train_cfg,
                                        job.seed, job.threads, run_dir, run_info, prepared_dir)


def kd_fit(
    prepared_dir: str | Path,
    job: KDJob,
    progress: bool = True,
    checkpoint: Path | None = None,
) -> tuple[torch.nn.Module, FitResult, dict[str, Any]]:
    """Fit the student of ``job`` with its method, or with its own loss alone (the control), on
    the training split with validation early stopping; the test split is never read
    (:func:`kd_run` tests, a sweep does not). Returns the student, the fit, and what the run
    records under ``kd``. Teachers are built before the student, so the student starts from the
    same weights in every method and in the control of a seed.
    """
    set_determinism(job.seed, job.threads)
    splits = {s: load_sessions(prepared_dir, s) for s in ("train", "valid")}
    student, loss, kd_info = kd_student_and_loss(prepared_dir, job, splits["train"], progress)
    result = fit(student, splits["train"], splits["valid"], job.train_cfg, job.seed, loss_fn=loss, progress=progress,
                 checkpoint=checkpoint, keep_checkpoint=checkpoint is not None)
    return student, result, kd_info


def kd_student_and_loss(prepared_dir: str | Path, job: KDJob, train: Sessions,
                        progress: bool = True) -> tuple[torch.nn.Module, LossFn, dict[str, Any]]:
    """The untrained student of ``job`` and the loss it trains with (its own loss for the control,
    else the method's over its teachers, their caches and the sampled pool), and what the run
    records under ``kd``: what :func:`kd_fit` trains and the step-cost benchmark
    (:mod:`recpress_utils.distill.cost_bench`) times. Call after :func:`set_determinism`, so a
    seed's student starts from the same weights in every method."""
    from recpress_utils.distill import build_method, caches_every_teacher, uses_teacher_cache

    method, method_settings, teachers, train_cfg, seed = (job.method, job.method_settings, job.teachers,
                                                          job.train_cfg, job.seed)
    student_kwargs, student_loss, top_k, negatives = job.student_kwargs, job.student_loss, job.top_k, job.negatives
    device = pick_device(train_cfg.device)
    kind = None if method is None else (method_settings or {}).get("method")
    if method is not None and kind is None:
        raise ValueError(f"kd method {method!r} names no method (kd.methods.{method}.method)")
    online = kind == "mutual"
    nets = []
    for teacher in teachers:
        net = build_for_data(teacher["model"], prepared_dir, teacher["model_kwargs"],
                             neighbors_path=teacher.get("neighbors_path") or None)
        if not online:
            net.load_state_dict(torch.load(teacher["checkpoint"]))
        nets.append(net.to(device))
    student = build_for_data("student", prepared_dir, student_kwargs)
    counts = train_counts(prepared_dir)
    base_loss = build_loss(student_loss["loss"], seed, train_cfg.loss_positions,
                           student_loss.get("loss_settings"), item_counts=counts)
    settings = dict((method_settings or {}).get("settings") or {})
    loss: LossFn = base_loss
    caches, cache_infos = [], []
    if method is not None:
        if top_k is not None and uses_teacher_cache(kind) and nets:
            files = list(job.teacher_caches) + [""] * len(nets)
            for net, path in list(zip(nets, files))[:len(nets) if caches_every_teacher(kind) else 1]:
                cache, info = _teacher_cache(net, train, train_cfg, seed, top_k,
                                             float(settings.get("temperature", 1.0)), path or None, progress)
                caches.append(cache)
                cache_infos.append(info)
        # the student's sampled pool: for soft labels only beside a teacher cache; mutual learning's
        # KL over the pool needs none (its peer's logits are computed anyway)
        sampled = negatives is not None and (bool(caches) or not uses_teacher_cache(kind))
        pool = PopularityPool(counts, seed=seed, **negatives) if sampled else None
        context: dict[str, Any] = {"base_loss": base_loss, "positions": train_cfg.loss_positions, "seed": seed,
                                   "cache": caches[0] if caches else None, "caches": caches or None, "pool": pool,
                                   "student_width": student.item_output()[0].shape[1]}
        if online:
            context["peer"], nets = nets[0], []
            context["peer_loss"] = build_loss(teachers[0]["loss"], seed, train_cfg.loss_positions,
                                              teachers[0].get("loss_settings"), item_counts=counts)
        loss = build_method(kind, nets, settings, **context)
    kd_info = {"name": method, "method": kind, "spec": dict(method_settings or {}), "student_loss": dict(student_loss),
               "teachers": [{**t, **({} if online else _teacher_test(t["checkpoint"]))} for t in teachers],
               "teacher_cache": cache_infos[0] if cache_infos else None,
               **({"teacher_caches": cache_infos} if len(cache_infos) > 1 else {}),
               "method_parameters": count_parameters(loss) if isinstance(loss, torch.nn.Module) else 0}
    return student, loss, kd_info


def _teacher_test(checkpoint: str | Path) -> dict[str, Any]:
    """The test metrics a frozen teacher's run recorded (``metrics.json`` beside its checkpoint),
    as ``{"test": ...}``, or nothing without one: the report's *% of teacher* then divides by the
    teacher this student learnt from, not by a digest row that a retrained teacher may differ from."""
    metrics = Path(checkpoint).parent / "metrics.json"
    return {"test": read_json(metrics)["test"]} if metrics.exists() else {}


def _trained_teacher(prepared_dir: str | Path, teacher: Mapping[str, Any], train_cfg: TrainConfig) -> torch.nn.Module:
    """The trained ``teacher`` (``model``, ``model_kwargs``, ``checkpoint``, ``neighbors_path``)
    loaded from its checkpoint onto the run's device."""
    net = build_for_data(teacher["model"], prepared_dir, teacher["model_kwargs"],
                         neighbors_path=teacher.get("neighbors_path") or None)
    net.load_state_dict(torch.load(teacher["checkpoint"]))
    return net.to(pick_device(train_cfg.device))


def _teacher_cache(teacher: torch.nn.Module, train: Sessions, train_cfg: TrainConfig, seed: int, top_k: int,
                   temperature: float, path: str | Path | None,
                   progress: bool) -> tuple[TeacherCache, dict[str, Any]]:
    """The teacher's top-K cache at ``temperature`` and what the run records of it: read from
    ``path`` (built once by :func:`teacher_cache_run`; its build seconds are that job's) or, with
    no path, built here for this run alone."""
    if path:
        cache, info = load_teacher_cache(path, temperature)
        if cache.top_k != top_k:
            raise ValueError(f"{path}: teacher cache keeps the top {cache.top_k}, the run asks for {top_k}")
        return cache, {"top_k": top_k, "prefixes": len(cache.keys), "seconds": info["seconds"], "file": str(path)}
    started = time.perf_counter()
    cache = build_teacher_cache(teacher, budget_windows(train, train_cfg, seed), top_k, temperature,
                                train_cfg.eval_batch_size, progress)
    return cache, {"top_k": top_k, "prefixes": len(cache.keys), "seconds": round(time.perf_counter() - started, 1)}


def teacher_cache_run(
    prepared_dir: str | Path,
    out: str | Path,
    teacher: Mapping[str, Any],
    train_cfg: TrainConfig,
    seed: int,
    threads: int,
    top_k: int,
    temperatures: list[float],
    progress: bool = True,
) -> dict[str, Any]:
    """Build the trained ``teacher``'s top-K cache over the student's training windows of
    ``seed`` once, at every temperature its students distil at, and write it to ``out``: the
    pipeline's distill and kd jobs of that teacher read it instead of each running the teacher
    over every training prefix again (minutes per job at 40k items). ``teacher`` as in
    :func:`distill_run`. Returns what the file records besides the cache."""
    set_determinism(seed, threads)
    net = _trained_teacher(prepared_dir, teacher, train_cfg)
    started = time.perf_counter()
    caches = build_teacher_caches(net, budget_windows(load_sessions(prepared_dir, "train"), train_cfg, seed), top_k,
                                  temperatures, train_cfg.eval_batch_size, progress)
    info = {"teacher": str(teacher["checkpoint"]), "seed": seed, "top_k": top_k, "temperatures": sorted(caches),
            "prefixes": len(next(iter(caches.values())).keys), "seconds": round(time.perf_counter() - started, 1)}
    save_teacher_caches(caches, out, info)
    return info


def _finish_run(
    net: torch.nn.Module, result: FitResult, test: Sessions, cfg: TrainConfig, seed: int,
    threads: int, run_dir: str | Path, info: dict[str, Any], prepared_dir: str | Path,
) -> dict[str, Any]:
    """Evaluate on test (cold targets as misses, the dataset's target modes); write the run's
    ``metrics.json`` and ``model.pt``; only then remove its training checkpoints, so a job killed
    while testing (minutes on a real catalogue) resumes without training again."""
    metrics: dict[str, Any] = {
        **info,
        "seed": seed,
        "threads": threads,
        "train_config": asdict(cfg),
        "n_parameters": count_parameters(net),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "history": result.history,
        "refit": {"epochs": len(result.refit_history), "history": result.refit_history} if result.refit_history else None,
        "train_seconds": round(result.train_seconds, 3),
        "seconds_per_epoch": round(result.train_seconds / max(len(result.history), 1), 3),
        **evaluate_test(net, test, cfg, cold_test_targets(prepared_dir), target_modes(prepared_dir)),
    }
    run_dir = Path(run_dir)
    with atomic_path(run_dir / "model.pt") as tmp:
        torch.save(result.best_state, tmp)
    write_json(metrics, run_dir / "metrics.json")
    for checkpoint in run_dir.glob(f"*{CHECKPOINT}"):  # the selection run's and the refit's
        checkpoint.unlink()
    return metrics


def kg_ablation(net: torch.nn.Module, prepared_dir: str | Path, cfg: TrainConfig) -> dict[str, dict] | None:
    """Test metrics of a trained KG model with and without its neighbour tables (None if it has none)."""
    if not hasattr(net, "set_neighbor_tables"):
        return None
    test = eval_sample(load_sessions(prepared_dir, "test"), cfg)
    device = pick_device(cfg.device)
    with_kg = evaluate(net, test, "last", cfg.eval_batch_size, cfg.max_len, device, cfg.exclude_seen).result()
    saved = {"index": net.neighbor_index.clone(), "weight": net.neighbor_weight.clone()}
    net.set_neighbor_tables({k: torch.zeros_like(v) for k, v in saved.items()})
    without = evaluate(net, test, "last", cfg.eval_batch_size, cfg.max_len, device, cfg.exclude_seen).result()
    net.set_neighbor_tables(saved)
    return {"with KG": with_kg, "empty neighbour tables": without}


def load_run(run_dir: str | Path, prepared_dir: str | Path, neighbors_path: str | Path | None = None
             ) -> torch.nn.Module:
    """A trained model from its run folder (``metrics.json`` says which model and settings)."""
    info = read_json(Path(run_dir) / "metrics.json")
    if uses_kg(info["model"]) and neighbors_path is None:
        raise ValueError(f"{run_dir}: a {info['model']} model reads the dataset's KG tables: "
                         "pass neighbors_path (kg/neighbors.pt); the checkpoint does not carry them")
    net = build_for_data(info["model"], prepared_dir, info["model_kwargs"], neighbors_path=neighbors_path)
    net.load_state_dict(torch.load(Path(run_dir) / "model.pt"))
    return net.eval()
