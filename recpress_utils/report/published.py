"""Our runs beside the published results on the same data and protocol (real-data profiles).

A number from another paper only compares with ours when the data, the split and the ranking
protocol are the same; the entries of ``peer_numbers.yaml`` for a dataset were produced under
the protocol of its profile (SR-GNN's split for the session data, leave-one-out for MovieLens).
Even then the code and the tuning differ, so the tables here show the difference and leave the
reading to the report's text; the one hard check is the protocol check: a model with nothing to
tune (popularity) must land on its published figure, or the protocol itself differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping

import pandas as pd

from recpress_utils.paper import peer_numbers
from recpress_utils.report.results import mean_ci

#: The two metrics each protocol's published tables report (what the report leads with).
HEADLINE: dict[str, tuple[str, str]] = {"srgnn": ("HR@20", "MRR@20"), "leave_one_out": ("HR@10", "NDCG@10")}


def headline(protocol: str) -> tuple[str, str]:
    """The published tables' two metrics under ``protocol`` (``stats.json``'s ``protocol``)."""
    return HEADLINE.get(protocol, HEADLINE["leave_one_out"])


#: What each protocol ranks and against what, in a report page's words (its intro reads this).
PROTOCOLS: dict[str, str] = {
    "time": "Sessions are split **by time**: the latest 10 % of sessions are the test set, the 10 % before them "
            "validation. Tables 2-5 use the paper's task, target `last`: rank the session's final item given the "
            "rest (MAP@1 = NDCG@1 = HR@1 then).",
    "srgnn": "SR-GNN's published split: every (prefix, next item) pair of the training sessions trains, and every "
             "prefix of a test session (its last days) is one test case whose target is the next item; early "
             "stopping uses the newest 10 % of training sessions. Target `last` is that next item.",
    "leave_one_out": "Leave-one-out per user: the last rating is the test target and the one before it the "
                     "validation target; a user's earlier items are removed from the ranking, as in the published "
                     "full-ranking results.",
}
#: What a page's numbers can be compared with: the paper's are from REES46, which no page here has.
DATA_NOTE: dict[str, str] = {
    "synthetic": "The default dataset is the seeded synthetic REES46-schema data, not the paper's REES46 months: "
                 "compare **orderings and ratios** with the paper's, not absolute values.",
}


def about(dataset: str, protocol: str, seed: int = 42) -> str:
    """A report page's dataset-specific intro (Markdown): the protocol, what the paper's column can
    be compared with, and the links to the stage notebooks this dataset's run rendered at ``seed``
    (the profile's first paper seed: a profile under the budget rule may not have run seed 42)."""
    note = DATA_NOTE.get(dataset, f"The paper reports REES46 only; on {dataset} its numbers are context for "
                                  "**orderings and ratios** between models, not values to match.")
    stages = {"prepare": "01_prepare_data", "knowledge graph": "02_build_kg",
              f"Node2Vec, seed {seed}": f"03_node2vec_s{seed}",
              "teacher run": f"04_train_model_mixed_attention-n2v_s{seed}",
              "baseline run": f"04_train_model_baseline_s{seed}",
              "distillation, T = 1": f"05_distill_T1_s{seed}", "latency benchmark": "06_benchmark"}
    links = " · ".join(f"[{name}](../../results/{dataset}/notebooks/{stem}.html)" for name, stem in stages.items())
    return (f"**{dataset}.** {PROTOCOLS.get(protocol, PROTOCOLS['time'])} {note}\n\n"
            f"Stage notebooks (rendered in `results/`, after `snakemake`): {links}.")


def seeds_note(runs: pd.DataFrame, wanted: int = 3, label: str = "") -> str | None:
    """Why a profile (or, under ``label``, a part of it: its paper's models) ran fewer than
    ``wanted`` seeds, from what one seed of ``runs`` cost (None when it ran them all): the budget
    rule keeps the published settings and runs fewer seeds, rather than quietly cheaper settings,
    and a reader must see that no interval exists then."""
    seeds = sorted(runs["seed"].unique())
    if not seeds or len(seeds) >= wanted:
        return None
    hours = runs.groupby("seed")["train_seconds"].sum().max() / 3600
    return (f"{label + ': ' if label else ''}{len(seeds)} seed{'s' if len(seeds) > 1 else ''} ({', '.join(map(str, seeds))}), "
            f"not {wanted}: one seed's models trained for {hours:.1f} h in all (one core per job), so this profile runs fewer "
            f"seeds at its full settings rather than {wanted} at cheaper ones; "
            f"{'no interval exists' if len(seeds) == 1 else 'intervals are wide'}, "
            f"and a difference between models is a single measurement, not a verdict.")


def published(dataset: str) -> list[dict[str, Any]]:
    """The published rows for ``dataset`` (model, metrics as fractions, source; ``ours``: the
    config model it compares with)."""
    return peer_numbers().get(dataset, [])


def beside_published(runs: pd.DataFrame, dataset: str, metrics: tuple[str, ...],
                     percent: bool = True) -> pd.DataFrame:
    """One row per model: ours (mean and 95 % CI over seeds) next to the published figure of
    the same model, and the published models we did not run, for context. In percent by
    default, as the session-based papers print them."""
    scale = 100.0 if percent else 1.0
    refs = published(dataset)
    rows = []
    for group, name in runs.groupby("group")["display_name"].first().items():
        frame = runs[runs["group"] == group]
        mine = [r for r in refs if r.get("ours") == group]
        row: dict[str, Any] = {"model": name, "seeds": int(frame["seed"].nunique())}
        sources = []
        for metric in metrics:
            mean, low, high = (v * scale for v in mean_ci(frame[metric]))
            ref = next((r for r in mine if metric in r), None)
            row[f"{metric} ours"] = mean
            row[f"{metric} CI"] = f"[{low:.2f}, {high:.2f}]" if row["seeds"] > 1 else "one seed"
            row[f"{metric} published"] = ref[metric] * scale if ref else float("nan")
            row[f"{metric} ours - published"] = mean - row[f"{metric} published"]
            if ref and ref["source"] not in sources:
                sources.append(ref["source"])
        row["published as"] = mine[0]["model"] if mine else ""
        row["source"] = "; ".join(sources)
        rows.append(row)
    ran = set(runs["group"])
    for ref in refs:
        if ref.get("ours") in ran:
            continue
        rows.append({"model": f"{ref['model']} (not run here)", "seeds": 0,
                     **{f"{m} published": ref.get(m, float("nan")) * scale for m in metrics},
                     "published as": ref["model"], "source": ref["source"]})
    table = pd.DataFrame(rows)
    # one ranking of ours and the published models, so a reader sees where each of ours lands;
    # by position, as two papers' rows of a model we did not run share one name
    level = table[f"{metrics[0]} ours"].fillna(table[f"{metrics[0]} published"])
    order = level.sort_values(ascending=False, na_position="last", kind="stable").index
    return table.loc[order].set_index("model").round(2)


def protocol_check(runs: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """For every published row with a ``tolerance``: is our mean over seeds within it, on every
    metric of the row? A popularity model has nothing to tune, so a miss means the protocol
    (split, id space, ties, what counts as training) differs from the published one. A profile
    that does not run the row's model (a loss comparison) gets status "not run here", not a fail."""
    rows = []
    for ref in published(dataset):
        if "tolerance" not in ref:
            continue
        frame = runs[runs["group"] == ref["ours"]]
        for metric in (k for k in ref if "@" in k):
            ours = float(frame[metric].mean()) if len(frame) else float("nan")
            status = ("not run here" if not len(frame)
                      else "pass" if abs(ours - ref[metric]) <= ref["tolerance"] else "fail")
            rows.append({"model": ref["model"], "metric": metric, "ours %": round(100 * ours, 2),
                         "published %": round(100 * ref[metric], 2),
                         "tolerance (points)": round(100 * ref["tolerance"], 2),
                         "status": status, "source": ref["source"]})
    return pd.DataFrame(rows, columns=["model", "metric", "ours %", "published %", "tolerance (points)",
                                       "status", "source"])


#: How :func:`bars` begins a missed bar's ``met?`` (then the shortfall): what the report colours red.
MISSED = "no ("


def bars(runs: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The peers against the published bars they must reach (``bar`` in ``peer_numbers.yaml``).

    One row per bar, model and metric: our mean over seeds with its 95 % CI (a seed varies the
    initialisation, batch order, dropout and sampled negatives), the bar, the published row it
    comes from, and ``met?``: "yes" when the mean reaches the bar, "no (-x.xx)" with the
    shortfall otherwise, "not run here" when the profile did not run the model. A ``best_of``
    bar is judged on whichever of its models has the higher mean on the bar's first metric.
    Values are in percent for the session protocols (``HR@20`` / ``MRR@20``), fractions otherwise,
    as the published tables print them.
    """
    rows = []
    for ref in published(dataset):
        bar = ref.get("bar")
        if not bar:
            continue
        metrics = [k for k in bar if "@" in k] or [k for k in ref if "@" in k]
        scale, digits = _bar_scale(metrics[0])
        judged = bar["models"]
        if bar.get("best_of"):
            ran = [m for m in judged if (runs["group"] == m).any()]
            judged = [max(ran, key=lambda m: runs.loc[runs["group"] == m, metrics[0]].mean())] if ran else judged[:1]
        for model in judged:
            frame = runs[runs["group"] == model]
            label = " / ".join(bar["models"]) if bar.get("best_of") else model
            for metric in metrics:
                target = bar.get(metric, ref.get(metric))
                mean, low, high = (v * scale for v in mean_ci(frame[metric]))  # NaN when not run
                seeds = int(frame["seed"].nunique())
                if not seeds:
                    met = "not run here"
                elif mean >= target * scale:
                    met = "yes"
                else:
                    met = f"{MISSED}{mean - target * scale:+.{digits}f})"
                rows.append({
                    "peer": f"best of {label}: {model}" if bar.get("best_of") and seeds else label,
                    "metric": metric,
                    "ours": round(mean, digits),
                    "95 % CI": (f"[{low:.{digits}f}, {high:.{digits}f}]" if seeds > 1
                                else "one seed" if seeds == 1 else ""),
                    "seeds": seeds,
                    "must reach": round(target * scale, digits),
                    "published": f"{ref['model']} {ref[metric] * scale:.{digits}f}" if metric in ref else ref["model"],
                    "source": ref["source"],
                    "met?": met,
                    "tried": bar.get("tried", "") if met.startswith(MISSED) else "",
                })
    return pd.DataFrame(rows, columns=["peer", "metric", "ours", "95 % CI", "seeds", "must reach", "published",
                                       "source", "met?", "tried"])


def _bar_scale(metric: str) -> tuple[float, int]:
    """Scale and printed decimals of a bar's metric: the session protocols' HR@20 / MRR@20 in
    percent with 2 decimals, as their papers print them; fractions with 4 otherwise."""
    return (100.0, 2) if metric in HEADLINE["srgnn"] else (1.0, 4)


def styled_bars(table: pd.DataFrame) -> "pd.io.formats.style.Styler":
    """:func:`bars` with every missed bar in red, for the report (a fixed uuid, so the HTML a
    re-executed report prints is the committed one)."""
    def red(row: pd.Series) -> list[str]:
        return ["color: #c00000; font-weight: bold" if str(row["met?"]).startswith(MISSED) else ""] * len(row)
    return table.style.apply(red, axis=1).format(precision=4).set_uuid("bars").hide(axis="index")


def convergence(runs: pd.DataFrame, epoch_cap: Mapping[str, int]) -> pd.DataFrame:
    """Best and last epoch of every trained run, seconds per epoch, and a flag where the best
    epoch is the last one (validation still improving when training stopped: not converged)."""
    trained = runs[runs["best_epoch"].fillna(0) > 0]
    table = trained[["group", "seed", "best_epoch", "epochs_run", "seconds_per_epoch"]].rename(
        columns={"epochs_run": "last_epoch"})
    table["epoch cap"] = [epoch_cap.get(g, float("nan")) for g in table["group"]]
    table["flag"] = ["best = last: not converged" if b == last else ""
                     for b, last in zip(table["best_epoch"], table["last_epoch"])]
    return table.sort_values(["group", "seed"]).set_index(["group", "seed"]).round(1)


#: What the README's table of real-data results lists: the committed digest folders of the profiles,
#: in the README's order (a profile's folder is named after it).
README_FOLDERS = ("reports/yoochoose1_64", "reports/yoochoose1_64-losses", "reports/diginetica", "reports/ml-1m",
                "reports/ml-100k")


def _committed_digests(folders: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
    """``(folder, digest)`` of every folder whose digest is committed, in order (folders not
    committed yet are left out)."""
    from recpress_utils.report.digest import load_digest
    from recpress_utils.paths import repo_path

    for folder in folders:
        if (repo_path(folder) / "digest.csv").exists():
            yield folder, load_digest(folder)


def readme_table(folders: tuple[str, ...] = README_FOLDERS) -> str:
    """The README's table of real-data results, in Markdown, from the committed digests (so the
    README can never drift from them: ``tests/test_published.py`` compares the two, and
    ``python -m recpress_utils.report.published`` rewrites it). Folders not committed yet are left out."""
    lines = ["| profile | protocol | model | seeds | ours | published | source | job time (min) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for folder, digest in _committed_digests(folders):
        dataset = digest.config["dataset"]
        protocol = digest.data["prepared"].get("protocol", digest.config["prepare"]["split"])
        metrics = headline(protocol)
        table = beside_published(digest.runs, dataset, metrics)
        minutes = digest.stages["seconds"].sum() / 60
        for model, row in table[table["seeds"] > 0].iterrows():
            ours = " / ".join(f"{row[f'{m} ours']:.2f}" for m in metrics)
            theirs = " / ".join("—" if pd.isna(row[f"{m} published"]) else f"{row[f'{m} published']:.2f}"
                                for m in metrics)
            lines.append(f"| {Path(folder).name} | {protocol} ({' / '.join(metrics)}, %) | {model} | {int(row['seeds'])} | "
                         f"{ours} | {theirs} | {row['source'] or '—'} | {minutes:.0f} |")
    return "\n".join(lines) + "\n\n" + readme_bars(folders)


def readme_bars(folders: tuple[str, ...] = README_FOLDERS) -> str:
    """The README's table of the peers against their published bars (:func:`bars`), from the
    committed digests of the datasets' own profiles (a loss comparison judges no bar)."""
    lines = ["Peers against the published bars they must reach (mean over seeds; *met?* gives the shortfall):", "",
             "| dataset | peer | metric | ours [95 % CI] | must reach | published | met? |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for folder, digest in _committed_digests(folders):
        dataset = digest.config["dataset"]
        if Path(folder).name != dataset:
            continue
        for _, row in bars(digest.runs, dataset).iterrows():
            if row["met?"] == "not run here":
                continue
            digits = _bar_scale(row["metric"])[1]
            lines.append(f"| {dataset} | {row['peer']} | {row['metric']} | {row['ours']:.{digits}f} {row['95 % CI']} | "
                         f"{row['must reach']} | {row['published']} ({row['source']}) | {row['met?']} |")
    return "\n".join(lines)


#: The README's table sits between these two lines.
README_MARKERS = ("<!-- readme-table -->\n", "\n<!-- /readme-table -->")
#: ... and the front page's summary paragraph (recpress_utils.report.site.summary) between these.
SUMMARY_MARKERS = ("<!-- readme-summary -->\n", "\n<!-- /readme-summary -->")
#: ... and the paper-scale scaling table (recpress_utils.scaling) between these.
SCALING_MARKERS = ("<!-- readme-scaling -->\n", "\n<!-- /readme-scaling -->")


def readme_blocks() -> dict[tuple[str, str], str]:
    """What the README's generated blocks hold, by their markers."""
    from recpress_utils import scaling
    from recpress_utils.paths import repo_path
    from recpress_utils.report import site

    blocks = {README_MARKERS: readme_table(), SUMMARY_MARKERS: site.summary(site.load_site())}
    if repo_path(scaling.TABLE).exists():
        blocks[SCALING_MARKERS] = scaling.readme_table(pd.read_csv(repo_path(scaling.TABLE)))
    return blocks


def write_readme(readme: str = "README.md") -> None:
    """Rewrite the README's generated blocks from the committed digests (after committing one)."""
    from recpress_utils.paths import repo_path

    path = repo_path(readme)
    text = path.read_text()
    for (start, end), content in readme_blocks().items():
        head, rest = text.split(start, 1)
        text = head + start + content + end + rest.split(end, 1)[1]
    path.write_text(text)


if __name__ == "__main__":
    write_readme()
