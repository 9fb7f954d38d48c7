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
    (linked, not copied) as the training set and those of the next speaker as a stand-in for
    the withheld test set (in its place: wav/an4test_clstk, etc/an4_test.*), with the official
    dictionary."""
    (folder / "etc").mkdir(parents=True)
    kept, count = [], {}
    for line in (AN4 / "etc" / "an4_train.fileids").read_text().split():
        speaker = line.split("/")[1]
        if len(count) < speakers + 1 or speaker in count:
            count[speaker] = count.get(speaker, 0) + 1
            if count[speaker] <= per_speaker:
                kept.append(line)
    transcripts = {line.rsplit("(", 1)[-1].rstrip(")"): line
                   for line in (AN4 / "etc" / "an4_train.transcription").read_text().splitlines()}
    splits = {"train": kept[:-per_speaker], "test": kept[-per_speaker:]}
    for split, lines in splits.items():
        fileids = [line.replace("an4_clstk/", "an4test_clstk/") if split == "test" else line for line in lines]
        (folder / "etc" / f"an4_{split}.fileids").write_text("".join(f"{line}\n" for line in fileids))
        (folder / "etc" / f"an4_{split}.transcription").write_text(
            "".join(f"{transcripts[line.split('/')[-1]]}\n" for line in lines))
        for source, fileid in zip(lines, fileids):
            target = folder / "wav" / f"{fileid}.sph"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(AN4 / "wav" / f"{source}.sph")
    (folder / "etc" / "an4.dic").write_text((AN4 / "etc" / "an4.dic").read_text())
    return folder


@pytest.mark.skipif(not AN4.is_dir(), reason="../shared/data/an4 is not present")
def test_an4_recipe_runs_every_stage_on_a_few_utterances(run_recipe, tmp_path):
    corpus = mini_corpus(tmp_path / "an4")
    results, stdout, exp = run_recipe("an4", corpus, "--epochs", "2")
    splits = an4.utterances(corpus)
    assert len(splits["dev"]) == 2 * an4.DEV_SPEAKERS and len(splits["train"]) == 6 and len(splits["test"]) == 2
    assert results["tokens"] == "phone" and results["encoder"] == "conformer" and results["test_scored"]
    assert sorted(results["sets"]) == ["dev", "dev_8k", "test"]
    for name, numbers in results["sets"].items():
        reference = splits["test" if name == "test" else "dev"]
        assert numbers["files"] == len(reference)
        assert numbers["num_words"] == sum(len(u.text.split()) for u in reference)
        assert 0.0 <= numbers["wer"] and 0.0 <= numbers["greedy_per"] and numbers["decode_rtf"] > 0
        hypotheses = (exp / f"hyp_{name}.txt").read_text().splitlines()
        assert [line.split()[0] for line in hypotheses] == [u.id for u in reference]
        assert f"%WER {name} " in stdout
    assert "test set is absent" not in stdout
    assert results["train_seconds"] > 0 and results["parameters"] > 1e6
    narrow = [json.loads(line) for line in (exp / "dev_8k.jsonl").read_text().splitlines()]
    assert all(record["audio"].endswith(".flac") for record in narrow)
    saved = load_model_dir(exp / "model")
    assert saved.tokenizer.kind == "phone" and saved.graph.graph.num_arcs > 0
    assert sorted(p.name for p in exp.glob("epoch-*.pt")) == ["epoch-1.pt", "epoch-2.pt"]


@pytest.mark.skipif(not AN4.is_dir(), reason="../shared/data/an4 is not present")
def test_an4_recipe_says_it_scored_dev_only_without_the_test_set(run_recipe, tmp_path):
    corpus = mini_corpus(tmp_path / "an4")
    for path in [corpus / "etc" / "an4_test.fileids", corpus / "etc" / "an4_test.transcription"]:
        path.unlink()
    results, stdout, exp = run_recipe("an4", corpus, "--epochs", "1", "--stage", "1")
    assert sorted(results["sets"]) == ["dev", "dev_8k"] and not results["test_scored"]
    assert "an4: the official test set is absent" in stdout and "scored dev, dev_8k only" in stdout

