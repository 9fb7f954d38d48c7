"""The offline demo (the README's main command) end to end: synthesize, train, decode, score."""

import re


def test_digits_demo_reaches_its_word_error_rate_offline(run_recipe, tmp_path):
    results, stdout, exp = run_recipe("digits", tmp_path / "corpus")
    assert results["num_words"] > 500 and results["test_set"] == "digits test (200 files)" and results["decode_rtf"] > 0
    assert results["wer"] < 0.02, stdout[-2000:]
    shown = re.search(r"reference: +(.*)\n +recognized: +(.*)", stdout)
    assert shown, stdout[-2000:]
    assert (exp / "model" / "HLG.pt").exists() and (exp / "model" / "tokens.txt").exists()
