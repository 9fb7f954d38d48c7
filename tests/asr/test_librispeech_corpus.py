"""asr.corpora.librispeech on a tiny corpus in LibriSpeech's layout made on the fly (eSpeak NG
speech written as FLAC, chapter transcripts)."""

import pytest
import soundfile

from asr.corpora import librispeech
from asr.espeak import synthesizer


def make_corpus(root, subsets, chapters=2, per_chapter=2, rate=16000):
    """{subset: {id: text}} written as root/LibriSpeech/SUBSET/SPEAKER/CHAPTER/*.flac + .trans.txt."""
    import librosa

    speak, words = synthesizer(), "ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE".split()
    written = {}
    for s, subset in enumerate(subsets):
        written[subset] = {}
        for c in range(chapters):
            speaker, chapter = 100 * (s + 1) + c % 2, 10 * (s + 1) + c
            folder = root / "LibriSpeech" / subset / str(speaker) / str(chapter)
            folder.mkdir(parents=True)
            lines = []
            for k in range(per_chapter):
                utterance = f"{speaker}-{chapter}-{k:04d}"
                text = " ".join(words[(s + c + k + i) % len(words)] for i in range(2 + k % 2))
                audio = librosa.resample(speak(text.lower()), orig_sr=speak.sample_rate, target_sr=rate)
                soundfile.write(folder / f"{utterance}.flac", audio, rate)
                lines.append(f"{utterance} {text}\n")
                written[subset][utterance] = (text, len(audio) / rate, str(speaker))
            (folder / f"{speaker}-{chapter}.trans.txt").write_text("".join(lines))
    return written


def test_subsets_read_with_texts_durations_and_speakers(tmp_path):
    written = make_corpus(tmp_path, ["train-clean-100", "dev-clean", "test-clean"])
    root = librispeech.fetch(tmp_path, ["train-clean-100", "dev-clean", "test-clean"])  # present: nothing fetched
    assert root == tmp_path / "LibriSpeech"
    splits = librispeech.utterances(root, ["train-clean-100"], dev=["dev-clean"], test=["test-clean"])
    assert sorted(splits) == ["dev-clean", "test-clean", "train"]
    for name, subset in (("train", "train-clean-100"), ("dev-clean", "dev-clean"), ("test-clean", "test-clean")):
        got = {u.id: (u.text, u.duration, u.speaker) for u in splits[name]}
        assert got.keys() == written[subset].keys()
        for utterance, (text, duration, speaker) in written[subset].items():
            assert got[utterance][0] == text and got[utterance][2] == speaker
            assert got[utterance][1] == pytest.approx(duration, abs=1e-4)
        assert [u.id for u in splits[name]] == sorted(got)


def test_bad_corpora_are_named(tmp_path):
    make_corpus(tmp_path, ["dev-clean"], chapters=1)
    folder = next((tmp_path / "LibriSpeech" / "dev-clean").glob("*/*"))
    transcript = next(folder.glob("*.trans.txt"))
    missing = sorted(folder.glob("*.flac"))[-1]
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=rf"{transcript.name}, line 2: {missing.name} is missing"):
        librispeech.read_subset(tmp_path / "LibriSpeech", "dev-clean")
    transcript.write_text("not-an-id WORDS\n")
    with pytest.raises(ValueError, match=r"line 1: expected"):
        librispeech.read_subset(tmp_path / "LibriSpeech", "dev-clean")
    with pytest.raises(FileNotFoundError, match="no LibriSpeech test-other"):
        librispeech.find(tmp_path, ["test-other"])
    with pytest.raises(ValueError, match="unknown LibriSpeech subset 'train-clean-101'"):
        librispeech.fetch(tmp_path, ["train-clean-101"])
