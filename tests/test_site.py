"""The front page's claims x datasets matrix (recpress_utils.report.site), from committed digests."""

from __future__ import annotations

import dataclasses
import re

import pandas as pd
import pytest

from recpress_utils.paths import REPO_ROOT
from recpress_utils.report import site
from recpress_utils.report.claims import CLAIMS, claims_table
from recpress_utils.report.digest import load_digest


@pytest.fixture(scope="module")
def digests():
    """The synthetic digest, a peers-only one (its config's ``paper: false``, as a profile that runs the
    peers alone writes it) and three datasets without a digest."""
    synthetic = load_digest(REPO_ROOT / "reports" / "synthetic")
    peers = dataclasses.replace(synthetic, provenance={**synthetic.provenance,
                                                       "config": {**synthetic.config, "paper": False}})
    return {"synthetic": synthetic, "diginetica": None, "yoochoose1_64": None, "ml-1m": peers, "ml-100k": None}


def test_every_cell_has_a_verdict_and_the_judged_column_is_the_claims_table(digests):
    matrix = site.claims_matrix(digests)
    assert list(matrix.index) == list(CLAIMS) and list(matrix.columns) == list(site.SITE_DATASETS.values())
    table = claims_table(digests["synthetic"])
    for claim in CLAIMS:
        assert matrix.at[claim, "Synthetic (default)"] == f"{table.at[claim, 'verdict']}: {table.at[claim, 'headline']}"
        assert matrix.at[claim, "MovieLens-1M"].startswith("not run: peers only")
        assert matrix.at[claim, "Diginetica"] == "not run: no digest committed yet"


def test_counts_and_summary_say_what_was_found_and_what_waits(digests):
    counts = site.verdict_counts(digests)
    assert (counts.sum(axis=1) == len(CLAIMS)).all()
    assert counts.loc["MovieLens-1M", site.NOT_RUN] == len(CLAIMS)
    text = site.summary(digests)
    judged = counts.loc["Synthetic (default)"]
    table = claims_table(digests["synthetic"])
    for verdict in ("reproduced", "not reproduced", "inconclusive"):
        if judged[verdict]:
            claims = ", ".join(table.index[table["verdict"] == verdict])
            assert f"{judged[verdict]} {verdict} ({claims})" in text
    assert "Diginetica, Yoochoose 1/64, MovieLens-1M, MovieLens-100k the paper's models have not run yet" in text
    assert site.summary({"ml-1m": None}).endswith(
        "On MovieLens-1M the paper's models have not run yet: those pages compare the peers with their published numbers.")


def test_the_html_colours_each_verdict_and_links_only_pages_that_exist(digests):
    page = site.matrix_html(digests)
    verdicts = re.findall(r'data-verdict="([^"]+)" style="[^"]*background:(#[0-9a-f]{6})', page)
    assert len(verdicts) == len(CLAIMS) * len(digests)
    assert all(site.COLOURS[v] == colour for v, colour in verdicts)
    assert 'href="synthetic/index.html#The-claims"' in page and 'href="ml-1m/index.html"' in page
    assert "diginetica/index.html" not in page and "yoochoose1_64/index.html" not in page


def test_a_paper_run_without_seeds_enough_is_judged_not_skipped(digests):
    """A digest whose config runs the paper (even with one seed) is judged: its cells are verdicts."""
    one_seed = digests["synthetic"]
    one_seed = dataclasses.replace(one_seed, runs=one_seed.runs[one_seed.runs["seed"] == 42])
    cells = site.claims_matrix({"synthetic": one_seed})["Synthetic (default)"]
    assert not any(c.startswith(site.NOT_RUN) for c in cells)
    assert cells["C1"].startswith("inconclusive: one seed")


def test_the_seeds_column_names_the_paper_models_own_seeds_under_the_budget_rule():
    runs = pd.DataFrame({"group": ["sasrec"] * 3 + ["mixed_attention-n2v", "student-T1", "student"],
                         "seed": [42, 43, 44, 42, 42, 42]})
    assert site._seeds(runs) == "42, 43, 44 (the paper's models: 42)"
    assert site._seeds(runs[runs["group"] == "sasrec"]) == "42, 43, 44"
    assert site._seeds(pd.concat([runs, runs.assign(seed=43), runs.assign(seed=44)])) == "42, 43, 44"


def test_the_distillation_row_sets_the_longer_budgets_gain_beside_the_best_methods():
    """The row names the method with the largest paired gain; where that method also ran under a
    longer budget (kd_longer.csv), its gain there follows, whichever way it went."""
    from tests.test_report_kd import kd_frame

    committed = load_digest(REPO_ROOT / "reports" / "yoochoose1_64")
    kd = kd_frame({"a": (0.04, 0.05, 0.045), "b": (0.01, 0.01, 0.02)}, size="e16")
    longer = kd_frame({"a": (0.01, -0.02, 0.0)}, control=(0.35, 0.36, 0.34), size="e16").assign(
        epochs_cap=30, patience=3)
    digest = dataclasses.replace(committed, kd=kd, kd_longer=None)
    assert site.kd_row({"yoochoose1_64": digest})["Yoochoose 1/64"] == "a (e16): +4.5 pt MRR@20 [3.3, 5.7], helps"
    digest = dataclasses.replace(digest, kd_longer=longer)
    assert site.kd_row({"yoochoose1_64": digest})["Yoochoose 1/64"] == (
        "a (e16): +4.5 pt MRR@20 [3.3, 5.7], helps; "
        "up to 30 epochs, early-stopped (patience 3): -0.3 pt MRR@20 [-4.1, 3.5], no effect")
    other = dataclasses.replace(digest, kd_longer=longer.assign(method=longer["method"].replace("a", "b")))
    assert site.kd_row({"yoochoose1_64": other})["Yoochoose 1/64"].endswith("helps")  # b's longer runs: not a's


def test_the_distillation_row_names_the_settings_of_longer_runs_that_used_others():
    """A method swept again after its longer-budget runs: the row still shows that gain, but says
    it was made at the earlier settings, named, so a reader does not credit the budget alone."""
    from tests.test_report_kd import kd_frame

    committed = load_digest(REPO_ROOT / "reports" / "yoochoose1_64")
    kd = kd_frame({"a": (0.04, 0.05, 0.045)}, size="e16")
    longer = kd_frame({"a": (0.01, -0.02, 0.0)}, control=(0.35, 0.36, 0.34), size="e16").assign(
        epochs_cap=30, patience=3)
    swept = {"a": '{"hard_weight": 0.1, "temperature": 0.5}'}
    earlier = {"a": '{"hard_weight": 1}'}
    kd, longer = kd.assign(settings=kd["method"].map(swept)), longer.assign(settings=longer["method"].map(earlier))
    row = site.kd_row({"yoochoose1_64": dataclasses.replace(committed, kd=kd, kd_longer=longer)})["Yoochoose 1/64"]
    assert row == ("a (e16): +4.5 pt MRR@20 [3.3, 5.7], helps; up to 30 epochs, early-stopped (patience 3) "
                   "at other settings (hard_weight 1): -0.3 pt MRR@20 [-4.1, 3.5], no effect")
    same = longer.assign(settings=longer["method"].map(swept))
    row = site.kd_row({"yoochoose1_64": dataclasses.replace(committed, kd=kd, kd_longer=same)})["Yoochoose 1/64"]
    assert "other settings" not in row and row.endswith("no effect")
