"""The report site's front page: which of the paper's claims hold, on which data, by how much.

Every dataset's page is rendered from its committed digest (``reports/<folder>/``); the front
page reads the same digests and puts one verdict per claim and dataset in a matrix, each cell
with its deciding interval (:func:`recpress_utils.report.claims.claims_table`'s ``headline``)
and a link to the page with the full evidence. A dataset whose paper models have not run yet
(a peers-only profile, or no digest committed) shows "not run", never an empty cell.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from recpress_utils.names import is_paper_group
from recpress_utils.paths import repo_path
from recpress_utils.report.claims import CLAIMS, claims_table
from recpress_utils.report.digest import Digest, load_digest

#: The matrix's columns: report folder -> the dataset's name, in reading order.
SITE_DATASETS: dict[str, str] = {
    "synthetic": "Synthetic (default)",
    "diginetica": "Diginetica",
    "yoochoose1_64": "Yoochoose 1/64",
    "ml-1m": "MovieLens-1M",
    "ml-100k": "MovieLens-100k",
}
NOT_RUN = "not run"
#: Cell background per verdict (GitHub's diff palette: readable in print and for most colour vision).
COLOURS: dict[str, str] = {"reproduced": "#dafbe1", "not reproduced": "#ffebe9",
                           "inconclusive": "#fff8c5", NOT_RUN: "#f6f8fa"}


def load_site(reports_dir: str | Path = "reports") -> dict[str, Digest | None]:
    """Each site dataset's committed digest, None where none is committed yet."""
    root = repo_path(reports_dir)
    return {folder: load_digest(root / folder) if (root / folder / "digest.csv").exists() else None
            for folder in SITE_DATASETS}


def _cells(digest: Digest | None) -> dict[str, dict[str, str]]:
    """One dataset's column: claim -> verdict and headline."""
    if digest is None:
        return {c: {"verdict": NOT_RUN, "headline": "no digest committed yet"} for c in CLAIMS}
    if not digest.config.get("paper", True):
        return {c: {"verdict": NOT_RUN, "headline": "peers only so far: the paper's models are not run here"}
                for c in CLAIMS}
    table = claims_table(digest)
    return {c: {"verdict": table.at[c, "verdict"], "headline": table.at[c, "headline"]} for c in CLAIMS}


def claims_matrix(digests: dict[str, Digest | None]) -> pd.DataFrame:
    """Claims down, datasets across; each cell ``verdict: headline``."""
    columns = {SITE_DATASETS[folder]: {c: f"{v['verdict']}: {v['headline']}" for c, v in _cells(d).items()}
               for folder, d in digests.items()}
    matrix = pd.DataFrame(columns)
    matrix.index.name = "claim"
    return matrix


def verdict_counts(digests: dict[str, Digest | None]) -> pd.DataFrame:
    """Per dataset, how many claims got each verdict (the front page's summary sentence)."""
    rows = {SITE_DATASETS[folder]: pd.Series([v["verdict"] for v in _cells(d).values()]).value_counts()
            for folder, d in digests.items()}
    order = ["reproduced", "not reproduced", "inconclusive", NOT_RUN]
    return pd.DataFrame(rows).T.reindex(columns=order).fillna(0).astype(int)


def summary(digests: dict[str, Digest | None]) -> str:
    """One paragraph saying what the replication found so far: per judged dataset, the claims
    under each verdict; then the datasets still waiting for the paper's models."""
    parts, waiting = [], []
    for folder, digest in digests.items():
        cells = _cells(digest)
        if all(v["verdict"] == NOT_RUN for v in cells.values()):
            waiting.append(SITE_DATASETS[folder])
            continue
        found = []
        for verdict in ("reproduced", "not reproduced", "inconclusive"):
            claims = [c for c, v in cells.items() if v["verdict"] == verdict]
            if claims:
                found.append(f"{len(claims)} {verdict} ({', '.join(claims)})")
        parts.append(f"on **{SITE_DATASETS[folder]}** {', '.join(found)}")
    text = (f"**What the replication found.** Of the paper's {len(CLAIMS)} claims, " + "; ".join(parts) + "."
            if parts else "**What the replication found.** No dataset has the paper's models run yet.")
    if waiting:
        text += (f" On {', '.join(waiting)} the paper's models have not run yet: those pages compare the peers "
                 "with their published numbers.")
    return text


def matrix_html(digests: dict[str, Digest | None]) -> str:
    """The claims x datasets matrix as a self-contained HTML table: colour per verdict, each cell
    linking to its dataset's page, the claim's statement in the first column. Fits 1280 px."""
    cells = {folder: _cells(d) for folder, d in digests.items()}
    link = lambda folder, text, anchor="": (text if digests[folder] is None else  # no page yet: no link
                                            f'<a href="{folder}/index.html{anchor}" style="color:inherit">{text}</a>')
    head = "".join(f'<th style="{_TH}">{link(folder, html.escape(SITE_DATASETS[folder]))}</th>' for folder in digests)
    rows = []
    for claim, statement in CLAIMS.items():
        tds = []
        for folder in digests:
            cell = cells[folder][claim]
            anchor = "" if cell["verdict"] == NOT_RUN else "#The-claims"
            text = f'<b>{html.escape(cell["verdict"])}</b><br><span class="headline">{html.escape(cell["headline"])}</span>'
            tds.append(f'<td class="verdict" data-verdict="{cell["verdict"]}" '
                       f'style="{_TD}background:{COLOURS[cell["verdict"]]}">{link(folder, text, anchor)}</td>')
        rows.append(f'<tr><th style="{_TH}"><b>{claim}</b> {html.escape(statement)}</th>{"".join(tds)}</tr>')
    return ('<table class="claims-matrix" style="border-collapse:collapse;table-layout:fixed;width:100%;'
            'max-width:1200px;font-size:13px"><colgroup><col style="width:24%">'
            + "".join('<col>' for _ in digests) + '</colgroup>'
            f'<thead><tr><th style="{_TH}">claim (paper)</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


_TH = "border:1px solid #d0d7de;padding:6px;vertical-align:top;text-align:left;"
_TD = "border:1px solid #d0d7de;padding:6px;vertical-align:top;text-align:left;overflow-wrap:anywhere;"


def kd_row(digests: dict[str, Digest | None]) -> pd.Series:
    """Per dataset, the distillation method with the largest paired gain over the no-KD student of
    the same size (:func:`recpress_utils.report.kd.best_against_control`): method, size, the gain
    in points of the dataset's headline metric with its paired interval, and the verdict; "not run"
    where the profile has no toolkit runs. Where that method was also trained under a longer budget
    (``kd_longer.csv``), its gain there follows: a control stopped while still improving flatters
    every method, and the front page should not show only the flattering number. Where its longer
    runs used other settings (swept again since), the row names them: that gain is not the
    budget's alone."""
    from recpress_utils.report.kd import against_control, best_against_control, longer_label, other_longer_settings
    from recpress_utils.report.published import headline

    row = {}
    for folder, digest in digests.items():
        best = None
        if digest is not None and digest.kd is not None:
            metric = headline(digest.data["prepared"].get("protocol", ""))[1]
            best = best_against_control(digest.kd, metric)
        if best is None:
            row[SITE_DATASETS[folder]] = NOT_RUN
            continue
        text = f"{best['method']} ({best['size']}): {_gain_text(best, metric)}"
        if digest.kd_longer is not None and (
                longer := against_control(digest.kd_longer, best["size"], best["method"], metric)):
            label = longer_label(digest.kd_longer, best["size"], best["method"])
            if other := other_longer_settings(digest.kd, digest.kd_longer, best["size"], best["method"]):
                label += f" at other settings ({other})"
            text += f"; {label}: {_gain_text(longer, metric)}"
        row[SITE_DATASETS[folder]] = text
    return pd.Series(row, name="best distillation method vs no-KD control")


def _gain_text(gain: Mapping[str, Any], metric: str) -> str:
    """``+5.5 pt MRR@20 [5.0, 6.1], helps`` from :func:`recpress_utils.report.kd.against_control`."""
    mean, low, high = (100 * x for x in gain["ci"])
    interval = f" [{low:.1f}, {high:.1f}]" if gain["n"] > 1 else ""
    return f"{mean:+.1f} pt {metric}{interval}, {gain['verdict']}"


def _seeds(runs: pd.DataFrame) -> str:
    """The seeds a dataset ran, and the paper's models' own where the budget rule ran them at fewer
    (``paper_seeds``): "42, 43, 44 (the paper's models: 42)"."""
    def listed(frame: pd.DataFrame) -> str:
        return ", ".join(str(s) for s in sorted(frame["seed"].unique()))
    paper = runs[runs["group"].map(is_paper_group)]
    every, own = listed(runs), listed(paper)
    return every if paper.empty or own == every else f"{every} (the paper's models: {own})"


def dataset_rows(digests: dict[str, Digest | None]) -> pd.DataFrame:
    """The datasets the site covers: protocol, what ran, seeds, size, cost (the sum of the
    profile's Snakemake jobs' wall times, one core each, and the largest peak memory of one
    job: their ``benchmark:`` files) and where the page is."""
    rows: list[dict[str, Any]] = []
    for folder, digest in digests.items():
        row: dict[str, Any] = {"dataset": SITE_DATASETS[folder], "page": f"{folder}/index.html"}
        if digest is None:
            rows.append({**row, "page": "", "protocol": "", "ran": NOT_RUN, "seeds": "", "items": "", "test cases": "",
                         "runs": 0, "job time (h)": "", "peak memory (GB)": ""})
            continue
        prepared = digest.data["prepared"]
        row["protocol"] = prepared.get("protocol", digest.config.get("prepare", {}).get("split", ""))
        row["ran"] = "the paper's models and the peers" if digest.config.get("paper", True) else "the peers"
        row["seeds"] = _seeds(digest.runs)
        row["items"] = f"{prepared['items']:,}"
        row["test cases"] = f"{prepared['splits']['test']['sessions']:,}"
        row["runs"] = len(digest.runs)
        row["job time (h)"] = f"{digest.stages['seconds'].sum() / 3600:.1f}"
        row["peak memory (GB)"] = f"{digest.stages['max_rss_mb'].max() / 1024:.1f}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("dataset")
