"""librispeech: 16 kHz read audiobooks (openslr 12), a conformer CTC on word pieces, decoded
through the HLG of the published pruned trigram over its 200,000 words, lattices rescored
with the published 4-gram (read once into a table of arrays, exp/rescore_lm.npz: 2.5 GB
loaded in seconds; the first read takes about 7 minutes and 4.4 GB at peak, measured on a
synthetic LM of its estimated size by benchmarks/rescore_scale.py; --no-rescore skips it).

python -m recipes.librispeech [--data-dir D] [--exp-dir E] [--train-sets train-clean-100[,...]]
    [--tokens bpe:500] [--no-rescore] [--stage N] [--stop-stage M]
Stages: 0 download the chosen training subsets, dev-clean/other, test-clean/other and the
lexicon and LMs of openslr 11 (resumable, checksums checked; skipped for what the data dir
holds), 1 manifests, 2 train (speed perturbation 0.9/1.1, SpecAugment; data-parallel under
torchrun) and build the graph, 3 decode and score dev and test clean/other (results.json).

Expected (published small CTC models, no LM): ESPnet2's CTC-only E-Branchformer on
train-clean-100 reaches 9.6 / 23.1 % WER greedy on test-clean / test-other; a conformer CTC of
this size is in that range, and the trigram graph and 4-gram rescoring take a few points off.
Hours: train-clean-100 is 100 h of audio, 300 h an epoch with speed perturbation: about a day
on one current GPU for the default epochs, weeks on CPUs. On a machine with several GPUs the
recipe runs one training process per GPU itself (torchrun; `--gpus N` for fewer).
"""

import argparse

from asr import recipe
from asr.corpora import librispeech
from asr.features import SpecAugmentOptions
from asr.model import EncoderConfig
from asr.train import TrainerConfig
from asr.training import RecognizerConfig

DEV, TEST = ("dev-clean", "dev-other"), ("test-clean", "test-other")
# ~26M parameters, as ESPnet's and icefall's small LibriSpeech-100 CTC models.
TRAIN_100H = RecognizerConfig(
    model=EncoderConfig(input_dim=80, architecture="conformer", d_model=256, num_heads=4, num_layers=16,
                        ff_dim=1024, conv_kernel=31, dropout=0.1, blank_bias=3.0),
    train=TrainerConfig(lr=2e-3, warmup_epochs=2, schedule="cosine", epochs=50, log_every=100, average_last=10,
                        keep_last=10,
                        checkpoint_every_steps=2000),
    augment=SpecAugmentOptions(freq_masks=2, freq_width=27, time_masks=10, time_width=0.05),
    speeds=(0.9, 1.1), batch_seconds=600.0, cache=False, tokens="bpe:500", lm_scale=None,
)
# 960 hours: a wider model, fewer epochs over ten times the audio.
TRAIN_960H = RecognizerConfig(
    model=EncoderConfig(input_dim=80, architecture="conformer", d_model=512, num_heads=8, num_layers=16,
                        ff_dim=2048, conv_kernel=31, dropout=0.1, blank_bias=3.0),
    train=TrainerConfig(lr=1e-3, warmup_epochs=1, schedule="cosine", epochs=20, log_every=100, average_last=5,
                        checkpoint_every_steps=2000),
    augment=SpecAugmentOptions(freq_masks=2, freq_width=27, time_masks=10, time_width=0.05),
    speeds=(0.9, 1.1), batch_seconds=1200.0, cache=False, tokens="bpe:500", lm_scale=None,
)


def options(parser):
    parser.add_argument("--train-sets", default="train-clean-100",
                        help="comma-separated training subsets (all three: the 960-hour config)")
    parser.add_argument("--rescore", action=argparse.BooleanOptionalAction, default=True,
                        help="rescore the lattices with the 4-gram (default; its first read takes minutes, then it is "
                        "loaded from exp/rescore_lm.npz)")


def main():
    args = recipe.arguments(__doc__, data_dir="data/librispeech", exp_dir="exp/librispeech", tokens="bpe:500",
                            more=options)
    train_sets = args.train_sets.split(",")
    full = {"train-clean-100", "train-clean-360", "train-other-500"} <= set(train_sets)
    corpus = recipe.CorpusRecipe(name="librispeech", training=TRAIN_960H if full else TRAIN_100H,
                                 test_location="test-clean/ and test-other/ under the data dir", narrowband=(),
                                 valid="dev-clean")
    subsets = [*train_sets, *DEV, *TEST]
    corpus.run(args, lambda data_dir: librispeech.fetch(data_dir, subsets, list(librispeech.RESOURCES)),
               lambda data_dir: librispeech.utterances(librispeech.find(data_dir, subsets), train_sets, DEV, TEST),
               lambda data_dir: data_dir / librispeech.RESOURCES["lexicon"],
               decoding_lm=lambda data_dir: data_dir / librispeech.RESOURCES["3-gram"],
               rescore_lm=(lambda data_dir: data_dir / librispeech.RESOURCES["4-gram"]) if args.rescore else None)


if __name__ == "__main__":
    main()
