# The paper's models, the peers and the hard-label student: one rule parameterized by model
# (a name in config `models`: architecture + loss + settings), Node2Vec switch and seed.


wildcard_constraints:
    model="[a-z0-9_]+",
    n2v="(-n2v)?",
    seed="[0-9]+",


rule train_model:
    input:
        unpack(train_inputs),
    output:
        metrics=f"{OUT}/runs/{{model}}{{n2v}}_s{{seed}}/metrics.json",
        checkpoint=f"{OUT}/runs/{{model}}{{n2v}}_s{{seed}}/model.pt",
        notebook=f"{OUT}/notebooks/04_train_model_{{model}}{{n2v}}_s{{seed}}.ipynb",
    params:
        papermill=PAPERMILL,
        nb=lambda wildcards: nb_params(
            model=wildcards.model,
            spec=config["models"].get(wildcards.model, {}),
            node2vec=bool(wildcards.n2v),
            seed=int(wildcards.seed),
            prepared_dir=f"{OUT}/prepared",
            neighbors_path=train_inputs(wildcards).get("neighbors", ""),
            node2vec_path=train_inputs(wildcards).get("embeddings", ""),
            run_dir=f"{OUT}/runs/{wildcards.model}{wildcards.n2v}_s{wildcards.seed}",
            train=config["train"],
        ),
    log:
        f"{OUT}/logs/04_train_model_{{model}}{{n2v}}_s{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/04_train_model_{{model}}{{n2v}}_s{{seed}}.tsv"
    threads: config["threads"]
    resources:
        **RESOURCES["train"],
    shell:
        NOTEBOOK
