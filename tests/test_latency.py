"""Latency tools: the graph-traversing teacher is the same model, timings are well formed."""

from __future__ import annotations

import networkx as nx
import torch

from recpress_utils.latency import GraphTraversalTeacher, benchmark, model_size, scoring_floor, time_call
from recpress_utils.models import build_model


def _teacher_and_graph(n_items: int = 41, m: int = 3):
    torch.manual_seed(0)
    g = nx.MultiGraph()
    g.add_nodes_from(range(1, n_items))
    gen = torch.Generator().manual_seed(1)
    props = ["co_view", "same_category"]
    for prop in props:
        for _ in range(120):
            a, b = torch.randint(1, n_items, (2,), generator=gen).tolist()
            if a != b:
                g.add_edge(a, b, key=prop, property=prop, weight=float(torch.rand(1, generator=gen)) + 0.1)
    index = torch.zeros(len(props), n_items, m, dtype=torch.long)
    weight = torch.zeros(len(props), n_items, m)
    for p, prop in enumerate(props):
        for item in range(1, n_items):
            found = sorted((-d["weight"], nb) for nb, keyed in g.adj[item].items() for k, d in keyed.items()
                           if k == prop)[:m]
            for j, (w, nb) in enumerate(found):
                index[p, item, j], weight[p, item, j] = nb, -w
    teacher = build_model("mixed_attention", n_items, n_projections=2, emb_dim=16, qkv_dim=16, mlp_hidden=16)
    teacher.set_neighbor_tables({"properties": props, "index": index, "weight": weight})
    return teacher.eval(), g, props


def test_graph_traversal_teacher_gives_the_same_outputs():
    teacher, g, props = _teacher_and_graph()
    live = GraphTraversalTeacher.from_teacher(teacher, g, props)
    items = torch.randint(0, 41, (5, 7), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        assert torch.allclose(teacher.last_logits(items), live.last_logits(items), atol=1e-6)
    assert teacher.neighbor_index.shape[-1] == live.top_m


def test_timings_and_floor_are_well_formed():
    stats = time_call(lambda: sum(range(1000)), repeats=5, warmup=1)
    assert 0 < stats["min"] <= stats["median"] <= stats["max"] and stats["repeats"] == 5
    floor = scoring_floor(500, n_requests=100, repeats=3)
    assert floor["product"]["median"] > 0 and floor["product_topk"]["median"] > 0


def test_benchmark_reports_every_model():
    teacher, _, _ = _teacher_and_graph()
    student = build_model("student", 41, emb_dim=16, qkv_dim=16, n_filters=8, proj_dim=16)
    requests = torch.randint(1, 41, (50, 6), generator=torch.Generator().manual_seed(0))
    out = benchmark({"teacher": teacher, "student": student}, requests, 41, threads=1, repeats=2, n_single=5)
    assert set(out["models"]) == {"teacher", "student"} and out["threads"] == 1
    for row in out["models"].values():
        assert row["batched"]["median"] > 0 and row["single"]["median"] > 0 and row["x_floor"] > 0
        assert row["parameters"] > 0 and row["bytes"] > 0
    assert model_size(student)["parameters"] == sum(p.numel() for p in student.parameters())
