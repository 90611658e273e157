"""Run files in, one table out: every run's settings and test metrics, and the intervals over seeds.

Everything downstream reads what the pipeline wrote under ``results/<dataset>/`` (or a
digest of it): one ``runs/<run>/metrics.json`` per trained model and seed. A run folder is
``<group>_s<seed>``; the *group* (e.g. ``mixed_attention-n2v``, ``student-T1``) is the model
setting, repeated over seeds.

Our numbers are means over seeds with a 95 % Student-t interval (:func:`mean_ci`). A seed
varies everything random in a run: weight initialisation, batch order, dropout, sampled
negatives and its own Node2Vec walks; the data, the split and the PMI graph are the same for
every seed (:data:`SEED_VARIES` is the sentence the report prints beside every interval). When
two groups share seeds, a comparison uses the **paired** per-seed differences (or ratios,
:func:`paired`) and the t-interval of those. Ranks are pessimistic (``recpress_utils.metrics``):
a tie never helps the target.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
from scipy import stats

from recpress_utils.io import read_json
from recpress_utils.metrics import metric_names
from recpress_utils.paths import repo_path

#: Test metrics in display order (``metrics.json`` ``test`` and ``test_rest``).
METRICS = tuple(metric_names())
CONFIDENCE = 0.95
#: Fewest paired seeds a verdict (a claim's, a distillation method's, a sanity ratio's) is drawn
#: from: with two, a 95 % t-interval is 12.7 standard errors wide and decides almost nothing.
MIN_VERDICT_SEEDS = 3
#: What one seed varies, printed beside every interval.
SEED_VARIES = ("95 % t-interval over seeds; a seed varies weight initialisation, batch order, dropout, "
               "sampled negatives and the Node2Vec walks; data, split and PMI graph are shared")
#: A run folder's name: ``<group>_s<seed>``.
RUN = re.compile(r"^(?P<group>.+)_s(?P<seed>\d+)$")


def _runs_dir(results_dir: str | Path) -> Path:
    """Accept a dataset's results folder (holding ``runs/``) or the ``runs/`` folder itself."""
    path = repo_path(results_dir)
    return path / "runs" if (path / "runs").is_dir() else path


def display_name(metrics: Mapping[str, Any]) -> str:
    """A run's name from the one registry (:meth:`recpress_utils.runs.ModelSpec.display_name`) and the
    model spec its ``metrics.json`` recorded, so every digest built names a model as the code does
    now, whatever name the run wrote when it trained; a run without a whole spec (a distilled
    student, a toolkit run) keeps the name it wrote."""
    from recpress_utils.runs import ModelSpec

    spec = metrics.get("spec") or {}
    if "name" not in spec:
        return metrics.get("display_name", metrics["model"])
    return ModelSpec(**spec).display_name(bool(metrics.get("node2vec", False)))


def load_runs(results_dir: str | Path) -> pd.DataFrame:
    """One row per run folder: settings, test metrics (``rest:`` prefix for target ``rest``), times.

    ``path`` is the run folder, so :func:`curves` can read the per-epoch history without the
    table carrying it.
    """
    runs_dir = _runs_dir(results_dir)
    files = sorted(runs_dir.glob("*/metrics.json"))
    if not files:
        raise FileNotFoundError(f"no run found: no <run>/metrics.json under {runs_dir}")
    rows = []
    for file in files:
        m = read_json(file)
        name = file.parent.name
        match = RUN.match(name)
        rows.append({
            "run": name,
            "group": match["group"] if match else name,
            "model": m["model"],
            "display_name": display_name(m),
            "node2vec": bool(m.get("node2vec", False)),
            "loss": m.get("spec", {}).get("loss", "cross_entropy"),
            "seed": int(m["seed"]),
            "temperature": float(m["temperature"]) if m.get("temperature") is not None else np.nan,
            **{k: m["test"].get(k, np.nan) for k in METRICS},
            **{f"rest:{k}": m.get("test_rest", {}).get(k, np.nan) for k in METRICS},
            **{k: m.get(k, np.nan) for k in
               ("best_epoch", "epochs_run", "seconds_per_epoch", "train_seconds", "n_parameters")},
            "path": str(file.parent),
        })
    return pd.DataFrame(rows)


def too_few_seeds(n: int) -> str | None:
    """Why ``n`` paired seeds give no verdict ("no shared seed", "one seed", "2 seeds"), or None
    when they are enough (:data:`MIN_VERDICT_SEEDS`)."""
    if n >= MIN_VERDICT_SEEDS:
        return None
    return "no shared seed" if n == 0 else "one seed" if n == 1 else f"{n} seeds"


def mean_ci(values: Iterable[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Mean and Student-t interval over seeds, NaN values dropped.

    With one value the interval is degenerate (low = high = mean): that is no evidence of
    spread, which is why every table shows n. With no value all three are NaN.
    """
    x = np.asarray(list(values), dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return np.nan, np.nan, np.nan
    mean = float(x.mean())
    if x.size == 1:
        return mean, mean, mean
    half = float(stats.t.ppf((1 + confidence) / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return mean, mean - half, mean + half


def aggregate(runs: pd.DataFrame, metrics: Iterable[str], by: str = "group",
              confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Mean, CI low, CI high and n per group; columns (metric, stat) so a plot can pick any."""
    metrics = list(metrics)
    out = {}
    for key, frame in runs.groupby(by, sort=True):
        row = {}
        for metric in metrics:
            mean, low, high = mean_ci(frame[metric], confidence)
            row.update({(metric, "mean"): mean, (metric, "low"): low, (metric, "high"): high,
                        (metric, "n"): int(frame[metric].notna().sum())})
        out[key] = row
    agg = pd.DataFrame.from_dict(out, orient="index")
    agg.columns = pd.MultiIndex.from_tuples(agg.columns, names=["metric", "stat"])
    agg.index.name = by
    return agg


def format_mean_ci(agg: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """``mean ± half-width`` strings of an :func:`aggregate` frame, plus its n (seeds) per row.

    With fewer than two seeds only the mean is shown: a "± 0" would pass for no spread.
    """
    metrics = list(dict.fromkeys(agg.columns.get_level_values("metric")))
    out = pd.DataFrame(index=agg.index)
    for metric in metrics:
        half = (agg[(metric, "high")] - agg[(metric, "low")]) / 2
        out[metric] = [f"{m:.{digits}f} ± {h:.{digits}f}" if n > 1 else f"{m:.{digits}f}"
                       for m, h, n in zip(agg[(metric, "mean")], half, agg[(metric, "n")])]
    ns = agg.xs("n", axis=1, level="stat")
    out["n"] = [str(int(r.iloc[0])) if r.nunique() == 1 else f"{int(r.min())}-{int(r.max())}"
                for _, r in ns.iterrows()]
    return out


def by_seed(runs: pd.DataFrame, group: str, metric: str) -> pd.Series:
    """``metric`` of ``group``'s runs, indexed by seed."""
    return runs.loc[runs["group"] == group].set_index("seed")[metric]


def paired(runs: pd.DataFrame, a: str, b: str, metric: str, ratio: bool = False) -> np.ndarray:
    """Per-seed ``a - b`` (or ``a / b``) over the seeds both groups have, in seed order."""
    both = pd.concat([by_seed(runs, a, metric), by_seed(runs, b, metric)], axis=1, join="inner").dropna()
    both = both.sort_index()
    x, y = both.iloc[:, 0].to_numpy(), both.iloc[:, 1].to_numpy()
    return x / y if ratio else x - y


def ci_text(ci: tuple[float, float, float], fmt: str = "+.4f") -> str:
    """``mean [low, high]`` of a :func:`mean_ci` triple."""
    return f"{ci[0]:{fmt}} [{ci[1]:{fmt}}, {ci[2]:{fmt}}]"
