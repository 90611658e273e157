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
        seed=config["data_seed"],
    log:
        f"{OUT}/logs/relatedness.log",
    benchmark:
        f"{OUT}/benchmarks/relatedness.tsv"
    threads: config["threads"]
    resources:
        **RESOURCES["default"],
    shell:
        "{params.py} -m recpress_utils.relatedness --runs {params.runs:q} --examples {params.examples:q}"
        " --prepared {params.prepared} --graph {input.graph} --neighbors {input.neighbors}"
        " --seed {params.seed} --threads {threads} --out {output} 2> {log}"


# The dataset's digest: the few kilobytes of results/ that the report reads (and that reports/
# commits): one row per run, validation curves, latency, relatedness, data and stage statistics.
rule digest:
    input:
        unpack(report_inputs),
    output:
        **{name.replace(".", "_"): f"{OUT}/digest/{name}" for name in DIGEST_FILES},
    params:
        py=PY,
        results=lambda wildcards, input: os.path.dirname(os.path.dirname(input.stats)),
        out=lambda wildcards, output: os.path.dirname(output.digest_csv),
        config=json.dumps(config, sort_keys=True),
    log:
        f"{OUT}/logs/digest.log",
    resources:
        **RESOURCES["default"],
    shell:
        "{params.py} -m recpress_utils.report.digest --results {params.results} --out {params.out}"
        " --config {params.config:q} 2> {log}"


rule report:
    input:
        notebook=REPORT_NOTEBOOK,
        digest=f"{OUT}/digest/digest.csv",
    output:
        notebook=f"{OUT}/report/report.ipynb",
    params:
        papermill=PAPERMILL,
        nb=nb_params(digest_dir=f"{OUT}/digest"),
    log:
        f"{OUT}/logs/07_report.log",
    threads: 1
    resources:
        **RESOURCES["default"],
    shell:
        NOTEBOOK


rule report_html:
    input:
        f"{OUT}/report/report.ipynb",
    output:
        report(f"{OUT}/report/index.html", category="Report", caption="../report/index.rst"),
    params:
        py=PY,
    log:
        f"{OUT}/logs/report_html.log",
    resources:
        **RESOURCES["default"],
    shell:
        "{params.py} -m nbconvert --to html --no-prompt --stdout {input} > {output} 2> {log}"


# reports/ holds the published profiles' digests and reports only (the default and the real-data
# profiles, recpress_utils.config.PUBLISHED_PROFILES): this rule is scheduled only when the
# effective config equals one of them (PUBLISHED). It copies the digest into PUBLISHED_FOLDER
# and renders the report from that copy, so the committed notebook reads
# committed files and nbval can re-execute it exactly. The test command runs the pipeline with
# --omit-from publish_report and then compares the fresh digest with the committed one within a
# tolerance (tests/test_regeneration.py).
rule publish_report:
    input:
        notebook=REPORT_NOTEBOOK,
        digest=[f"{OUT}/digest/{name}" for name in DIGEST_FILES],
    output:
        digest=[f"{PUBLISHED_FOLDER}/{name}" for name in DIGEST_FILES],
        notebook=settings.report_pages(config, PUBLISHED or settings.CONFIG_FILE)[0],
        html=settings.report_pages(config, PUBLISHED or settings.CONFIG_FILE)[1],
    params:
        papermill=PAPERMILL,
        py=PY,
        nb=nb_params(digest_dir=PUBLISHED_FOLDER),
        folder=lambda wildcards, output: os.path.dirname(output.digest[0]),
    log:
        f"{OUT}/logs/publish_report.log",
    resources:
        **RESOURCES["default"],
    shell:
        "(cp {input.digest} {params.folder}/"
        " && {params.papermill} {input.notebook} {output.notebook} -y {params.nb:q} -p threads {threads}"
        " && {params.py} -m nbconvert --to html --no-input --no-prompt --stdout {output.notebook} > {output.html})"
        " 2> {log}"


# The site's front page: the claims x datasets matrix over every committed digest under reports/
# (recpress_utils.report.site), re-rendered after this profile's page, code hidden.
rule front_page:
    input:
        notebook=settings.FRONT_PAGE[0],
        page=settings.report_pages(config, PUBLISHED or settings.CONFIG_FILE)[1],
    output:
        notebook=settings.FRONT_PAGE[1],
        html=settings.FRONT_PAGE[2],
    params:
        papermill=PAPERMILL,
        py=PY,
        nb=nb_params(reports_dir="reports"),
    log:
        f"{OUT}/logs/front_page.log",
    resources:
        **RESOURCES["default"],
    shell:
        "({params.papermill} {input.notebook} {output.notebook} -y {params.nb:q} -p threads {threads}"
        " && {params.py} -m nbconvert --to html --no-input --no-prompt --stdout {output.notebook} > {output.html})"
        " 2> {log}"
