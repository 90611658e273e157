"""The report: a dataset's runs boiled down and judged, one module per concern (no training here).

* :mod:`~recpress_utils.report.digest`: the small committed form of a dataset's results that
  every page is rendered from, and the tolerant check that a fresh run regenerates it;
* :mod:`~recpress_utils.report.results`: runs as one table, means and 95 % intervals over seeds;
* :mod:`~recpress_utils.report.tables`: the paper's tables beside ours, leaderboard, sanity bars;
* :mod:`~recpress_utils.report.published`: the peers beside their published numbers and bars;
* :mod:`~recpress_utils.report.claims`: the verdicts on the paper's claims C1-C6;
* :mod:`~recpress_utils.report.figures`: the frames the figures plot;
* :mod:`~recpress_utils.report.provenance`: software, machine, commit and config.

Display names come from :mod:`recpress_utils.names`.
"""
