"""Error rates against an independent edit distance; Kaldi text parsing; the `asr score` command."""

import json
import random
import signal
import subprocess
import sys

import pytest

from asr import cli, scoring
from asr.data import Utterance, write_manifest

from .synthetic import edit_distance


def test_counts_on_a_hand_checked_example():
    refs = {"u1": "the cat sat on the mat", "u2": "hello world", "u3": "a b c", "u4": ""}
    hyps = {"u1": "the cat sit on mat", "u2": "hello big world", "u3": "a b c", "u4": "oops"}
    result = scoring.score(refs, hyps)
    w = result.words
    assert (w.sentences, w.reference_units, w.correct, w.substitutions, w.deletions, w.insertions) == (4, 11, 9, 1, 1, 2)
    assert w.sentence_errors == 3
    assert w.kaldi_line() == "%WER 36.36 [ 4 / 11, 2 ins, 1 del, 1 sub ]"
    assert result.alignments["u1"] == ("the cat sat on the mat".split(), "the cat sit on *** mat".split())


def test_error_rate_equalsedit_distance_on_random_sentences():
    rng = random.Random(0)
    vocab = "a b c d e".split()
    refs, hyps = {}, {}
    for i in range(50):
        refs[f"u{i}"] = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 8)))
        hyps[f"u{i}"] = " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 8)))
    result = scoring.score(refs, hyps)
    distance = sum(edit_distance(hyps[u].split(), refs[u].split()) for u in refs)
    assert result.words.errors == distance
    assert result.words.reference_units == sum(len(r.split()) for r in refs.values())
    chars = sum(edit_distance(list(hyps[u]), list(refs[u])) for u in refs)
    assert result.chars.errors == chars


def test_missing_and_extra_hypotheses():
    with pytest.warns(UserWarning, match="no hypothesis"):
        result = scoring.score({"a": "x y", "b": "z"}, {"a": "x y"})
    assert result.words.deletions == 1
    with pytest.raises(ValueError, match="no reference"):
        scoring.score({"a": "x"}, {"a": "x", "b": "y"})


def test_kaldi_text_reading(tmp_path):
    path = tmp_path / "text"
    path.write_text("u1 hello  world\nu2\n\nu3 x\n")
    assert scoring.read_kaldi_text(path) == {"u1": "hello  world", "u2": "", "u3": "x"}
    path.write_text("u1 a\nu1 b\n")
    with pytest.raises(ValueError, match=r"text, line 2: utterance id 'u1' appears twice"):
        scoring.read_kaldi_text(path)


def test_score_command(tmp_path, capsys):
    (tmp_path / "ref").write_text("u1 a b c\nu2 d\n")
    (tmp_path / "hyp").write_text("u1 a x c\nu2 d\n")
    assert cli.main(["score", str(tmp_path / "ref"), str(tmp_path / "hyp")]) == 0
    out = capsys.readouterr().out
    assert "%WER 25.00 [ 1 / 4, 0 ins, 0 del, 1 sub ]" in out and "S.Err" in out
    assert cli.main(["score", str(tmp_path / "ref"), str(tmp_path / "hyp"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["wer"] == 0.25
    assert cli.main(["score", str(tmp_path / "ref"), str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
    # the manifest that was decoded is a reference too
    write_manifest(tmp_path / "ref.jsonl", [Utterance("u1", "1.wav", 1.0, "a b c", "s"),
                                            Utterance("u2", "2.wav", 1.0, "d", "s")])
    assert cli.main(["score", str(tmp_path / "ref.jsonl"), str(tmp_path / "hyp"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["wer"] == 0.25


def test_output_piped_into_a_reader_that_stops_early_ends_quietly(tmp_path):
    """`asr score ... --details | head -1`: no traceback and no "Broken pipe" message."""
    (tmp_path / "ref").write_text("".join(f"u{i} a b c d\n" for i in range(3000)))
    (tmp_path / "hyp").write_text("".join(f"u{i} a x c\n" for i in range(3000)))
    command = [sys.executable, "-m", "asr.cli", "score", str(tmp_path / "ref"), str(tmp_path / "hyp"), "--details"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        first = process.stdout.readline()
        process.stdout.close()  # as `head -1` does after its line
        error = process.stderr.read()
    assert first == b"u0\n" and error == b"" and process.returncode == 128 + signal.SIGPIPE
