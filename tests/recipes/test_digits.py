"""The offline demo (the README's main command) end to end: synthesize, train, decode, score."""

import json
import re

from asr import cli


def test_digits_demo_reaches_its_word_error_rate_offline(run_recipe, tmp_path, capsys):
    results, stdout, exp = run_recipe("digits", tmp_path / "corpus")
    assert results["num_words"] > 500 and results["test_set"] == "digits test (200 files)" and results["decode_rtf"] > 0
    assert results["wer"] < 0.02, stdout[-2000:]
    shown = re.search(r"reference: +(.*)\n +recognized: +(.*)", stdout)
    assert shown, stdout[-2000:]
    assert (exp / "model" / "graph" / "HLG.pt").exists() and (exp / "model" / "tokens.txt").exists()
    # The recipe's WER is the command line's: `asr transcribe` on the same files, then `asr score`.
    references = [json.loads(line) for line in (exp / "test.jsonl").read_text().splitlines()]
    (tmp_path / "ref.txt").write_text("".join(f"{r['id']} {r['text']}\n" for r in references))
    assert cli.main(["transcribe", str(exp / "model"), str(exp / "test.jsonl"), "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "transcripts.txt").read_text() == (exp / "hyp_test.txt").read_text()
    capsys.readouterr()
    assert cli.main(["score", str(tmp_path / "ref.txt"), str(tmp_path / "out" / "transcripts.txt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["wer"] == results["wer"]
