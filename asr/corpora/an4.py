"""The CMU AN4 ("census") corpus: 1991 close-talking 16 kHz recordings of spelled names,
digit strings, dates and commands, NIST SPHERE files with Sphinx-style transcripts.

Layout (the archive unpacks to `an4/`):

    etc/an4_train.fileids        an4_clstk/fash/an251-fash-b     (948 lines, 74 speakers)
    etc/an4_train.transcription  <s> YES </s> (an251-fash-b)
    etc/an4_test.fileids, etc/an4_test.transcription, wav/an4test_clstk/   (130 files, 10 speakers)
    etc/an4.dic                  CMU pronunciations, `WORD(2)` for variants
    wav/an4_clstk/SPEAKER/ID.sph

The speaker is the file's folder. The official split has no development set: `utterances`
holds out the recordings of `DEV_SPEAKERS` speakers of the training set, chosen by a fixed
rule, so the dev split is speaker-disjoint and the same everywhere.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ..audio import audio_info
from ..data import Utterance
from ..download import download, extract

log = logging.getLogger("asr.corpora.an4")

URL = "http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz"  # 64 MB; as Kaldi's and ESPnet's recipes
# CMU publishes no checksum, and no toolkit pins one: the download is checked against the size the
# server announces; a recording missing from the unpacked corpus is an error naming it (`read_split`).
DEV_SPEAKERS = 9
_LINE = re.compile(r"^(?P<text>.*?)\s*\((?P<id>[^()\s]+)\)\s*$")
_MARKERS = {"<s>", "</s>", "<sil>"}


def fetch(data_dir: str | Path) -> Path:
    """Download (resumably) and unpack the corpus under data_dir unless it is already there;
    returns the corpus folder (the one holding etc/ and wav/)."""
    data_dir = Path(data_dir)
    try:
        return find(data_dir)
    except FileNotFoundError:
        pass
    archive = download(URL, data_dir / "an4_sphere.tar.gz")
    extract(archive, data_dir)
    return find(data_dir)


def find(data_dir: str | Path) -> Path:
    """The corpus folder under data_dir: data_dir itself or data_dir/an4."""
    data_dir = Path(data_dir)
    for candidate in (data_dir, data_dir / "an4"):
        if (candidate / "etc" / "an4_train.transcription").is_file() and (candidate / "wav").is_dir():
            return candidate
    raise FileNotFoundError(f"{data_dir}: no AN4 corpus (expected etc/an4_train.transcription and wav/, "
                            f"or an4/ holding them)")


def has_test_set(root: str | Path) -> bool:
    """Whether the official test set (transcripts, file list and recordings) is present."""
    root = Path(root)
    return all(p.exists() for p in (root / "etc" / "an4_test.transcription", root / "etc" / "an4_test.fileids",
                                    root / "wav" / "an4test_clstk"))


def read_transcripts(path: str | Path) -> dict[str, str]:
    """Utterance id -> words of a Sphinx transcription file (`<s> W W </s> (id)` lines;
    sentence and silence markers dropped). Errors name the file and line."""
    texts: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            match = _LINE.match(line)
            if not match:
                raise ValueError(f"{path}, line {number}: expected '<s> WORDS </s> (utterance-id)', got {line.rstrip()!r}")
            utterance = match.group("id")
            if utterance in texts:
                raise ValueError(f"{path}, line {number}: utterance {utterance!r} is listed twice")
            texts[utterance] = " ".join(w for w in match.group("text").upper().split() if w.lower() not in _MARKERS)
    return texts


def read_split(root: str | Path, split: str) -> list[Utterance]:
    """The utterances of the official `split` ("train" or "test"), in file-list order."""
    root = Path(root)
    texts = read_transcripts(root / "etc" / f"an4_{split}.transcription")
    fileids = root / "etc" / f"an4_{split}.fileids"
    utterances = []
    for number, line in enumerate(fileids.read_text(encoding="utf-8").splitlines(), 1):
        fileid = line.strip()
        if not fileid:
            continue
        parts = fileid.split("/")
        utterance = parts[-1]
        if len(parts) != 3 or utterance not in texts:
            raise ValueError(f"{fileids}, line {number}: {fileid!r} is not 'FOLDER/SPEAKER/ID' with a transcript")
        audio = root / "wav" / f"{fileid}.sph"
        rate, samples, _ = audio_info(audio)
        utterances.append(Utterance(utterance, str(audio.resolve()), samples / rate, texts[utterance], parts[1]))
    return utterances


def dev_speakers(speakers: list[str], count: int = DEV_SPEAKERS) -> list[str]:
    """`count` speakers spread evenly over the sorted speaker list (so both sexes, whose ids
    start with f and m, are represented), the same on every machine."""
    ordered = sorted(set(speakers))
    if count >= len(ordered):
        raise ValueError(f"cannot hold out {count} of {len(ordered)} speakers")
    step = len(ordered) / count
    return [ordered[int(step * i + step / 2)] for i in range(count)]


def utterances(root: str | Path) -> dict[str, list[Utterance]]:
    """{"train", "dev"} from the training set (dev: the `dev_speakers`), plus "test" when the
    official test set is present."""
    training = read_split(root, "train")
    held_out = set(dev_speakers([u.speaker for u in training]))
    splits = {"train": [u for u in training if u.speaker not in held_out],
              "dev": [u for u in training if u.speaker in held_out]}
    if has_test_set(root):
        splits["test"] = read_split(root, "test")
    else:
        log.warning("%s: the AN4 test set (etc/an4_test.*, wav/an4test_clstk) is absent: only the dev split "
                    "will be scored", root)
    return splits
