"""Latency tools: the graph-traversing teacher is the same model, timings are well formed, and
the catalogue-size scaling returns one well-formed record per model and size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recpress_utils.io import write_json
from recpress_utils.kg import Edges, KGConfig, KnowledgeGraph, run_build_kg
from recpress_utils.latency import (
    GraphTraversalTeacher,
    benchmark,
    catalogue_scaling,
    model_size,
    random_neighbor_tables,
    run_benchmark,
    scaling_ratios,
    scoring_floor,
    time_call,
    time_in_turns,
)
from recpress_utils.models import build_model
from recpress_utils.sequences import PAD

#: Small settings per architecture, so the scaling tests build models in milliseconds.
SMALL = {
    "Baseline": ("baseline", {"emb_dim": 8, "lstm_dim": 8, "mlp_hidden": 8}),
    "Teacher": ("mixed_attention", {"n_projections": 2, "emb_dim": 8, "qkv_dim": 8, "mlp_hidden": 8}),
    "Student": ("student", {"emb_dim": 8, "qkv_dim": 8, "n_filters": 4, "proj_dim": 8}),
}


def _sorting_lookup(adjacency: dict[str, dict[int, list[tuple[int, float]]]], props: list[str], top_m: int,
                    items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The look-up before the speed-up (a walk over adjacency dicts and a sort per look-up): the oracle."""
    flat = items.reshape(-1).tolist()
    index = np.zeros((len(flat), len(props), top_m), dtype=np.int64)
    weight = np.zeros((len(flat), len(props), top_m), dtype=np.float32)
    for row, item in enumerate(flat):
        if item == PAD:
            continue
        for p, prop in enumerate(props):
            found = sorted((-w, nb) for nb, w in adjacency[prop].get(item, []))
            for m, (neg_w, nb) in enumerate(found[:top_m]):
                index[row, p, m], weight[row, p, m] = nb, -neg_w
    shape = (*items.shape, len(props), top_m)
    return torch.from_numpy(index).view(shape), torch.from_numpy(weight).view(shape)


def _teacher_and_graph(n_items: int = 41, m: int = 3):
    """A teacher with tables of a random graph; ``same_brand`` has equal weights (ties by id)."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    props = ["co_view", "same_category", "same_brand"]
    pairs: dict[str, dict[tuple[int, int], float]] = {p: {} for p in props}
    for prop in props:
        for _ in range(120):
            a, b = torch.randint(1, n_items, (2,), generator=gen).tolist()
            w = 1.0 if prop == "same_brand" else float(torch.rand(1, generator=gen)) + 0.1
            if a != b:
                pairs[prop][min(a, b), max(a, b)] = w
    pairs["co_view"][5, 5] = 2.0  # a self-loop is one neighbour
    adjacency: dict[str, dict[int, list[tuple[int, float]]]] = {p: {} for p in props}
    for prop, found in pairs.items():
        for (a, b), w in found.items():
            adjacency[prop].setdefault(a, []).append((b, w))
            if a != b:
                adjacency[prop].setdefault(b, []).append((a, w))
    edges = {p: Edges(*(np.array(x, dtype) for x, dtype in zip(
        zip(*((a, b, w) for (a, b), w in sorted(pairs[p].items()))), (np.int64, np.int64, np.float64))))
        for p in props}
    graph = KnowledgeGraph(n_items, edges, {p: None for p in props}, {p: None for p in props},
                           [None] * n_items, [None] * n_items)
    index = torch.zeros(len(props), n_items, m, dtype=torch.long)
    weight = torch.zeros(len(props), n_items, m)
    for p, prop in enumerate(props):
        for item in range(1, n_items):
            for j, (w, nb) in enumerate(sorted((-w, nb) for nb, w in adjacency[prop].get(item, []))[:m]):
                index[p, item, j], weight[p, item, j] = nb, -w
    teacher = build_model("mixed_attention", n_items, n_projections=len(props), emb_dim=16, qkv_dim=16,
                          mlp_hidden=16)
    teacher.set_neighbor_tables({"properties": props, "index": index, "weight": weight})
    return teacher.eval(), graph, adjacency, props


def test_graph_traversal_teacher_gives_the_same_outputs():
    teacher, graph, adjacency, props = _teacher_and_graph()
    live = GraphTraversalTeacher.from_teacher(teacher, graph)
    items = torch.randint(0, 41, (5, 7), generator=torch.Generator().manual_seed(2))
    items[0, -1] = 5  # the item with a self-loop
    degree = [len(adjacency[prop].get(i, [])) for prop in props for i in range(1, 41)]
    assert max(degree) > live.top_m  # rows longer than top_m are cut
    before = _sorting_lookup(adjacency, props, live.top_m, items)
    for got, table, oracle in zip(live.neighbors_for(items), teacher.neighbors_for(items), before):
        assert torch.equal(got, oracle) and torch.equal(got, table)
    with torch.inference_mode():
        assert torch.allclose(teacher.last_logits(items), live.last_logits(items), atol=1e-6)
    assert teacher.neighbor_index.shape[-1] == live.top_m


def test_model_size_states_the_dataset_tables_apart_from_the_checkpoint():
    teacher, *_ = _teacher_and_graph()
    size = model_size(teacher)
    tables = teacher.neighbor_index.numel() * 8 + teacher.neighbor_weight.numel() * 4
    assert size["table_bytes"] == tables > 0
    teacher.set_neighbor_tables(random_neighbor_tables(41, 3, 30))  # ten times the neighbours
    bigger = model_size(teacher)
    assert bigger["bytes"] == size["bytes"] and bigger["table_bytes"] == 10 * tables  # not in the checkpoint
    assert model_size(build_model("student", 41))["table_bytes"] == 0


def test_timings_and_floor_are_well_formed():
    stats = time_call(lambda: sum(range(1000)), repeats=5, warmup=1)
    assert 0 < stats["min"] <= stats["median"] <= stats["max"] and stats["repeats"] == 5
    floor = scoring_floor(500, n_requests=100, repeats=3)
    assert floor["product"]["median"] > 0 and floor["product_topk"]["median"] > 0


def test_calls_timed_in_turns_run_equally_often():
    calls = {"a": 0, "b": 0, "c": 0}

    def count(name: str):
        return lambda: calls.__setitem__(name, calls[name] + 1)

    stats = time_in_turns({name: count(name) for name in calls}, repeats=4, warmup=2)
    assert calls == {"a": 6, "b": 6, "c": 6}
    assert set(stats) == set(calls) and all(s["repeats"] == 4 for s in stats.values())


def test_benchmark_reports_every_model():
    teacher, _, _, _ = _teacher_and_graph()
    student = build_model("student", 41, emb_dim=16, qkv_dim=16, n_filters=8, proj_dim=16)
    requests = torch.randint(1, 41, (50, 6), generator=torch.Generator().manual_seed(0))
    out = benchmark({"teacher": teacher, "student": student}, requests, 41, threads=1, repeats=2, n_single=5)
    assert set(out["models"]) == {"teacher", "student"} and out["threads"] == 1
    for row in out["models"].values():
        assert row["batched"]["median"] > 0 and row["single"]["median"] > 0 and row["x_floor"] > 0
        assert row["parameters"] > 0 and row["bytes"] > 0
    assert model_size(student)["parameters"] == sum(p.numel() for p in student.parameters())


def test_random_neighbor_tables_are_well_formed():
    with pytest.raises(ValueError, match="top_m"):
        random_neighbor_tables(20, n_properties=1, top_m=20)
    tables = random_neighbor_tables(60, n_properties=4, top_m=20, seed=3)
    index, weight = tables["index"], tables["weight"]
    assert index.shape == weight.shape == (4, 60, 20) and len(tables["properties"]) == 4
    assert not index[:, PAD].any() and not weight[:, PAD].any()
    assert (index[:, 1:] != PAD).all() and (weight[:, 1:] > 0).all()  # every item has top_m
    assert (index < 60).all()
    w, i = weight[:, 1:], index[:, 1:]  # best first: weight desc, then id asc
    assert ((w[..., :-1] > w[..., 1:]) | ((w[..., :-1] == w[..., 1:]) & (i[..., :-1] < i[..., 1:]))).all()
    for p in range(4):
        for item in range(1, 60):
            row = index[p, item].tolist()
            assert item not in row and len(set(row)) == len(row)
    build_model("mixed_attention", 60).set_neighbor_tables(tables)  # the teacher accepts them


def test_catalogue_scaling_gives_one_record_per_model_and_size():
    out = catalogue_scaling(SMALL, sizes=(50, 200), n_requests=30, repeats=1, warmup=0, bucket=8, top_m=5)
    assert json.loads(json.dumps(out)) == out  # JSON as is
    assert [(r["model"], r["n_items"]) for r in out["records"]] == [
        (label, size) for size in (50, 200) for label in SMALL]
    for r in out["records"]:
        name, settings = SMALL[r["model"]]
        expected = build_model(name, r["n_items"] + 1, **settings)
        assert r["architecture"] == name
        assert r["parameters"] == sum(p.numel() for p in expected.parameters())
        assert r["batched_s_per_1000"] >= r["min"] > 0 and r["iqr"] >= 0 and r["x_floor"] > 0
    assert [f["n_items"] for f in out["floor"]] == [m["n_items"] for m in out["peak_rss"]] == [50, 200]
    assert all(row["batched_s_per_1000"] > 0 for row in out["floor"])
    assert 0 < max(row["peak_rss_mb"] for row in out["peak_rss"]) <= out["peak_rss_mb"]
    assert out["n_requests"] == 30 and out["request_lengths"]["source"] == "log-normal"
    assert 1 <= out["request_lengths"]["max"] <= 50


def test_catalogue_scaling_draws_lengths_from_the_given_pool():
    out = catalogue_scaling({"Student": SMALL["Student"]}, sizes=(50,), n_requests=20, lengths=[3, 7],
                            repeats=1, warmup=0)
    assert out["request_lengths"]["source"] == "given" and out["request_lengths"]["max"] in (3, 7)
    assert len(out["records"]) == 1


def test_scaling_ratios_are_computed_from_the_records():
    records = [{"model": m, "n_items": n, "batched_s_per_1000": t, "min": t / 2 if m == "S" else t}
               for n, times in ((100, (4.0, 2.0, 1.0)), (1000, (10.0, 6.0, 2.0)))
               for m, t in zip(("T", "B", "S"), times)]
    assert scaling_ratios(records, student="S", teacher="T", baseline="B") == [
        {"n_items": 100, "student_vs_teacher": 4.0, "student_vs_baseline": 2.0},
        {"n_items": 1000, "student_vs_teacher": 5.0, "student_vs_baseline": 3.0},
    ]
    assert scaling_ratios(records, "S", "T", "B", statistic="min")[0] == {
        "n_items": 100, "student_vs_teacher": 8.0, "student_vs_baseline": 4.0}
    out = catalogue_scaling(SMALL, sizes=(50,), n_requests=10, repeats=1, warmup=0)
    (ratio,) = scaling_ratios(out["records"], "Student", "Teacher", "Baseline")
    median = {r["model"]: r["batched_s_per_1000"] for r in out["records"]}
    assert ratio == {"n_items": 50, "student_vs_teacher": median["Teacher"] / median["Student"],
                     "student_vs_baseline": median["Baseline"] / median["Student"]}


@pytest.fixture(scope="module")
def tiny_runs(tiny_prepared, tmp_path_factory):
    """Untrained run folders (``metrics.json`` + ``model.pt``) and a KG for the tiny dataset."""
    from recpress_utils.runs import build_for_data

    root = tmp_path_factory.mktemp("latency_runs")
    run_build_kg(tiny_prepared, root / "kg", KGConfig())
    runs = {}
    for label, (name, settings) in SMALL.items():
        settings = {k: v for k, v in settings.items() if k != "n_projections"}  # the tables decide
        net = build_for_data(name, tiny_prepared, settings, neighbors_path=root / "kg" / "neighbors.pt")
        runs[label] = root / name
        runs[label].mkdir()
        torch.save(net.state_dict(), runs[label] / "model.pt")
        write_json({"model": name, "model_kwargs": settings}, runs[label] / "metrics.json")
    return runs, root


def test_run_benchmark_adds_catalogue_scaling_only_when_asked(tiny_prepared, tiny_runs, tmp_path):
    runs, root = tiny_runs
    common = dict(prepared_dir=tiny_prepared, runs=runs, teacher="Teacher",
                  neighbors_path=root / "kg" / "neighbors.pt", graph_path=root / "kg" / "graph.parquet",
                  threads=1, repeats=2, n_single=3, n_requests=20)
    plain = run_benchmark(out_path=tmp_path / "plain.json", **common)
    scaled = run_benchmark(out_path=tmp_path / "scaled.json", catalogue_sizes=(60,), **common)
    assert "catalogue_scaling" not in plain
    assert set(scaled) - set(plain) == {"catalogue_scaling"}
    assert set(scaled["models"]) == set(plain["models"]) == {*SMALL, "Teacher (graph traversal)"}
    scaling = scaled["catalogue_scaling"]
    assert {r["model"] for r in scaling["records"]} == set(SMALL)  # the caller's labels
    assert scaling["top_m"] == KGConfig().top_m and scaling["request_lengths"]["source"] == "given"
    teacher = next(r for r in scaling["records"] if r["model"] == "Teacher")
    n_projections = len(torch.load(root / "kg" / "neighbors.pt")["properties"])
    expected = build_model("mixed_attention", 61, **{**SMALL["Teacher"][1], "n_projections": n_projections})
    assert teacher["parameters"] == sum(p.numel() for p in expected.parameters())
