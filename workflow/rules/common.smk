# Shared helpers: where outputs go and how a notebook is run. No experiment logic here.

import glob
import json
import sys

PY = sys.executable  # the interpreter running Snakemake: works without an activated venv
DATASET = config["dataset"]
OUT = f"{config['results_dir']}/{DATASET}"
PAPERMILL = f"{PY} -m papermill -k python3 --no-progress-bar --log-output"


def nb_params(**params):
    """Notebook parameters as one JSON (= YAML) string for papermill's -y."""
    base = {"seed": config["seed"], "threads": config["threads"]}
    return json.dumps({**base, **params}, sort_keys=True)


def final_outputs():
    """What `snakemake` builds by default: every stage's outputs and rendered notebook."""
    return [
        f"{OUT}/prepared/stats.json",
        f"{OUT}/notebooks/01_prepare_data.html",
    ]


def raw_events(wildcards):
    """The raw CSV(s) the prepare stage reads."""
    if DATASET == "rees46":
        files = sorted(glob.glob(config["data_path"]))
        if not files:
            raise WorkflowError(f"data_path={config['data_path']!r} matches no file")
        return files
    return [f"{OUT}/raw/events.csv"]
