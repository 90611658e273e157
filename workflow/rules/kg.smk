# PMI knowledge graph from training sessions, then Node2Vec item embeddings (SPEC section 3).


rule build_kg:
    input:
        notebook="notebooks/02_build_kg.ipynb",
        train=f"{OUT}/prepared/train.parquet",
        vocab=f"{OUT}/prepared/items.parquet",
    output:
        graph=f"{OUT}/kg/graph.tsv.gz",
        neighbors=f"{OUT}/kg/neighbors.pt",
        stats=f"{OUT}/kg/kg_stats.json",
        notebook=f"{OUT}/notebooks/02_build_kg.ipynb",
    params:
        papermill=PAPERMILL,
        nb=nb_params(
            prepared_dir=f"{OUT}/prepared", kg_dir=f"{OUT}/kg", kg=config["kg"]
        ),
    log:
        f"{OUT}/logs/02_build_kg.log",
    benchmark:
        f"{OUT}/benchmarks/02_build_kg.tsv"
    threads: config["threads"]
    conda:
        "../../environment.yml"
    shell:
        "{params.papermill} {input.notebook} {output.notebook} -y {params.nb:q} 2> {log}"


rule node2vec:
    input:
        notebook="notebooks/03_node2vec.ipynb",
        graph=f"{OUT}/kg/graph.tsv.gz",
        vocab=f"{OUT}/prepared/items.parquet",
    output:
        embeddings=f"{OUT}/embeddings/node2vec.pt",
        stats=f"{OUT}/embeddings/node2vec_stats.json",
        notebook=f"{OUT}/notebooks/03_node2vec.ipynb",
    params:
        papermill=PAPERMILL,
        nb=nb_params(
            prepared_dir=f"{OUT}/prepared",
            kg_dir=f"{OUT}/kg",
            emb_dir=f"{OUT}/embeddings",
            node2vec=config["node2vec"],
        ),
    log:
        f"{OUT}/logs/03_node2vec.log",
    benchmark:
        f"{OUT}/benchmarks/03_node2vec.tsv"
    threads: config["threads"]
    conda:
        "../../environment.yml"
    shell:
        "{params.papermill} {input.notebook} {output.notebook} -y {params.nb:q} 2> {log}"
