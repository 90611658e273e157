"""What each stage costs as the data grows: the paper-scale profile at fractions of its size.

``config/paper-scale.yaml`` is the paper's data size (about 69 M events, 6.5 M sessions, 150k
products). :func:`run` runs it at each fraction (sessions and users scaled, the catalogue kept)
in its own results folder, one Snakemake call each; :func:`collect` reads every job's
``benchmark:`` file into one table, ``reports/paper-scale/scaling.csv``, with the columns
``stage, fraction, events, seconds, max_rss_mb`` (one row per stage and size), and
:func:`growth_exponents` fits ``seconds ~ events^b`` per stage: b near 1 is linear, b > 1 names
a stage that grows faster than the data.

    python -m recpress_utils.scaling run --fractions 1/16 1/4 1 --until data
    python -m recpress_utils.scaling collect --out reports/paper-scale/scaling.csv
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import yaml

from recpress_utils.io import read_json
from recpress_utils.paths import repo_path
from recpress_utils.report.digest import stages

PROFILE = "config/paper-scale.yaml"
ROOT = "results/paper-scale"
COLUMNS = ["stage", "fraction", "events", "seconds", "max_rss_mb"]
#: The committed table (the README's scaling block is generated from it).
TABLE = "reports/paper-scale/scaling.csv"
#: How far :func:`run` goes: the data stages, then also the training of the paper's models.
UNTIL = {
    "data": ["kg/kg_stats.json", "embeddings/s{seed}/node2vec_stats.json"],
    "train": ["kg/kg_stats.json", "embeddings/s{seed}/node2vec_stats.json",
              *(f"runs/{m}_s{{seed}}/metrics.json" for m in
                ("baseline", "baseline-n2v", "mixed_attention", "mixed_attention-n2v", "student"))],
}


def folder(fraction: Fraction) -> str:
    """The results folder of one fraction: ``results/paper-scale/f1_16``."""
    return f"{ROOT}/f{fraction.numerator}_{fraction.denominator}"


def overlay(fraction: Fraction, profile: str = PROFILE) -> dict:
    """The config layered over the profile for one fraction: its own results folder, and the
    profile's sessions and users times the fraction (the catalogue is the paper's at every size)."""
    synthetic = yaml.safe_load(repo_path(profile).read_text())["synthetic"]
    return {"results_dir": folder(fraction),
            "synthetic": {key: int(round(synthetic[key] * fraction)) for key in ("n_sessions", "n_users")}}


def run(fractions: Sequence[Fraction], until: str, cores: int, profile: str = PROFILE, seed: int = 42) -> None:
    """Run the profile at each fraction, smallest first (a failure shows before the big run)."""
    for fraction in sorted(fractions):
        out = repo_path(folder(fraction))
        out.mkdir(parents=True, exist_ok=True)
        layer = out / "overlay.yaml"
        layer.write_text(yaml.safe_dump(overlay(fraction, profile), sort_keys=True))
        targets = [f"{folder(fraction)}/synthetic/{t.format(seed=seed)}" for t in UNTIL[until]] if until != "all" else []
        # targets first: --configfile takes every argument after it
        subprocess.run([sys.executable, "-m", "snakemake", *targets, "--workflow-profile", "workflow/profiles/default",
                        "--cores", str(cores), "--configfile", profile, str(layer)],
                       cwd=repo_path(), check=True)


def collect(fractions: Sequence[Fraction], previous: pd.DataFrame | None = None,
            only: Sequence[str] = ()) -> pd.DataFrame:
    """One row per stage (Snakemake job) and fraction: wall seconds and peak resident memory of
    the job and its children, and the raw events the fraction has (read by the prepare stage).

    ``previous`` (the committed table): its rows stay unless measured again here, so a session
    that reruns only some stages or sizes (results folders do not outlive a machine) adds to the
    table instead of dropping what it did not redo. A fraction without results is skipped.
    ``only``: job-name prefixes to take from the results (e.g. the training stages a session
    added), leaving the committed rows of every other stage as they were measured."""
    rows = []
    for fraction in sorted(fractions):
        results = repo_path(folder(fraction)) / "synthetic"
        if not (results / "prepared" / "stats.json").exists():
            print(f"no results for fraction {fraction} in {results}: its rows stay as they were")
            continue
        events = read_json(results / "prepared" / "stats.json")["read"]["rows_read"]
        jobs = stages(results)
        if only:
            jobs = jobs[[job.startswith(tuple(only)) for job in jobs["job"]]]
        rows += [{"stage": stage_label(job.job, results), "fraction": str(fraction), "events": int(events),
                  "seconds": job.seconds, "max_rss_mb": job.max_rss_mb} for job in jobs.itertuples()]
    table = pd.DataFrame(rows, columns=COLUMNS)
    if previous is not None and len(previous):
        previous = previous.astype({"fraction": str})
        measured = set(zip(table["stage"], table["fraction"]))
        kept = previous[[key not in measured for key in zip(previous["stage"], previous["fraction"])]]
        table = pd.concat([kept[COLUMNS], table], ignore_index=True) if len(table) else kept[COLUMNS]
    return table.sort_values(["stage", "events"], kind="stable", ignore_index=True)


def stage_label(job: str, results: Path) -> str:
    """A job's row name in the table: its benchmark name, and for Node2Vec the walks per item it
    ran with (``03_node2vec_s42 (2 walks/item)``), since its cost is linear in them: sizes run
    with different walk settings are different rows, never one fitted exponent."""
    if not job.startswith("03_node2vec_s"):
        return job
    stats = results / "embeddings" / f"s{job.removeprefix('03_node2vec_s')}" / "node2vec_stats.json"
    return f"{job} ({read_json(stats)['config']['num_walks']} walks/item)"


def growth_exponents(table: pd.DataFrame) -> pd.DataFrame:
    """Per stage measured at >= 2 sizes: the least-squares slope b of log(seconds) and of
    log(peak memory) on log(events), so cost ~ events^b (1: linear in the data)."""
    out = {}
    for stage, rows in table.groupby("stage"):
        if rows["events"].nunique() < 2:
            continue
        x = np.log(rows["events"].to_numpy(float))
        out[stage] = {"seconds_exponent": float(np.polyfit(x, np.log(rows["seconds"].to_numpy(float)), 1)[0]),
                      "memory_exponent": float(np.polyfit(x, np.log(rows["max_rss_mb"].to_numpy(float)), 1)[0]),
                      "largest_seconds": float(rows["seconds"].iloc[-1]),
                      "largest_max_rss_mb": float(rows["max_rss_mb"].iloc[-1])}
    return pd.DataFrame.from_dict(out, orient="index").rename_axis("stage")


def readme_table(table: pd.DataFrame) -> str:
    """Markdown: per stage, wall time and peak memory at each size, and the fitted exponents."""
    sizes = list(dict.fromkeys(table.sort_values("events")["fraction"].astype(str)))
    events = table.groupby(table["fraction"].astype(str))["events"].first()
    growth = growth_exponents(table)
    head = ["stage", *(f"{f} ({events[f] / 1e6:.1f} M events)" for f in sizes), "time ~ events^b", "memory ~ events^b"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for stage, rows in table.groupby("stage", sort=False):
        cells = {str(r.fraction): f"{r.seconds:,.0f} s, {r.max_rss_mb / 1024:.1f} GiB" for r in rows.itertuples()}
        b = growth.loc[stage] if stage in growth.index else None
        lines.append("| " + " | ".join([f"`{stage}`", *(cells.get(f, "not run") for f in sizes),
                                        f"{b.seconds_exponent:.2f}" if b is not None else "",
                                        f"{b.memory_exponent:.2f}" if b is not None else ""]) + " |")
    return "\n".join(lines)


def figure(table: pd.DataFrame) -> plt.Figure:
    """Wall time and peak memory against events, log-log, one line per stage. There are more stages
    than matplotlib's ten colours, so each stage has its own (colour, line style, marker)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (stage, rows) in enumerate(table.groupby("stage")):
        style = {"color": colours[i % len(colours)], "linestyle": ("-", "--", ":")[i // len(colours) % 3],
                 "marker": ("o", "s", "^")[i // len(colours) % 3]}
        for ax, column in zip(axes, ("seconds", "max_rss_mb")):
            ax.loglog(rows["events"], rows[column], label=stage, **style)
    axes[0].set(xlabel="raw events", ylabel="wall seconds", title="time per stage")
    axes[1].set(xlabel="raw events", ylabel="peak resident memory (MB)", title="memory per stage")
    axes[1].axhline(24 * 1024, color="red", linestyle="--", linewidth=1)
    axes[1].annotate("24 GiB", (table["events"].min(), 24 * 1024), color="red", va="bottom")
    axes[0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("run", help="run the paper-scale profile at each fraction")
    go.add_argument("--until", choices=[*UNTIL, "all"], default="data")
    go.add_argument("--cores", type=int, default=1, help="one job at a time keeps each stage's timing its own")
    gather = sub.add_parser("collect", help="write the scaling table (and its figure beside it)")
    gather.add_argument("--out", type=Path, default=Path(TABLE))
    gather.add_argument("--only", nargs="+", default=[], metavar="PREFIX",
                        help="take only these jobs (name prefixes, e.g. 04_ 05_) from the results; keep the rest")
    for p in (go, gather):
        p.add_argument("--fractions", nargs="+", type=Fraction, default=[Fraction(1, 16), Fraction(1, 4), Fraction(1)])
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.fractions, args.until, args.cores)
        return
    out = repo_path(args.out)
    table = collect(args.fractions, pd.read_csv(out, dtype={"fraction": str}) if out.exists() else None, args.only)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    figure(table).savefig(out.with_suffix(".png"), dpi=110)
    print(table.to_string(index=False))
    print(growth_exponents(table).round(2).to_string())


if __name__ == "__main__":
    main()
