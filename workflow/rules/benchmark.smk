# Latency per 1,000 requests of the baseline, the teacher (tables and graph traversal) and the
# student, measured in one run with every core, so the ratios compare like with like.


rule latency:
    input:
        unpack(benchmark_inputs),
    output:
        latency=f"{OUT}/benchmark/latency.json",
        notebook=f"{OUT}/notebooks/06_benchmark.ipynb",
    params:
        papermill=PAPERMILL,
        nb=lambda wildcards: nb_params(
            prepared_dir=f"{OUT}/prepared",
            runs=BENCHMARK_RUNS,
            teacher=BENCHMARK_NAMES["teacher"],
            baseline=BENCHMARK_NAMES["baseline"],
            student=BENCHMARK_NAMES["student"],
            neighbors_path=benchmark_inputs(wildcards)["neighbors"],
            graph_path=benchmark_inputs(wildcards)["graph"],
            out_path=f"{OUT}/benchmark/latency.json",
            repeats=config["benchmark"]["repeats"],
            n_single=config["benchmark"]["n_single"],
            data_seed=config["data_seed"],
            catalogue_sizes=config["benchmark"]["catalogue_sizes"],
        ),
    log:
        f"{OUT}/logs/06_benchmark.log",
    benchmark:
        f"{OUT}/benchmarks/06_benchmark.tsv"
    threads: config["benchmark"]["threads"]
    resources:
        **RESOURCES["benchmark"],
    shell:
        NOTEBOOK
