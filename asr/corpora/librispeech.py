"""LibriSpeech (Panayotov et al. 2015): read English audiobooks, 16 kHz FLAC, from openslr
resource 12, with the lexicon and n-gram LMs of resource 11.

Layout (each archive unpacks to `LibriSpeech/SUBSET/`):

    LibriSpeech/train-clean-100/19/198/19-198-0001.flac
    LibriSpeech/train-clean-100/19/198/19-198.trans.txt    19-198-0001 NORTHANGER ABBEY ...

A folder per speaker, one per chapter inside it, a transcript file per chapter with a line per
utterance. The speaker is the first part of the id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..audio import audio_info
from ..data import Utterance
from ..download import download, extract

AUDIO_URL = "https://www.openslr.org/resources/12/"
# openslr's published MD5s (https://www.openslr.org/resources/12/md5sum.txt)
SUBSETS = {
    "train-clean-100": "2a93770f6d5c6c964bc36631d331a522",
    "train-clean-360": "c0e676e450a7ff2f54aeade5171606fa",
    "train-other-500": "d1a0fd59409feb2c614ce4d30c387708",
    "dev-clean": "42e2234ba48799c1f50f24a7926300a1",
    "dev-other": "c8d0bcc9cca99d4f8b62fcc847357931",
    "test-clean": "32fa31d27d2e1cad72775fee3f4849a9",
    "test-other": "fb5a50374b501bb3bac4815ee91d3135",
}
RESOURCE_URL = "https://www.openslr.org/resources/11/"
# Resource 11 publishes no checksums: these are checked against the size the server announces.
RESOURCES = {"lexicon": "librispeech-lexicon.txt", "3-gram": "3-gram.pruned.1e-7.arpa.gz", "4-gram": "4-gram.arpa.gz"}


def fetch(data_dir: str | Path, subsets: Sequence[str], resources: Sequence[str] = ()) -> Path:
    """Download (resumably, checksummed) and unpack each of `subsets` not yet under data_dir,
    and download the `resources` (keys of `RESOURCES`) into it; returns the corpus folder
    (the one holding the subsets)."""
    data_dir = Path(data_dir)
    for subset in subsets:
        if subset not in SUBSETS:
            raise ValueError(f"unknown LibriSpeech subset {subset!r}; choose from {', '.join(SUBSETS)}")
        if not (data_dir / "LibriSpeech" / subset).is_dir() and not (data_dir / subset).is_dir():
            archive = download(AUDIO_URL + f"{subset}.tar.gz", data_dir / f"{subset}.tar.gz", SUBSETS[subset])
            extract(archive, data_dir)
            archive.unlink()  # 6 to 30 GB each
    for resource in resources:
        download(RESOURCE_URL + RESOURCES[resource], data_dir / RESOURCES[resource])
    return find(data_dir, subsets)


def find(data_dir: str | Path, subsets: Sequence[str]) -> Path:
    """The folder under data_dir that holds every one of `subsets`: data_dir/LibriSpeech or data_dir."""
    data_dir = Path(data_dir)
    for candidate in (data_dir / "LibriSpeech", data_dir):
        if all((candidate / subset).is_dir() for subset in subsets):
            return candidate
    raise FileNotFoundError(f"{data_dir}: no LibriSpeech {', '.join(subsets)} (expected LibriSpeech/SUBSET/ "
                            "or SUBSET/ folders)")


def read_subset(root: str | Path, subset: str) -> list[Utterance]:
    """The utterances of one subset, in id order. A transcript line without its FLAC file, or
    that is not `ID WORDS`, is an error naming the file and line."""
    folder = Path(root) / subset
    transcripts = sorted(folder.glob("*/*/*.trans.txt"))
    if not transcripts:
        raise FileNotFoundError(f"{folder}: no SPEAKER/CHAPTER/*.trans.txt files")
    utterances = []
    for path in transcripts:
        chapter = path.name[:-len(".trans.txt")]
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            utterance, _, text = line.strip().partition(" ")
            if not text or not utterance.startswith(chapter + "-"):
                raise ValueError(f"{path}, line {number}: expected '{chapter}-N WORDS', got {line.rstrip()!r}")
            audio = path.parent / f"{utterance}.flac"
            if not audio.is_file():
                raise FileNotFoundError(f"{path}, line {number}: {audio.name} is missing")
            rate, samples, _ = audio_info(audio)
            utterances.append(Utterance(utterance, str(audio.resolve()), samples / rate, " ".join(text.split()),
                                        utterance.split("-")[0]))
    return sorted(utterances, key=lambda u: u.id)


def utterances(root: str | Path, train: Sequence[str], dev: Sequence[str] = ("dev-clean", "dev-other"),
               test: Sequence[str] = ("test-clean", "test-other")) -> dict[str, list[Utterance]]:
    """{"train": the `train` subsets together, and each dev and test subset under its own name}."""
    splits = {"train": [u for subset in train for u in read_subset(root, subset)]}
    for subset in (*dev, *test):
        splits[subset] = read_subset(root, subset)
    return splits
