# Claim C6 / Figure 8 data, then the report notebook executed into reports/ (SPEC sections 7-8).


rule relatedness:
    input:
        unpack(relatedness_inputs),
    output:
        f"{OUT}/claims/relatedness.json",
    params:
        py=PY,
        runs=json.dumps({run: f"{OUT}/runs/{run}" for run in RELATEDNESS_RUNS}),
        examples=json.dumps(
            [f"{TEACHER_RUN}_s{_SEED0}", f"student-T{config['benchmark']['student_temperature']:g}_s{_SEED0}"]
        ),
        prepared=f"{OUT}/prepared",
        seed=config["seed"],
    log:
        f"{OUT}/logs/relatedness.log",
    benchmark:
        f"{OUT}/benchmarks/relatedness.tsv"
    threads: config["threads"]
    conda:
        "../../environment.yml"
    shell:
        "{params.py} -m recpress_utils.relatedness --runs {params.runs:q} --examples {params.examples:q}"
        " --prepared {params.prepared} --graph {input.graph} --neighbors {input.neighbors}"
        " --seed {params.seed} --threads {threads} --out {output} 2> {log}"


rule report:
    input:
        unpack(report_inputs),
    output:
        notebook=f"{OUT}/report/report.ipynb",
    params:
        papermill=PAPERMILL,
        nb=nb_params(results_dir=OUT, dataset=DATASET, paper=PAPER, config=config),
    log:
        f"{OUT}/logs/07_report.log",
    threads: 1
    conda:
        "../../environment.yml"
    shell:
        "{params.papermill} {input.notebook} {output.notebook} -y {params.nb:q} 2> {log}"


rule report_html:
    input:
        f"{OUT}/report/report.ipynb",
    output:
        report(f"{OUT}/report/index.html", category="Report", caption="../report/index.rst"),
    params:
        py=PY,
    log:
        f"{OUT}/logs/report_html.log",
    conda:
        "../../environment.yml"
    shell:
        "{params.py} -m nbconvert --to html --no-prompt --stdout {input} > {output} 2> {log}"


# The committed reports/ folder holds the default run's report. The test command runs the
# pipeline with --omit-from publish_report, so nbval checks the committed outputs against a
# re-execution on freshly computed results.
rule publish_report:
    input:
        notebook=f"{OUT}/report/report.ipynb",
        html=f"{OUT}/report/index.html",
    output:
        notebook="reports/report.ipynb",
        html="reports/index.html",
    log:
        f"{OUT}/logs/publish_report.log",
    conda:
        "../../environment.yml"
    shell:
        "(cp {input.notebook} {output.notebook} && cp {input.html} {output.html}) 2> {log}"
