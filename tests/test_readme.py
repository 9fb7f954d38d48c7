"""The README's example is the file the README's main command runs, and it prints the right numbers."""

import math
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_example_is_the_example_file():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    assert block in (ROOT / "examples" / "graph_gradients.py").read_text()


def test_example_prints_score_and_posteriors():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "graph_gradients.py")],
                         capture_output=True, text=True, check=True).stdout
    score, grads = re.match(r"score (\S+); gradient \(arc posteriors\) \[(.*)\]", out).groups()
    assert float(score) == round(math.log(math.exp(1.0) + math.exp(0.5)), 4)
    p = math.exp(1.0) / (math.exp(1.0) + math.exp(0.5))
    assert [round(float(g), 6) for g in grads.split(",")] == [round(1 - p, 6), round(p, 6), 0.0, 1.0]
