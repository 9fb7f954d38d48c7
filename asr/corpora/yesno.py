"""The yesno corpus (OpenSLR 1): 60 recordings of eight Hebrew yes/no words, labels in the file names.

`0_1_1_0_0_1_0_1.wav` says NO YES YES NO NO YES NO YES. Conventional split: names
starting with `0_` train (31 files), `1_` test (29 files).
"""

from __future__ import annotations

from pathlib import Path

from ..audio import audio_info
from ..data import Utterance
from ..download import download, extract

URL = "https://www.openslr.org/resources/1/waves_yesno.tar.gz"
MD5 = "962ff6e904d2df1126132ecec6978786"  # the archive's digest, as torchaudio's YESNO dataset pins it
WORDS = ("NO", "YES")


def fetch(data_dir: str | Path) -> Path:
    """Download and unpack the corpus into data_dir (once); returns the folder of wavs."""
    data_dir = Path(data_dir)
    folder = data_dir / "waves_yesno"
    if not folder.is_dir():
        archive = download(URL, data_dir / "waves_yesno.tar.gz", MD5)
        extract(archive, data_dir)
    return folder


def find(data_dir: str | Path) -> Path:
    """The folder of wavs under data_dir (data_dir itself may be that folder)."""
    data_dir = Path(data_dir)
    for candidate in (data_dir / "waves_yesno", data_dir):
        if any(candidate.glob("[01]_*.wav")):
            return candidate
    raise FileNotFoundError(f"{data_dir}: no yesno recordings (expected waves_yesno/[01]_*.wav)")


def transcript(path: Path) -> str:
    """Words from a file name like 0_1_1_0_0_1_0_1.wav."""
    labels = path.stem.split("_")
    if len(labels) != 8 or set(labels) - {"0", "1"}:
        raise ValueError(f"{path}: not a yesno file name (eight 0/1 labels joined by '_')")
    return " ".join(WORDS[int(label)] for label in labels)


def utterances(folder: str | Path) -> dict[str, list[Utterance]]:
    """{'train': [...], 'test': [...]} by the conventional split."""
    splits: dict[str, list[Utterance]] = {"train": [], "test": []}
    for path in sorted(Path(folder).glob("[01]_*.wav")):
        rate, samples, _ = audio_info(path)
        split = "train" if path.name.startswith("0_") else "test"
        splits[split].append(Utterance(path.stem, str(path.resolve()), samples / rate, transcript(path), "yesno"))
    return splits
