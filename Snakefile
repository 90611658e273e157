# RecPress: regenerate the paper's results from raw events.
#   snakemake --cores 2                                   (embedded default: synthetic data)
#   snakemake --cores 2 --configfile config/tiny.yaml     (the whole pipeline in about a minute)
#   snakemake --cores 2 --config dataset=ml-100k          (real MovieLens-100k)
# Each stage is a parameterized notebook in notebooks/, executed by papermill; all logic lives
# in the recpress_utils package. Outputs go to <results_dir>/<dataset>/.

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"


# Cheap jobs run where Snakemake runs, never submitted to a cluster.
localrules:
    all,
    notebook_html,
    report_html,
    digest,
    publish_report,
    front_page,


include: "workflow/rules/data.smk"
include: "workflow/rules/kg.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/distill.smk"
include: "workflow/rules/kd.smk"
include: "workflow/rules/benchmark.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/notebooks.smk"


rule all:
    input:
        final_outputs(),
    default_target: True


onsuccess:
    if not PUBLISHED:
        print(f"This run's config is none of the published profiles', so reports/ was left untouched: "
              f"its report is {OUT}/report/index.html (digest in {OUT}/digest/).")
