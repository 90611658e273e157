# The student distilled from the frozen best teacher, one run per temperature and seed (SPEC section 5).


wildcard_constraints:
    temperature="[0-9]+(\.[0-9]+)?",
    group="[A-Za-z0-9_]+(-n2v)?",


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
            teacher_cache=distill_inputs(wildcards).get("cache", ""),
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


# With distill.top_k: a trained teacher's top-K per training prefix, once per (teacher, seed) at every
# temperature its students distil at; the distill and kd jobs of that teacher read it.
rule teacher_cache:
    input:
        unpack(teacher_cache_inputs),
    output:
        f"{OUT}/teacher_cache/{{group}}_s{{seed}}.pt",
    params:
        py=PY,
        job=lambda wildcards, input, output: json.dumps(
            {
                "prepared_dir": os.path.dirname(input.train),
                "out": str(output),
                "teacher": settings.teacher_record(config, wildcards.group, int(wildcards.seed)),
                "train": STUDENT_TRAIN,
                "seed": int(wildcards.seed),
                "top_k": config["distill"]["top_k"],
                "temperatures": settings.cache_temperatures(config),
            }
        ),
    log:
        f"{OUT}/logs/05_teacher_cache_{{group}}_s{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/05_teacher_cache_{{group}}_s{{seed}}.tsv"
    threads: config["threads"]
    resources:
        **RESOURCES["train"],
    shell:
        "{params.py} -m recpress_utils.distill.cache_job --job {params.job:q} --threads {threads} > {log} 2>&1"
