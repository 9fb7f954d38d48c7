"""an4: CMU's AN4 census corpus (spelled names, digit strings, dates, commands; 948 training and
130 test recordings of 16 kHz close-talking speech), trained with CTC, decoded through the HLG
of the training words with a Kneser-Ney trigram of the training transcripts.

python -m recipes.an4 [--data-dir D] [--exp-dir E] [--stage N] [--stop-stage M] [--tokens phone|char|bpe:N]
Stages: 0 download an4_sphere.tar.gz (unless the data dir holds the corpus), 1 manifests (a
speaker-disjoint dev split of the training set, its 8 kHz copy dev_8k, and the official test set
when present), 2 train, 3 decode and score every set (results.json, hyp_*.txt, model/).
"""

from asr import recipe
from asr.corpora import an4
from asr.training import DEFAULT_TRAINING

AN4 = recipe.CorpusRecipe(
    name="an4",
    test_location="etc/an4_test.transcription, etc/an4_test.fileids and wav/an4test_clstk under the data dir",
    training=DEFAULT_TRAINING,  # what `asr train` does with no --config
)


def main():
    args = recipe.arguments(__doc__, data_dir="data/an4", exp_dir="exp/an4", tokens="phone")
    AN4.run(args, an4.fetch, lambda data_dir: an4.utterances(an4.find(data_dir)),
            lambda data_dir: an4.find(data_dir) / "etc" / "an4.dic")


if __name__ == "__main__":
    main()
