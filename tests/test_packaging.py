"""pyproject.toml (pip) and environment.yml (conda) must install the same packages and pins."""

from __future__ import annotations

import re
import tomllib

import yaml

from recpress_utils.paths import REPO_ROOT


def _normalise(req: str) -> str:
    return re.sub(r"\s+", "", req).lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    pip_side = {_normalise(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_block = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_side = {_normalise(r) for r in pip_block if not r.startswith("-e")}
    assert pip_side == conda_side, (
        f"only in pyproject: {sorted(pip_side - conda_side)}; only in environment.yml: {sorted(conda_side - pip_side)}"
    )
    assert "-e ." in pip_block, "environment.yml must install the recpress package itself"
    assert pip_block[0] == "torch==2.13.0", "torch must come first and pinned"
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.split("=")[1] in {"3.11", "3.12"}


def test_torch_is_pinned_everywhere_it_is_installed():
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "pip install --quiet torch==2.13.0" in makefile
    assert makefile.index("torch==2.13.0") < makefile.index('-e ".[test]"'), "torch must be installed first"


def test_config_schema_lists_every_synthetic_knob():
    import dataclasses

    from recpress_utils.data.prepare import PrepareConfig
    from recpress_utils.data.synthetic import SyntheticConfig

    schema = yaml.safe_load((REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    synth = set(schema["properties"]["synthetic"]["properties"])
    assert synth == {f.name for f in dataclasses.fields(SyntheticConfig)} - {"seed"}
    prep = set(schema["properties"]["prepare"]["properties"])
    assert prep == {f.name for f in dataclasses.fields(PrepareConfig)} - {"threads", "memory_limit"}


def test_config_schema_lists_every_architecture_and_loss():
    from recpress_utils.losses import LOSSES
    from recpress_utils.models import MODELS
    from recpress_utils.runs import ModelSpec

    schema = yaml.safe_load((REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    entry = schema["properties"]["models"]["additionalProperties"]["properties"]
    assert set(entry["architecture"]["enum"]) == set(MODELS)
    assert set(entry["loss"]["enum"]) == set(LOSSES)
    config = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    for name, spec in config["models"].items():
        ModelSpec.from_config(name, spec)  # every configured model builds
    assert set(config["peers"]) <= set(config["models"])
