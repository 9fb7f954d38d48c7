"""digits: the offline demo. Spoken digit strings synthesized with eSpeak NG over many voices,
rates and pitches with added noise; a CTC transformer trained on them (with digital silence
added at some examples' ends, so that it also decodes recordings with silent stretches);
decoding through a digit-string grammar. Needs no download and no network.

python -m recipes.digits [--data-dir D] [--exp-dir E] [--stage N] [--stop-stage M]
Stages: 0 synthesize the corpus, 1 manifests + CMVN + tokens, 2 train, 3 decode the held-out
files, print the WER and one held-out transcript.
"""

from functools import partial

from tqdm import tqdm

from asr import recipe
from asr.corpora import digits
from asr.data import read_manifest
from asr.features import SilenceOptions, SpecAugmentOptions
from asr.lang import loop_grammar
from asr.model import EncoderConfig
from asr.train import TrainerConfig
from asr.training import TrainingConfig

SIZES = {"train": 3000, "test": 200}
WORDS = list(digits.WORDS)
DIGITS = recipe.WordRecipe(
    name="digits",
    words=WORDS,
    pronunciations={word: [[word]] for word in WORDS},  # each digit word is one token
    grammar=partial(loop_grammar, len(WORDS), min_words=1),  # a string of one or more digits
    training=TrainingConfig(
        model=EncoderConfig(input_dim=40, d_model=96, num_heads=4, num_layers=3, ff_dim=192, dropout=0.1,
                            conv_channels=32, attention_window=8),
        train=TrainerConfig(epochs=12, lr=2e-3, warmup_steps=100, schedule="cosine", log_every=50, weight_decay=0.0),
        augment=SpecAugmentOptions(freq_width=8, time_masks=4, time_width=0.05),
        silence=SilenceOptions(),  # the demo decodes long recordings whose pauses may be digital silence
        noise_floor=1.0,
        batch_seconds=60.0,
        cache=True,
    ),
)


def synthesize(data_dir, seed: int):
    with tqdm(total=sum(SIZES.values()), desc="synthesizing", unit="utt") as progress:
        return digits.synthesize(data_dir, SIZES, seed=seed, progress=progress)


def main():
    args = recipe.arguments(__doc__, data_dir="data/digits", exp_dir="exp/digits")
    if DIGITS.run(args, partial(synthesize, seed=args.seed), partial(synthesize, seed=args.seed)) is not None:
        first = read_manifest(f"{args.exp_dir}/test.jsonl")[0]
        hypotheses = dict(line.rstrip("\n").split(" ", 1) for line in open(f"{args.exp_dir}/hyp_test.txt"))
        print(f"held-out {first.audio} ({first.speaker}):\n  reference:  {first.text}\n"
              f"  recognized: {hypotheses[first.id]}")


if __name__ == "__main__":
    main()
