# The distillation toolkit (issue 16): every method of `kd.methods` and the no-KD control, per
# student size (`kd.sizes`) and seed; one job each, the method's teachers trained by train_model.


wildcard_constraints:
    size="[A-Za-z0-9-]+",
    method="[A-Za-z0-9_]+",


rule kd:
    input:
        unpack(kd_inputs),
    output:
        metrics=f"{OUT}/kd/{{size}}/{{method}}_s{{seed}}/metrics.json",
        checkpoint=f"{OUT}/kd/{{size}}/{{method}}_s{{seed}}/model.pt",
        notebook=f"{OUT}/notebooks/09_kd_{{size}}_{{method}}_s{{seed}}.ipynb",
    params:
        papermill=PAPERMILL,
        nb=lambda wildcards: nb_params(
            **settings.stage_params(
                config, "09_kd", {"size": wildcards.size, "method": wildcards.method, "seed": int(wildcards.seed)}
            )
        ),
    log:
        f"{OUT}/logs/09_kd_{{size}}_{{method}}_s{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/09_kd_{{size}}_{{method}}_s{{seed}}.tsv"
    threads: config["threads"]
    resources:
        **RESOURCES["train"],
    shell:
        NOTEBOOK


# One student per size timed for the compression figure's latency axis (a method changes the
# weights, not the cost): the first seed's no-KD controls, in one process with every core.
rule kd_latency:
    input:
        test=f"{OUT}/prepared/test.parquet",
        models=[f"{OUT}/kd/{size}/{KD_CONTROL}_s{KD_SEED0}/model.pt" for size in config["kd"]["sizes"]],
    output:
        f"{OUT}/kd/latency.json",
    params:
        py=PY,
        prepared=lambda wildcards, input: os.path.dirname(input.test),
        runs=json.dumps({size: f"{OUT}/kd/{size}/{KD_CONTROL}_s{KD_SEED0}" for size in config["kd"]["sizes"]}),
        repeats=config["benchmark"]["repeats"],
    log:
        f"{OUT}/logs/kd_latency.log",
    benchmark:
        f"{OUT}/benchmarks/kd_latency.tsv"
    threads: config["benchmark"]["threads"]
    resources:
        **RESOURCES["benchmark"],
    shell:
        "{params.py} -m recpress_utils.latency --prepared {params.prepared} --runs {params.runs:q}"
        " --threads {threads} --repeats {params.repeats} --out {output} 2> {log}"
