"""Speech data: JSONL manifests, Kaldi data-dir import/export, duration-bucketed batches, a dataset.

- `manifest`: the `Utterance` record, its JSONL file (one object per line), speed-perturbed copies.
- `kaldi`: `import_kaldi_dir` / `export_kaldi_dir` (wav.scp, text, utt2spk, spk2utt, utt2dur).
- `sampler`: `BucketBatchSampler`, padding-aware batches with exact resume and DDP sharding.
- `dataset`: `SpeechDataset` (audio -> features, text -> tokens) and `collate`.

The dataset takes the audio loader, featurizer and tokenizer as callables, so this
package does not import `asr.audio`, `asr.features` or `asr.tokenizer`.
"""

from .dataset import Skipped, SpeechDataset, collate
from .kaldi import export_kaldi_dir, import_kaldi_dir
from .manifest import Utterance, read_manifest, speed_perturbed, write_manifest
from .sampler import BucketBatchSampler

__all__ = [
    "Utterance", "read_manifest", "write_manifest", "speed_perturbed",
    "import_kaldi_dir", "export_kaldi_dir",
    "BucketBatchSampler",
    "SpeechDataset", "Skipped", "collate",
]
