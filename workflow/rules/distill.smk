# The student distilled from the frozen best teacher, one run per temperature and seed (SPEC section 5).


wildcard_constraints:
    temperature="[0-9]+(\.[0-9]+)?",


rule distill:
    input:
        unpack(distill_inputs),
    output:
        metrics=f"{OUT}/runs/student-T{{temperature}}_s{{seed}}/metrics.json",
        checkpoint=f"{OUT}/runs/student-T{{temperature}}_s{{seed}}/model.pt",
        notebook=f"{OUT}/notebooks/05_distill_T{{temperature}}_s{{seed}}.ipynb",
    params:
        papermill=PAPERMILL,
        nb=lambda wildcards: nb_params(
            temperature=float(wildcards.temperature),
            hard_weight=config["distill"]["hard_weight"],
            top_k=config["distill"]["top_k"],
            negatives=config["distill"]["negatives"],
            seed=int(wildcards.seed),
            prepared_dir=f"{OUT}/prepared",
            teacher_model=model_spec(TEACHER_MODEL).architecture,
            teacher_kwargs=model_spec(TEACHER_MODEL).settings,
            teacher_checkpoint=distill_inputs(wildcards)["teacher"],
            neighbors_path=distill_inputs(wildcards).get("neighbors", ""),
            run_dir=f"{OUT}/runs/student-T{wildcards.temperature}_s{wildcards.seed}",
            student_kwargs=model_spec("student").settings,
            train=STUDENT_TRAIN,
        ),
    log:
        f"{OUT}/logs/05_distill_T{{temperature}}_s{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/05_distill_T{{temperature}}_s{{seed}}.tsv"
    threads: config["threads"]
    resources:
        **RESOURCES["train"],
    shell:
        NOTEBOOK
