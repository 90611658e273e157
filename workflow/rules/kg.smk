# PMI knowledge graph from training sessions, then Node2Vec item embeddings (SPEC section 3).


rule build_kg:
    input:
        notebook="notebooks/02_build_kg.ipynb",
        train=f"{OUT}/prepared/train.parquet",
        vocab=f"{OUT}/prepared/items.parquet",
    output:
        graph=f"{OUT}/kg/graph.parquet",
        neighbors=f"{OUT}/kg/neighbors.pt",
        stats=f"{OUT}/kg/kg_stats.json",
        notebook=f"{OUT}/notebooks/02_build_kg.ipynb",
    params:
        papermill=PAPERMILL,
        nb=nb_params(
            prepared_dir=f"{OUT}/prepared",
            kg_dir=f"{OUT}/kg",
            kg=config["kg"],
            data_seed=config["data_seed"],
        ),
    log:
        f"{OUT}/logs/02_build_kg.log",
    benchmark:
        f"{OUT}/benchmarks/02_build_kg.tsv"
    threads: config["threads"]
    resources:
        **RESOURCES["data"],
    shell:
        NOTEBOOK


# One embedding table per training seed: each seed draws its own walks, so claim C2 is judged
# over Node2Vec draws, not over one draw. The PMI graph is deterministic and shared.
rule node2vec:
    input:
        notebook="notebooks/03_node2vec.ipynb",
        graph=f"{OUT}/kg/graph.parquet",
        vocab=f"{OUT}/prepared/items.parquet",
    output:
        embeddings=f"{OUT}/embeddings/s{{seed}}/node2vec.pt",
        stats=f"{OUT}/embeddings/s{{seed}}/node2vec_stats.json",
        notebook=f"{OUT}/notebooks/03_node2vec_s{{seed}}.ipynb",
    params:
        papermill=PAPERMILL,
        nb=lambda wildcards: nb_params(
            prepared_dir=f"{OUT}/prepared",
            kg_dir=f"{OUT}/kg",
            emb_dir=f"{OUT}/embeddings/s{wildcards.seed}",
            node2vec={k: v for k, v in config["node2vec"].items() if k != "walk_threads"},
            seed=int(wildcards.seed),
        ),
    log:
        f"{OUT}/logs/03_node2vec_s{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/03_node2vec_s{{seed}}.tsv"
    threads: config["node2vec"]["walk_threads"]  # the walks' threads are part of the draw: keep them fixed
    resources:
        **RESOURCES["data"],
    shell:
        NOTEBOOK
