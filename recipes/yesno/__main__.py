"""yesno: a CTC transformer on 31 recordings of yes/no, decoded through a YES/NO word graph.

python -m recipes.yesno [--data-dir D] [--exp-dir E] [--stage N] [--stop-stage M]
Stages: 0 get the corpus, 1 manifests + CMVN + tokens, 2 train, 3 decode the 29 test files.
"""

import math
from pathlib import Path

import graphs
from asr import recipe
from asr.corpora import yesno
from asr.data import read_manifest
from asr.features import Fbank, GlobalCMVN, SpecAugment
from asr.model import EncoderConfig
from asr.tokenizer import PhoneTokenizer, Tokenizer
from asr.train import TrainerConfig

SAMPLE_RATE = 8000
WORDS = list(yesno.WORDS)
# Each word is one token: the model emits YES / NO (and the CTC blank).
PRONUNCIATIONS = {word: [[word]] for word in WORDS}
# 31 training files of one speaker: a small encoder with local attention (each frame sees +-4
# frames, 160 ms, per layer) and strong time masking, so it learns the words, not the files.
MODEL = dict(input_dim=23, d_model=64, num_heads=4, num_layers=2, ff_dim=128, dropout=0.1, conv_channels=16,
             attention_window=4)
TRAIN = dict(epochs=50, lr=2e-3, warmup_steps=50, schedule="cosine", log_every=20, weight_decay=0.0)
AUGMENT = dict(freq_width=4, time_masks=8, time_width=0.05)
BATCH_SECONDS = 30.0


def grammar() -> graphs.Graph:
    """Any sequence of YES/NO, each word equally likely."""
    return graphs.Graph.from_arrays([0, 0], [0, 0], [0, 1], weight=[math.log(0.5)] * 2, start=[0], accept=[0])


def main():
    args = recipe.arguments(__doc__.splitlines()[0], data_dir="data/yesno", exp_dir="exp/yesno")
    exp = args.exp_dir
    fbank = Fbank(num_mel_bins=MODEL["input_dim"], sample_rate=SAMPLE_RATE)
    if recipe.stage(args, 0, "get the corpus"):
        try:
            yesno.find(args.data_dir)
        except FileNotFoundError:
            yesno.fetch(args.data_dir)
    if recipe.stage(args, 1, "manifests, CMVN, tokens"):
        splits = yesno.utterances(yesno.find(args.data_dir))
        recipe.write_manifests(exp, splits)
        recipe.fit_cmvn(splits["train"], SAMPLE_RATE, fbank).save(f"{exp}/cmvn.json")
        PhoneTokenizer(PRONUNCIATIONS, phones=WORDS).save(f"{exp}/lang")
    train, test = read_manifest(f"{exp}/train.jsonl"), read_manifest(f"{exp}/test.jsonl")
    tokenizer = Tokenizer.load(f"{exp}/lang")
    featurizer = recipe.Featurizer(fbank, GlobalCMVN.load(f"{exp}/cmvn.json"))
    test_loader, _ = recipe.loader(test, SAMPLE_RATE, featurizer, tokenizer, 60.0, shuffle=False, seed=0)
    model_config = EncoderConfig(vocab_size=tokenizer.vocab_size, **MODEL)
    if recipe.stage(args, 2, "train"):
        train_loader, sampler = recipe.loader(train, SAMPLE_RATE, featurizer, tokenizer, BATCH_SECONDS, True, args.seed)
        config = TrainerConfig(exp_dir=exp, seed=args.seed, **TRAIN)
        model, seconds = recipe.train_ctc(model_config, config, train_loader, sampler, test_loader, tokenizer, args.device,
                                          augment=SpecAugment(**AUGMENT))
        graph = recipe.word_graph(tokenizer, WORDS, PRONUNCIATIONS, grammar())
        recipe.save_model_dir(f"{exp}/model", model, tokenizer, featurizer, SAMPLE_RATE, WORDS, graph)
        (Path(exp) / "train_seconds").write_text(f"{seconds}\n")
    if recipe.stage(args, 3, "decode and score"):
        model, graph = recipe.load_model_dir(f"{exp}/model")
        hypotheses = recipe.decode(model, test_loader, graph, WORDS, args.device)
        seconds = float((Path(exp) / "train_seconds").read_text())
        recipe.finish(exp, "yesno test (29 files)", {u.id: u.text for u in test}, hypotheses, seconds)


if __name__ == "__main__":
    main()
