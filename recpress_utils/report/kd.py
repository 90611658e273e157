"""The distillation toolkit's verdicts: every method against the no-KD control of the same size,
paired by seed (``kd.csv`` of a digest, :mod:`recpress_utils.report.digest`).

A method *helps* when the 95 % t-interval of its per-seed difference to the control (same size,
same seed: the same initial weights, batches and dropout stream up to what the method changes)
lies above zero, *hurts* when below, and has *no effect* otherwise; with fewer than
:data:`~recpress_utils.report.results.MIN_VERDICT_SEEDS` shared seeds the table says so instead of
a verdict.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recpress_utils.config import KD_CONTROL
from recpress_utils.distill import method_defaults
from recpress_utils.grid import edge_keys, edge_text
from recpress_utils.report.digest import TEACHER_PREFIX
from recpress_utils.report.results import METRICS, SEED_VARIES, ci_text, mean_ci, too_few_seeds

#: Column order of :func:`method_table`.
COLUMNS = ("size", "method", "teachers", "n", "metric [95 % CI]", "% of teacher", "vs no-KD control [paired CI]",
           "verdict", "training s", "x control time")


def seed_varies(config: Mapping[str, Any]) -> str:
    """What an interval of the method table is over: the report's :data:`SEED_VARIES`, or, with
    ``kd.teacher_seed``, the students' seeds alone (every one distils from the same teachers)."""
    teacher_seed = config.get("kd", {}).get("teacher_seed")
    if teacher_seed is None:
        return SEED_VARIES
    return ("95 % t-interval over the students' seeds; a seed varies the student's initial weights, batch order, "
            f"dropout and sampled negatives, while every seed distils from the teachers trained at seed {teacher_seed} "
            "(kd.teacher_seed); data, split and PMI graph are shared")


def budget_note(config: Mapping[str, Any]) -> str | None:
    """The toolkit's own training settings (``kd.train``) when it has any: a budget that every
    method and its control share, which the table's figures are under; None without one."""
    budget = (config.get("kd") or {}).get("train") or {}
    if not budget:
        return None
    settings = ", ".join(f"{key} {value}" for key, value in sorted(budget.items()))
    return (f"Every method and its control trained under the same budget (kd.train: {settings}) over the paper "
            "students' settings: the figures compare methods at that budget, not fully trained students.")


def teacher_reference(runs: pd.DataFrame, teacher: str, metric: str, config: Mapping[str, Any],
                      kd: pd.DataFrame | None = None) -> tuple[float, str]:
    """The teacher's mean ``metric`` that *% of teacher* divides by, and where it comes from.

    Preferably as the toolkit's runs recorded it (``kd.csv``'s ``teacher:<metric>`` of the runs
    ``teacher`` taught): the teacher the students learnt from, which a digest row trained at another
    commit may differ from. Otherwise from ``runs`` (a digest's runs: group, seed, metrics): over
    the teacher's seeds, or its run at ``kd.teacher_seed``."""
    column = TEACHER_PREFIX + metric
    if kd is not None and column in kd:
        taught = kd[(kd["teachers"] == teacher) & kd[column].notna()]
        if len(taught):
            return float(taught.groupby("seed")[column].first().mean()), "as recorded by the runs it taught"
    rows = runs[runs["group"] == teacher]
    if (teacher_seed := config.get("kd", {}).get("teacher_seed")) is not None:
        rows = rows[rows["seed"] == teacher_seed]
    return float(rows[metric].mean()), "the report's teacher runs"


def _paired(kd: pd.DataFrame, size: str, method: str, column: str) -> np.ndarray:
    """Per-seed ``method - control`` of ``column`` at ``size``, over the seeds both have."""
    rows = kd[kd["size"] == size]
    a = rows[rows["method"] == method].set_index("seed")[column]
    b = rows[rows["method"] == KD_CONTROL].set_index("seed")[column]
    both = pd.concat([a, b], axis=1, join="inner").dropna().sort_index()
    return (both.iloc[:, 0] - both.iloc[:, 1]).to_numpy()


def verdict(diffs: np.ndarray) -> str:
    """helps / no effect / hurts from the paired differences' 95 % interval; fewer than
    ``MIN_VERDICT_SEEDS`` seeds: no verdict, saying how many there are."""
    if few := too_few_seeds(len(diffs)):
        return few if not len(diffs) else f"{few}: no verdict"
    _, low, high = mean_ci(diffs)
    return "helps" if low > 0 else "hurts" if high < 0 else "no effect"


def _against_control(table: pd.DataFrame, size: str, method: str, metric: str) -> dict[str, object]:
    """The columns every method table shares, for one (size, method) of ``table``: its label, the
    number of seeds, the metric's mean [CI], the paired difference to the same table's control and
    the verdict on it (the control itself: *reference*)."""
    runs = _runs(table, size, method)
    ci = mean_ci(runs[metric])
    diffs = _paired(table, size, method, metric) if method != KD_CONTROL else np.array([])
    return {
        "method": "no KD (control)" if method == KD_CONTROL else method,
        "n": len(runs), "metric [95 % CI]": ci_text(ci, ".4f") if len(runs) > 1 else f"{ci[0]:.4f}",
        "vs no-KD control [paired CI]": "" if method == KD_CONTROL else (
            ci_text(mean_ci(diffs)) if len(diffs) > 1 else f"{diffs.mean():+.4f}" if len(diffs) else ""),
        "verdict": "reference" if method == KD_CONTROL else verdict(diffs),
    }


def method_table(kd: pd.DataFrame, metric: str, teacher_mean: float | None = None,
                 cost: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (size, method), the control first within a size: the metric's mean [CI] over
    seeds, its share of the teacher's mean (``teacher_mean``, the paper's teacher on the same
    split), the paired difference to the control and its verdict, mean training seconds and the
    cost against the control: from the step-cost benchmark (``cost``, ``kd_cost.csv``) for a size
    it timed, else the ratio of the runs' training seconds (:func:`cost_source` says which)."""
    rows = []
    for size in dict.fromkeys(kd["size"]):
        at = kd[kd["size"] == size]
        timed = {} if cost is None else dict(cost.loc[cost["size"] == size, ["method", "x_control"]].to_numpy())
        control_seconds = at.loc[at["method"] == KD_CONTROL, "train_seconds"].mean()
        methods = [KD_CONTROL, *sorted(m for m in set(at["method"]) if m != KD_CONTROL)]
        for method in methods:
            runs = at[at["method"] == method]
            if runs.empty:
                continue
            seconds = runs["train_seconds"].mean()
            rows.append({
                "size": size, **_against_control(kd, size, method, metric),
                "teachers": runs["teachers"].iloc[0] if isinstance(runs["teachers"].iloc[0], str) else "",
                "% of teacher": f"{100 * runs[metric].mean() / teacher_mean:.1f}" if teacher_mean else "",
                "training s": f"{seconds:.0f}",
                "x control time": (f"{timed[method]:.2f}" if method in timed else "") if timed else
                                  f"{seconds / control_seconds:.2f}" if control_seconds else "",
            })
    return pd.DataFrame(rows, columns=list(COLUMNS))


def longer_training(kd: pd.DataFrame, longer: pd.DataFrame, metric: str, budget_epochs: int) -> pd.DataFrame:
    """Each (size, method) of ``longer`` (``kd_longer.csv``: runs trained again up to ``epochs_cap``
    epochs, early-stopped) beside its runs at the toolkit's budget (``kd``, ``budget_epochs`` each):
    per budget the settings its runs used, the metric [CI], the paired difference to that budget's
    control and its verdict, the epoch each seed's kept model is from, and the teacher's metric as
    the runs recorded it. A control still improving at the budget makes a method that only learns
    faster look like one that helps; here the two verdicts sit side by side. A method swept again
    after its longer runs has other settings in the two budgets: the column shows it."""
    rows = []
    for size in dict.fromkeys(longer["size"]):
        methods = [KD_CONTROL, *sorted(set(longer.loc[longer["size"] == size, "method"]) - {KD_CONTROL})]
        for method in methods:
            budgets = ((f"{budget_epochs} epochs (kd.train)", kd), (longer_label(longer, size, method), longer))
            for label, table in budgets:
                runs = _runs(table, size, method).sort_values("seed")
                if runs.empty:
                    continue
                shared = _against_control(table, size, method, metric)
                rows.append({
                    "size": size, "method": shared.pop("method"), "training": label,
                    "settings": settings_text(runs), **shared,
                    "best epoch per seed": ", ".join(f"{e:.0f}" for e in runs["best_epoch"]),
                    # the teacher as these runs recorded it: a teacher retrained between the budgets shows here
                    "teacher, as recorded": f"{taught.mean():.4f}" if len(taught := runs.get(
                        TEACHER_PREFIX + metric, pd.Series(dtype=float)).dropna()) else "",
                })
    return pd.DataFrame(rows)


def verdict_changes(table: pd.DataFrame) -> str:
    """The line under :func:`longer_training`'s table: the methods whose verdict the longer budget
    changes (``soft at e16: helps -> no effect``), or that it changes none. Where the two budgets'
    runs used other settings, the line says so: the change is then not the budget's alone."""
    changed = []
    for (size, method), rows in table[table["verdict"] != "reference"].groupby(["size", "method"], sort=False):
        first, *rest = rows["verdict"].tolist()
        if rest and rest[-1] != first:
            other = rows["settings"].iloc[0] != rows["settings"].iloc[-1]
            changed.append(f"{method} at {size}: {first} -> {rest[-1]}" + (" (at other settings)" if other else ""))
    return ("the longer budget changes the verdict of " + "; ".join(changed) if changed
            else "the longer budget changes no verdict")


def settings_text(runs: pd.DataFrame) -> str:
    """The settings a method's runs set in the config (``weight 0.1``), ``defaults`` where they set
    none, several joined by `` / `` where the runs disagree."""
    values = dict.fromkeys(runs["settings"].fillna("{}")) if "settings" in runs else ["{}"]
    return " / ".join(_settings_phrase(json.loads(value)) or "defaults" for value in values)


def _settings_phrase(settings: Mapping[str, Any]) -> str:
    """``hard_weight 0.1, temperature 0.5``: settings by name, the one way every table writes them."""
    return ", ".join(f"{k} {_text(v)}" for k, v in sorted(settings.items()))


def _runs(table: pd.DataFrame, size: str, method: str) -> pd.DataFrame:
    """The rows of one (size, method) of a runs table (kd.csv, kd_longer.csv)."""
    return table[(table["size"] == size) & (table["method"] == method)]


def other_longer_settings(kd: pd.DataFrame, longer: pd.DataFrame, size: str, method: str) -> str | None:
    """The settings of a (size, method)'s longer-budget runs where they are not those of its runs at
    the toolkit's budget (a method swept again after its longer runs), else None: a gain under the
    longer budget then belongs to other settings, and wherever it is set beside the budget's gain
    it must say so."""
    earlier = settings_text(_runs(longer, size, method))
    return earlier if earlier != settings_text(_runs(kd, size, method)) else None


def longer_label(longer: pd.DataFrame, size: str, method: str) -> str:
    """What the longer budget of a (size, method) was, as its runs recorded it."""
    runs = _runs(longer, size, method)
    caps, patience = sorted(set(runs["epochs_cap"])), sorted(set(runs["patience"]))
    return (f"up to {'/'.join(f'{c:.0f}' for c in caps)} epochs, early-stopped "
            f"(patience {'/'.join(f'{p:.0f}' for p in patience)})")


def cost_source(kd: pd.DataFrame, cost: pd.DataFrame | None) -> str:
    """Where the method table's *x control time* comes from, per size: the step-cost benchmark
    (how many steps, rounds, threads) or the runs' wall-clock training seconds, which on a machine
    shared with other jobs measure the load as much as the method."""
    parts = []
    for size in dict.fromkeys(kd["size"]):
        timed = None if cost is None else cost[cost["size"] == size]
        if timed is not None and len(timed):
            first = timed.iloc[0]
            what = "process CPU seconds" if first.get("clock") == "cpu" else "seconds"
            parts.append(f"{size}: {what} per training step against the control's, timed in one process "
                         f"(kd_cost.csv: {first['steps']} steps of {first['batch_size']} x {first['rounds']} rounds, "
                         f"{first['threads']} thread(s), median)")
        else:
            parts.append(f"{size}: the runs' wall-clock training seconds against the control's (on a machine shared "
                         "with other jobs an upper bound on the method's cost)")
    return "x control time: " + "; ".join(parts)


def load_sweeps(folder: str | Path) -> dict[str, pd.DataFrame]:
    """A profile's committed validation sweeps of its methods (``config/sweeps/<profile>/kd_<method>.csv``,
    written by :mod:`recpress_utils.sweep`), by method name; none where the folder has none."""
    return {path.stem.removeprefix("kd_"): pd.read_csv(path) for path in sorted(Path(folder).glob("kd_*.csv"))}


def settings_table(kd: pd.DataFrame, sweeps: Mapping[str, pd.DataFrame], metric: str) -> pd.DataFrame:
    """One row per method: the settings its runs used (the config's, the method's defaults for the
    rest), its committed validation sweep (each point's score at the sweep's student size: its mean over
    the sweep's seeds, a point run at fewer of them marked)
    and whether the runs use the sweep's best point. This is the check that a method's weight,
    temperature or K was chosen on validation, and not left at a default or tuned on test data; a
    best point at the grid's edge is named, as the optimum may lie beyond it."""
    rows = []
    for method in sorted(set(kd["method"]) - {KD_CONTROL}):
        runs = kd[kd["method"] == method]
        explicit = json.loads(runs["settings"].iloc[0]) if isinstance(runs["settings"].iloc[0], str) else {}
        used = {**method_defaults(runs["kind"].iloc[0]), **explicit}
        sweep = sweeps.get(method)
        keys = [] if sweep is None else [c for c in sweep.columns if c not in (*METRICS, "seconds", "size", "seed")]
        defaults = [k for k in dict.fromkeys(["hard_weight", "weight", "temperature", *keys])
                    if k in used and k not in explicit]
        parts = [_settings_phrase(explicit)]
        if defaults:
            parts.append("default " + ", ".join(f"{k} {_text(used[k])}" for k in defaults))
        row = {"method": method, "settings of the runs": "; ".join(filter(None, parts)),
               f"validation {metric} of the sweep": "", "chosen on validation": "not swept"}
        if sweep is not None and len(sweep):
            points, seeds = _sweep_points(sweep, keys, metric)
            where = ", ".join(([f"size {sweep['size'].iloc[0]}"] if "size" in sweep else [])
                              + ([_seeds_text(seeds)] if seeds else []))
            scores = "; ".join(", ".join(f"{k} {_text(r[k])}" for k in keys) + f": {r[metric]:.4f}"
                               + (f" ({_seeds_text(r['seeds'])} only)" if r["seeds"] != seeds else "")
                               for _, r in points.sort_values(keys, kind="stable").iterrows())
            best = sweep.iloc[0]  # the sweep's table is best first: by the mean select_metric over its seeds
            differs = [k for k in keys if not _same(best[k], used.get(k))]
            row[f"validation {metric} of the sweep"] = f"{where}: {scores}" if where else scores
            chosen = "yes" if not differs else "no: best " + ", ".join(f"{k} {_text(best[k])}" for k in differs)
            edges = edge_text(edge_keys(sweep, keys))
            row["chosen on validation"] = f"{chosen} ({edges})" if edges else chosen
        rows.append(row)
    return pd.DataFrame(rows)


def _sweep_points(sweep: pd.DataFrame, keys: list[str], metric: str) -> tuple[pd.DataFrame, list[int]]:
    """A sweep table's points (one row each: ``keys``, the mean ``metric`` over the seeds it ran
    at, and those ``seeds``) and every seed of the table."""
    seeds = sorted(int(s) for s in sweep["seed"].unique()) if "seed" in sweep else []
    if not keys or not seeds:
        return sweep.assign(seeds=[seeds] * len(sweep)), seeds
    grouped = sweep.groupby(keys, dropna=False, sort=False)
    points = grouped[metric].mean().reset_index()
    points["seeds"] = list(grouped["seed"].agg(lambda s: sorted(int(x) for x in s.unique())))
    return points, seeds


def _seeds_text(seeds: list[int]) -> str:
    """``[42]`` -> ``"seed 42"``; ``[42, 43]`` -> ``"mean over seeds 42, 43"``."""
    return f"seed {seeds[0]}" if len(seeds) == 1 else "mean over seeds " + ", ".join(map(str, seeds))


def _text(value: Any) -> str:
    """A setting as a reader writes it: 0.5, 1, 1e-05, none."""
    return f"{value:g}" if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) else str(value)


def _same(a: Any, b: Any) -> bool:
    """Whether a sweep's value and a run's setting are the same setting (1 and 1.0 are)."""
    try:
        return bool(np.isclose(float(a), float(b)))
    except (TypeError, ValueError):
        return str(a) == str(b)


def against_control(kd: pd.DataFrame, size: str, method: str, metric: str) -> dict[str, object] | None:
    """A (size, method)'s paired gain over the control of the same table: its name, size, the
    difference's (mean, low, high), the seeds it pairs and the verdict; None without shared seeds."""
    diffs = _paired(kd, size, method, metric)
    if not len(diffs):
        return None
    return {"method": method, "size": size, "ci": mean_ci(diffs), "n": len(diffs), "verdict": verdict(diffs)}


def best_against_control(kd: pd.DataFrame, metric: str) -> dict[str, object] | None:
    """The method with the largest mean paired gain over the control at any size (the front page's
    row), as :func:`against_control` gives it; None without methods."""
    gains = [gain for size in dict.fromkeys(kd["size"])
             for method in sorted(set(kd.loc[kd["size"] == size, "method"]) - {KD_CONTROL})
             if (gain := against_control(kd, size, method, metric))]
    return max(gains, key=lambda gain: gain["ci"][0], default=None)


def pareto_points(kd: pd.DataFrame, metric: str, teacher_mean: float,
                  latency: dict | None = None) -> pd.DataFrame:
    """Per (method, size): student parameters, the metric's mean as a % of the teacher's and, with
    ``latency`` (``kd_latency.json``), the size's batched seconds per 1,000 requests: the points of
    the compression figure (one curve per method over sizes, the control as the reference curve)."""
    points = (kd.groupby(["method", "size"], sort=False)
                .agg(parameters=("n_parameters", "first"), value=(metric, "mean"), seconds=("train_seconds", "mean"))
                .reset_index())
    points["kept"] = 100 * points["value"] / teacher_mean
    sizes = (latency or {}).get("sizes", {})
    points["s_per_1000"] = [sizes[s]["batched"]["median"] if s in sizes else np.nan for s in points["size"]]
    return points.sort_values(["method", "parameters"], kind="stable").reset_index(drop=True)


def pareto_figure(kd: pd.DataFrame, metric: str, teacher_mean: float, teacher_name: str,
                  latency: dict | None = None):
    """Accuracy kept (% of the teacher's ``metric``) against the student's parameters and, when the
    sizes were timed, against its latency per 1,000 requests: one curve per method, the no-KD
    control dashed in black; the front a practitioner picks a size and a method from. Returns the
    matplotlib figure."""
    import matplotlib.pyplot as plt

    points = pareto_points(kd, metric, teacher_mean, latency)
    axes_x = [("parameters", "student parameters (log scale)")]
    if points["s_per_1000"].notna().any():
        axes_x.append(("s_per_1000", f"seconds per 1,000 requests, batched ({latency['threads']} threads, log scale)"))
    fig, axes = plt.subplots(1, len(axes_x), figsize=(7 * len(axes_x), 4.5), squeeze=False)
    methods = sorted(set(points["method"]) - {KD_CONTROL})
    colours = {m: plt.cm.tab20(i % 20) for i, m in enumerate(methods)}  # distinct beyond ten methods
    for ax, (column, label) in zip(axes[0], axes_x):
        for method, frame in points.groupby("method", sort=True):
            control = method == KD_CONTROL
            # Along the panel's own axis: a deeper student can be smaller yet slower, so the sizes'
            # order by parameters is not their order by latency.
            frame = frame.dropna(subset=[column]).sort_values(column)
            ax.plot(frame[column].to_numpy(), frame["kept"].to_numpy(), marker="o", lw=2.2 if control else 1.2,
                    ls="--" if control else "-", color="black" if control else colours[method],
                    label="no KD (control)" if control else method, zorder=3 if control else 2)
            if control:  # name the sizes once, on the reference curve
                for x, y, size in frame[[column, "kept", "size"]].itertuples(index=False):
                    ax.annotate(size, (x, y), textcoords="offset points", xytext=(4, -12), fontsize=8)
        ax.axhline(100, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(f"{metric}, % of the teacher")
    axes[0][0].set_title(f"What each method keeps of {teacher_name}, by student size")
    axes[0][-1].legend(fontsize=8, ncol=2, frameon=False)
    fig.tight_layout()
    return fig
