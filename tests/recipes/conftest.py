"""Running a recipe end to end as its users do: `python -m recipes.<name>` from the repository root."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def recipe_run(folder: Path, name: str, data_dir: Path, *options: str) -> tuple[dict, str, Path]:
    """Run recipe `name` with its exp dir in `folder`: (results.json as a dict, stdout, exp_dir);
    fails with its stderr."""
    exp = folder / "exp"
    command = [sys.executable, "-m", f"recipes.{name}", "--data-dir", str(data_dir), "--exp-dir", str(exp), *options]
    # Two torch threads, as on the 2-core machines the recipes' error rates were measured on:
    # the thread count changes float summation order, and with it a small model's training.
    environment = {**os.environ, "OMP_NUM_THREADS": "2"}
    done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((exp / "results.json").read_text()), done.stdout, exp


@pytest.fixture
def run_recipe(tmp_path):
    """run_recipe(name, data_dir, *options) -> (results.json as a dict, stdout, exp_dir); fails with stderr."""
    return lambda name, data_dir, *options: recipe_run(tmp_path, name, data_dir, *options)


@pytest.fixture(scope="module")
def digits_demo(tmp_path_factory):
    """The digits demo run once for a module's tests: (results, stdout, exp_dir)."""
    folder = tmp_path_factory.mktemp("digits")
    return recipe_run(folder, "digits", folder / "corpus")
