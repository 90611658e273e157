"""Display names: the one registry the Snakefile, the runs, the tables and the pages all read.

A run's display name is written into its ``metrics.json`` when it is trained
(:meth:`recpress_utils.runs.ModelSpec.display_name`), and the tables label rows with it; the
benchmark keys its timings by it and the paper's Table 6 uses the same words, so a name is
defined here once and looked up everywhere else.
"""

from __future__ import annotations

#: The paper's LSTM baseline (the benchmark's and claim C5's key).
BASELINE = "Baseline"
#: The paper's four models and the hard-label student, by (architecture, Node2Vec).
PAPER_NAMES: dict[tuple[str, bool], str] = {
    ("baseline", False): BASELINE,
    ("baseline", True): "Baseline + Node2Vec",
    ("mixed_attention", False): "Mixed Attention",
    ("mixed_attention", True): "Mixed Attention + Node2Vec",
    ("student", False): "Student (hard labels, no teacher)",
}
#: Run groups of the paper's four models (Tables 2-3) and their names in the paper.
PAPER_GROUPS: dict[str, str] = {
    f"{architecture}{'-n2v' if node2vec else ''}": name
    for (architecture, node2vec), name in PAPER_NAMES.items() if architecture != "student"
}
#: The peers' architectures (beyond the paper), simple to strong: the tables' row order.
PEER_NAMES: dict[str, str] = {"popularity": "Popularity", "gru4rec": "GRU4Rec", "sasrec": "SASRec",
                              "bert4rec": "BERT4Rec", "vsknn": "V-SkNN", "stan": "STAN"}


def is_paper_group(group: str) -> bool:
    """Whether a run group is one of the paper's models or students (trained at ``paper_seeds``)
    rather than a peer (trained at every seed)."""
    return group in PAPER_GROUPS or group == "student" or group.startswith("student-T")


def student_name(temperature: float) -> str:
    """A distilled student's name, e.g. ``Student (T = 0.5)``."""
    return f"Student (T = {temperature:g})"


def group_name(group: str) -> str:
    """The name of a run group without its runs at hand: a paper model's, a peer
    architecture's, a student's (``student-T2``), else the group itself."""
    if group in PAPER_GROUPS:
        return PAPER_GROUPS[group]
    if group.startswith("student-T"):
        return student_name(float(group.removeprefix("student-T")))
    return PEER_NAMES.get(group, group)
