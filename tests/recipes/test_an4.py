"""The AN4 recipe end to end on a few utterances of the shared training set: every stage runs, and
results.json, the hypotheses and the model directory come out as a full run writes them."""

import json
from pathlib import Path

import pytest

from asr.corpora import an4
from asr.model_dir import load_model_dir

AN4 = Path(__file__).resolve().parents[3] / "shared" / "data" / "an4"


def mini_corpus(folder: Path, per_speaker: int = 2, speakers: int = 12) -> Path:
    """An AN4 layout holding `per_speaker` recordings of each of the first `speakers` speakers
    (linked, not copied), with the official dictionary."""
    (folder / "etc").mkdir(parents=True)
    kept, count = [], {}
    for line in (AN4 / "etc" / "an4_train.fileids").read_text().split():
        speaker = line.split("/")[1]
        if len(count) < speakers or speaker in count:
            count[speaker] = count.get(speaker, 0) + 1
            if count[speaker] <= per_speaker:
                kept.append(line)
    utterances = {line.split("/")[-1] for line in kept}
    (folder / "etc" / "an4_train.fileids").write_text("".join(f"{line}\n" for line in kept))
    transcripts = [line for line in (AN4 / "etc" / "an4_train.transcription").read_text().splitlines()
                   if line.rsplit("(", 1)[-1].rstrip(")") in utterances]
    (folder / "etc" / "an4_train.transcription").write_text("".join(f"{line}\n" for line in transcripts))
    (folder / "etc" / "an4.dic").write_text((AN4 / "etc" / "an4.dic").read_text())
    for line in kept:
        target = folder / "wav" / f"{line}.sph"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(AN4 / "wav" / f"{line}.sph")
    return folder


@pytest.mark.skipif(not AN4.is_dir(), reason="../shared/data/an4 is not present")
def test_an4_recipe_runs_every_stage_on_a_few_utterances(run_recipe, tmp_path):
    corpus = mini_corpus(tmp_path / "an4")
    results, stdout, exp = run_recipe("an4", corpus, "--epochs", "2")
    splits = an4.utterances(corpus)
    assert len(splits["dev"]) == 2 * an4.DEV_SPEAKERS and len(splits["train"]) == 6
    assert results["tokens"] == "phone" and results["encoder"] == "conformer" and not results["test_scored"]
    assert sorted(results["sets"]) == ["dev", "dev_8k"]
    for name, numbers in results["sets"].items():
        assert numbers["files"] == 18 and numbers["num_words"] == sum(len(u.text.split()) for u in splits["dev"])
        assert 0.0 <= numbers["wer"] and 0.0 <= numbers["greedy_per"] and numbers["decode_rtf"] > 0
        hypotheses = (exp / f"hyp_{name}.txt").read_text().splitlines()
        assert [line.split()[0] for line in hypotheses] == [u.id for u in splits["dev"]]
    assert "the official test set is absent" in stdout and "%WER dev_8k" in stdout
    assert results["train_seconds"] > 0 and results["parameters"] > 1e6
    narrow = [json.loads(line) for line in (exp / "dev_8k.jsonl").read_text().splitlines()]
    assert all(record["audio"].endswith(".flac") for record in narrow)
    saved = load_model_dir(exp / "model")
    assert saved.tokenizer.kind == "phone" and saved.graph.num_arcs > 0
    assert sorted(p.name for p in exp.glob("epoch-*.pt")) == ["epoch-1.pt", "epoch-2.pt"]
