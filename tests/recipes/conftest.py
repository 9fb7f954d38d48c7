"""Running a recipe end to end as its users do: `python -m recipes.<name>` from the repository root."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_recipe(tmp_path):
    """run_recipe(name, data_dir) -> (results.json as a dict, stdout, exp_dir); fails with stderr."""

    def run(name: str, data_dir: Path) -> tuple[dict, str, Path]:
        exp = tmp_path / "exp"
        command = [sys.executable, "-m", f"recipes.{name}", "--data-dir", str(data_dir), "--exp-dir", str(exp)]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads((exp / "results.json").read_text()), done.stdout, exp

    return run
