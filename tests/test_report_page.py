"""The report site in a real browser (headless Chromium at 1280 x 800): the front page,
reports/index.html (claims x datasets), and the default dataset's page it links first."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from recpress_utils.paths import REPO_ROOT

FRONT = REPO_ROOT / "reports" / "index.html"
INDEX = REPO_ROOT / "reports" / "synthetic" / "index.html"
#: Appended to a copy of a page: after layout, record on <body> how far the page and its
#: widest table reach to the right, so the DOM dump says whether anything overflows 1280 px.
MEASURE = ("<script>window.addEventListener('load', () => {"
           "const right = [...document.querySelectorAll('table')].map(t => t.getBoundingClientRect().right);"
           "document.body.dataset.pageWidth = document.documentElement.scrollWidth;"
           "document.body.dataset.viewport = window.innerWidth;"
           "document.body.dataset.tableRight = Math.max(0, ...right);});</script>")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _dump(page, tmp_path_factory, measure: bool = False) -> str:
    """The DOM of ``page`` after Chromium laid it out at 1280 x 800 (with MEASURE's numbers)."""
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium")
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    assert page.exists(), f"{page} is committed"
    if measure:  # a copy beside the original, so its relative links still resolve
        copy = page.with_name(f".measure-{page.name}")
        copy.write_text(page.read_text() + MEASURE)
        page = copy
    profile = tmp_path_factory.mktemp("chromium-profile")
    try:
        proc = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
             "--window-size=1280,800", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120,
        )
    finally:
        if measure:
            page.unlink()
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def rendered_dom(tmp_path_factory) -> str:
    return _dump(INDEX, tmp_path_factory)


@pytest.fixture(scope="module")
def front_dom(tmp_path_factory) -> str:
    return _dump(FRONT, tmp_path_factory, measure=True)


def test_the_front_page_shows_a_verdict_for_every_claim_and_dataset(front_dom):
    import html

    from recpress_utils.report import claims, site
    from recpress_utils.report.digest import load_digest

    cells = re.findall(r'<td class="verdict" data-verdict="([^"]+)"', front_dom)
    assert len(cells) == len(claims.CLAIMS) * len(site.SITE_DATASETS), len(cells)
    assert set(cells) <= {"reproduced", "not reproduced", "inconclusive", site.NOT_RUN}
    text = html.unescape(re.sub(r"<[^>]+>", "", front_dom))
    verdicts = claims.claims_table(load_digest(REPO_ROOT / "reports" / "synthetic"))
    first_column = cells[::len(site.SITE_DATASETS)]  # rows are claims, the synthetic column first
    assert first_column == list(verdicts["verdict"])
    for claim, row in verdicts.iterrows():
        assert row["headline"] in text, f"{claim}: headline not shown in full"
    for name in site.SITE_DATASETS.values():
        assert name in text


def _fits(dom: str) -> None:
    numbers = {k: float(v) for k, v in re.findall(r'data-(page-width|viewport|table-right)="([\d.]+)"', dom)}
    assert numbers.get("viewport") == 1280, numbers
    assert numbers["page-width"] <= numbers["viewport"], f"the page scrolls sideways: {numbers}"
    assert numbers["table-right"] <= numbers["viewport"], f"a table is cut at the right: {numbers}"


def test_the_front_page_fits_1280_pixels(front_dom):
    _fits(front_dom)


@pytest.mark.parametrize("page", sorted(p.parent.name for p in (REPO_ROOT / "reports").glob("*/index.html")))
def test_every_dataset_page_fits_1280_pixels(page, tmp_path_factory):
    """No table wider than the window (the paper's tables come in long form: tables.compact)."""
    _fits(_dump(REPO_ROOT / "reports" / page / "index.html", tmp_path_factory, measure=True))


def test_the_front_page_links_every_committed_dataset_page(front_dom):
    from recpress_utils.report import site

    links = set(re.findall(r'href="([^"#]+/index\.html)', front_dom))
    for folder in site.SITE_DATASETS:
        committed = (REPO_ROOT / "reports" / folder / "index.html").exists()
        assert (f"{folder}/index.html" in links) == committed, folder


def test_page_shows_the_tables(rendered_dom):
    tables = re.findall(r"<table", rendered_dom)
    assert len(tables) >= 5, f"only {len(tables)} tables rendered"
    for heading in ("Tables 2-3", "Tables 4-5", "Table 6", "The claims", "Figure 8"):
        assert heading in rendered_dom, heading
    for claim in ("C1", "C2", "C3", "C4", "C5", "C6"):
        assert f">{claim}<" in rendered_dom, claim


def test_page_shows_the_figures(rendered_dom):
    images = re.findall(r'<img[^>]+src="data:image/png;base64,', rendered_dom)
    assert len(images) >= 4, f"only {len(images)} figures rendered"


def test_every_claim_evidence_is_on_the_page_in_full(rendered_dom):
    """The claims table shows each verdict's whole evidence (it was once cut at 50 characters)."""
    import html

    from recpress_utils.report import claims
    from recpress_utils.report.digest import load_digest

    text = html.unescape(re.sub(r"<[^>]+>", "", rendered_dom))
    verdicts = claims.claims_table(load_digest(REPO_ROOT / "reports" / "synthetic"))
    for claim, row in verdicts.iterrows():
        assert row["evidence"] in text, f"{claim}: evidence not shown in full"
        assert row["verdict"] in text, claim
