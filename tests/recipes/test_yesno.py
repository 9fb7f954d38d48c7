"""The yesno recipe end to end on the shared copy of the corpus: train, decode, score."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from asr import recipe

ROOT = Path(__file__).resolve().parents[2]
YESNO = ROOT.parent / "shared" / "data" / "yesno"


@pytest.mark.skipif(not YESNO.is_dir(), reason="../shared/data/yesno is not present")
def test_yesno_recipe_reaches_its_word_error_rate(tmp_path):
    exp = tmp_path / "exp"
    run = subprocess.run([sys.executable, "-m", "recipes.yesno", "--data-dir", str(YESNO), "--exp-dir", str(exp)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((exp / "results.json").read_text())
    assert results["num_words"] == 232
    # 0.0% with the default seed on our machines; one error is the file whose recording starts
    # with a click (1_1_1_1_0_1_0_0), which other seeds and thread counts sometimes hear as YES.
    assert results["wer"] <= 1 / 232, run.stdout[-2000:]
    assert "%WER" in run.stdout
    hypotheses = dict(line.split(" ", 1) for line in (exp / "hyp.txt").read_text().splitlines())
    assert len(hypotheses) == 29
    model, graph = recipe.load_model_dir(exp / "model")
    assert model.config.vocab_size == 3 and graph.num_arcs > 0
