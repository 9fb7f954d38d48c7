"""`asr align`: forced alignment of known transcripts through a model directory, with plots."""

import json

import numpy as np
import soundfile

from asr import cli
from asr.data import Utterance, write_manifest
from asr.decoding import token_runs

from .conftest import RATE, noise_wav


def test_runs_are_token_occurrences():
    assert token_runs([0, 1, 1, 0, 1, 2, 2, 0]) == [(1, 1, 2), (1, 4, 4), (2, 5, 6)]
    assert token_runs([0, 0]) == []


def test_align_gives_the_transcript_with_ordered_times_tokens_and_plots(model_dir, tmp_path, capsys):
    a = noise_wav(tmp_path / "a.wav", 1.2, 0)
    b = noise_wav(tmp_path / "b.wav", 0.9, 1)
    write_manifest(tmp_path / "m.jsonl", [Utterance("ua", str(a), 1.2, "YES NO YES", "s"),
                                          Utterance("ub", str(b), 0.9, "NO", "s")])
    assert cli.main(["align", str(model_dir), str(tmp_path / "m.jsonl"), "-f", "json", "--plot",
                     str(tmp_path / "plots")]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in records] == ["YES NO YES", "NO"]
    for record in records:
        times = [(w["start"], w["end"]) for w in record["words"]]
        assert all(s <= e for s, e in times) and all(e1 <= s2 for (_, e1), (s2, _) in zip(times, times[1:]))
        assert [t["token"] for t in record["tokens"]] == record["text"].split()  # one token per word here
        assert all(0 <= w["start"] < w["end"] <= record["duration"] for w in record["words"])
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["ua.png", "ub.png"]
    assert (tmp_path / "plots" / "ua.png").read_bytes()[:4] == b"\x89PNG"


def test_align_reports_oov_and_impossible_transcripts_and_goes_on(model_dir, tmp_path, capsys):
    a = noise_wav(tmp_path / "a.wav", 1.0, 0)
    (tmp_path / "text").write_text("a YES MAYBE\n")
    assert cli.main(["align", str(model_dir), str(a), "--text", str(tmp_path / "text")]) == 1
    assert "'MAYBE' is not in the lexicon" in capsys.readouterr().err
    short = tmp_path / "short.wav"
    soundfile.write(str(short), np.zeros(int(0.2 * RATE), dtype=np.float32), RATE)  # a few frames only
    assert cli.main(["align", str(model_dir), str(short), "--transcript", " ".join(["YES", "NO"] * 10)]) == 1
    assert "does not fit the audio" in capsys.readouterr().err
    assert cli.main(["align", str(model_dir), str(a), "--transcript", "YES NO"]) == 0
    ctm = capsys.readouterr().out.splitlines()
    assert [line.split()[4] for line in ctm] == ["YES", "NO"] and all(line.startswith("a 1 ") for line in ctm)
