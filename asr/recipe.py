"""What every recipe does: parse the common options, run the stages (corpus, manifests,
training as `asr.training` does it, decoding and scoring as `asr transcribe` does it), and
write results.json plus a model directory.

A recipe module supplies only its corpus preparation, lexicon, grammar and training config:
a closed-vocabulary task is a `WordRecipe`, an open-vocabulary corpus a `CorpusRecipe`.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

import soundfile
import torch

import graphs
from graphs.io import atomic_open, write_atomic

from .arpa_table import ArpaTable
from .audio import LowSampleRateWarning, load_audio
from .data import Utterance, read_manifest, write_manifest
from .decoding import BeamOptions, Decoder
from .features import GlobalCMVN
from .lang import build_hlg
from .model_dir import Featurizer, ModelDir, load_model_dir, save_model_dir
from .scoring import score
from .tokenizer import PhoneTokenizer, Tokenizer
from .train import barrier, cleanup, init_distributed, rank_device
from .training import RecognizerConfig, TrainingConfig, fit_cmvn, train_recognizer
from .transcribe import Recognizer

log = logging.getLogger("asr.recipe")


def arguments(description: str, data_dir: str, exp_dir: str, tokens: str | None = None,
              more: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """The options every recipe takes; with `tokens` (its default) also --tokens, and whatever
    `more` adds. `--help` shows the first paragraph of `description` (a recipe's docstring)."""
    parser = argparse.ArgumentParser(description=" ".join(description.split("\n\n")[0].split()))
    if more is not None:
        more(parser)
    parser.add_argument("--data-dir", default=data_dir, help="corpus location (downloaded there if absent)")
    parser.add_argument("--exp-dir", default=exp_dir, help="where manifests, checkpoints and results go")
    parser.add_argument("--stage", type=int, default=0, help="first stage to run")
    parser.add_argument("--stop-stage", type=int, default=100, help="last stage to run")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cuda (the default where there is a GPU: every GPU of this machine, data-parallel "
                        "through torchrun; see --gpus), cuda:N (that GPU alone) or cpu")
    parser.add_argument("--gpus", type=int, help="with --device cuda, train on this many of the machine's GPUs "
                        "(default: all of them)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", help="JSON file of training settings that change the recipe's, as `asr train "
                        "--config` changes the defaults (e.g. {\"model\": {\"num_layers\": 6}})")
    parser.add_argument("--epochs", type=int, help="train this many epochs instead of the recipe's (a quick trial)")
    parser.add_argument("--loss", help="train with this loss instead of the recipe's: ctc, crctc, mmi, asg, "
                        "wordpiece or your own file.py:factory (see `asr train --help`)")
    if tokens is not None:
        parser.add_argument("--tokens", default=tokens, help=f"phone (the corpus lexicon), char or bpe:N (default {tokens})")
    args = parser.parse_args()
    gpus = args.gpus if args.gpus is not None else torch.cuda.device_count()
    command = data_parallel_command(sys.modules["__main__"].__spec__, sys.argv[1:], args.device, gpus, os.environ)
    if command is not None:  # this process becomes torchrun's launcher of one process per GPU
        print(f"running on {gpus} GPUs: {' '.join(command)}", file=sys.stderr, flush=True)
        os.execv(command[0], command)
    context = init_distributed()  # under torchrun: training is data-parallel, rank 0 runs the other stages
    atexit.register(cleanup)
    args.main, args.device = context.is_main, rank_device(args.device, context)
    logging.basicConfig(level=logging.INFO if args.main else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")
    Path(args.exp_dir).mkdir(parents=True, exist_ok=True)
    return args


def data_parallel_command(main_spec, argv: Sequence[str], device: str, gpus: int, environ) -> list[str] | None:
    """The torchrun command that reruns the recipe `main_spec` (its `__main__` module's spec)
    with `argv` as one process per GPU on this machine, or None when it runs as it is: under
    torchrun already, on the CPU or one named GPU (cuda:N), with fewer than 2 GPUs, or not
    started with `python -m`."""
    if "WORLD_SIZE" in environ or device != "cuda" or gpus < 2 or main_spec is None:
        return None
    module = main_spec.name.removesuffix(".__main__")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}", "-m", module,
            *argv]


def stage(args, number: int, name: str, every_rank: bool = False) -> bool:
    """Whether this process runs stage `number`: it is selected, and this is rank 0 or the stage
    runs on `every_rank` (training, which first waits for rank 0's earlier stages); logs it."""
    selected = args.stage <= number <= args.stop_stage
    if selected and every_rank:
        barrier()
    if selected and args.main:
        log.info("stage %d: %s", number, name)
    return selected and (every_rank or args.main)


def write_manifests(exp_dir: str | Path, splits: dict[str, list[Utterance]]) -> None:
    for name, utterances in splits.items():
        write_manifest(Path(exp_dir) / f"{name}.jsonl", utterances)


@dataclasses.dataclass
class WordRecipe:
    """A closed-vocabulary task: each word of `words` is spelled with the tokens in
    `pronunciations[word]` (lists of token sequences), decoding searches `grammar` (an
    acceptor over word indexes), and the encoder is trained as `training` says.

    `run` executes the stages 0 get the corpus, 1 manifests + CMVN + tokens, 2 train and save
    the model directory, 3 decode the test split as `asr transcribe` does (`evaluate`), score
    and write results.json.
    """

    name: str
    words: Sequence[str]
    pronunciations: dict[str, list[list[str]]]
    grammar: Callable[[], graphs.Graph]
    training: TrainingConfig

    def tokens(self) -> list[str]:
        """The token set in order of first use by the words' pronunciations."""
        return list(dict.fromkeys(t for word in self.words for pron in self.pronunciations[word] for t in pron))

    def run(self, args: argparse.Namespace, fetch: Callable[[Path], None],
            prepare: Callable[[Path], dict[str, list[Utterance]]]) -> dict | None:
        """fetch(data_dir) makes the corpus available (stage 0); prepare(data_dir) returns its
        {"train": [...], "test": [...]} utterances (stage 1). Returns the results of stage 3."""
        exp, data_dir = Path(args.exp_dir), Path(args.data_dir)
        fbank = self.training.fbank()
        if stage(args, 0, "get the corpus"):
            fetch(data_dir)
        if stage(args, 1, "manifests, CMVN, tokens"):
            splits = prepare(data_dir)
            write_manifests(exp, splits)
            fit_cmvn(splits["train"], self.training.sample_rate, fbank).save(exp / "cmvn.json")
            PhoneTokenizer(self.pronunciations, phones=self.tokens()).save(exp / "lang")
        if stage(args, 2, "train", every_rank=True):
            test = read_manifest(exp / "test.jsonl")
            tokenizer = Tokenizer.load(exp / "lang")
            featurizer = Featurizer(fbank, GlobalCMVN.load(exp / "cmvn.json"))
            training = self.training.with_options(args.epochs, args.loss, args.config)
            if args.main:
                training.save(exp)
            model, seconds, topology = training.run(read_manifest(exp / "train.jsonl"), test, featurizer, tokenizer, exp,
                                          args.seed, args.device)
        if stage(args, 2, "model directory"):
            lexicon = {word: self.pronunciations[word] for word in self.words}  # word i is the grammar's label i
            graph = build_hlg(tokenizer.tokens, lexicon, grammar=self.grammar(), optimize=False, topology=topology)
            save_model_dir(exp / "model", model, tokenizer, featurizer, graph)
            write_atomic(exp / "train_seconds", f"{seconds}\n")
        if stage(args, 3, "decode and score"):
            test = read_manifest(exp / "test.jsonl")
            results = evaluate(load_model_dir(exp / "model"), "test", test, args.device, exp)
            summary = {"test_set": f"{self.name} test ({len(test)} files)", **results,
                       "train_seconds": round(float((exp / "train_seconds").read_text()), 1)}
            write_atomic(exp / "results.json", json.dumps(summary, indent=2) + "\n")
            return summary
        return None


NARROWBAND_RATE = 8000  # telephone bandwidth: the narrowband copies of evaluation sets


def narrowband_copies(utterances: Sequence[Utterance], folder: str | Path, rate: int = NARROWBAND_RATE
                      ) -> list[Utterance]:
    """The utterances resampled to `rate` Hz and written as 16-bit FLAC files in `folder`: the
    same speech as an 8 kHz recording of it, which the model reads back up-sampled."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for u in utterances:
        path = folder / f"{u.id}.flac"
        if not path.is_file():
            with atomic_open(path, "wb") as f:
                soundfile.write(f, load_audio(u.audio, rate).numpy(), rate, format="FLAC", subtype="PCM_16")
        copies.append(dataclasses.replace(u, audio=str(path.resolve())))
    return copies


def evaluate(saved: ModelDir, name: str, utterances: Sequence[Utterance], device: str, exp_dir: str | Path,
             decoder: Decoder | None = None) -> dict:
    """WER/CER of `saved` on `utterances` through its graph (the search `asr transcribe MODEL`
    runs, with the directory's decoding settings, or `decoder`) and greedy (the best token of every frame:
    WER/CER for character and word-piece models, the phone error rate against the first
    pronunciations for phone models); prints the WER line of set `name` and writes the
    Kaldi-format hypotheses to exp_dir/hyp_<name>.txt and exp_dir/hyp_<name>_greedy.txt."""
    references = {u.id: u.text for u in utterances}
    inputs = [(u.id, u.audio) for u in utterances]
    audio_seconds = sum(u.duration for u in utterances)
    tokenizer = saved.tokenizer
    with warnings.catch_warnings():  # narrowband copies are read below the model's rate on purpose
        warnings.simplefilter("ignore", LowSampleRateWarning)
        start = time.perf_counter()
        graph = Recognizer(saved, decoder, device=device).texts(inputs)
        rtf = (time.perf_counter() - start) / audio_seconds
        greedy = Recognizer(saved, saved.decoder(greedy=True), device).texts(inputs)
    for suffix, hypotheses in (("", graph), ("_greedy", greedy)):
        write_atomic(Path(exp_dir) / f"hyp_{name}{suffix}.txt",
                     "".join(f"{u} {hypotheses.get(u, '')}".rstrip() + "\n" for u in references))
    result = score(references, graph)
    summary = {"files": len(utterances), "num_words": result.words.reference_units, "wer": result.words.error_rate,
               "cer": result.chars.error_rate, "decode_rtf": round(rtf, 4)}
    if tokenizer.kind == "phone":
        phones = {u: tokenizer.decode(tokenizer.encode(text)) for u, text in references.items()}
        summary["greedy_per"] = score(phones, greedy).words.error_rate
    else:
        greedy_result = score(references, greedy)
        summary.update(greedy_wer=greedy_result.words.error_rate, greedy_cer=greedy_result.chars.error_rate)
    print(result.words.kaldi_line(f"WER {name}"))
    log.info("decoded %d files, %.1f s of audio, at real-time factor %.4f (features, encoder and search)",
             len(utterances), audio_seconds, rtf)
    return summary


@dataclasses.dataclass
class CorpusRecipe:
    """An open-vocabulary corpus: words spelled by the tokenizer (--tokens: "phone" through the
    corpus lexicon, "char" or "bpe:N"), decoded through the HLG of the training words with a
    Kneser-Ney LM of the training transcripts, the encoder trained as `training` says.

    `run` executes the stages 0 get the corpus, 1 manifests (each split, and an 8 kHz copy
    `<split>_8k` of each of the `narrowband` splits), 2 train and write the model directory
    (`train_recognizer`, as `asr train` does), 3 decode every set but train (graph search as
    `asr transcribe` runs it, and greedy), print each WER and write results.json.
    `test_location` says where the official test set would be, for the message printed when
    it is absent.
    """

    name: str
    training: RecognizerConfig
    test_location: str
    narrowband: Sequence[str] = ("dev",)
    valid: str = "dev"

    def run(self, args: argparse.Namespace, fetch: Callable[[Path], object],
            prepare: Callable[[Path], dict[str, list[Utterance]]], lexicon: Callable[[Path], Path],
            decoding_lm: Callable[[Path], Path] | None = None,
            rescore_lm: Callable[[Path], Path] | None = None) -> dict | None:
        """fetch(data_dir) makes the corpus available (stage 0); prepare(data_dir) returns its
        {"train", `valid` (the validation split), and test splits when present} utterances
        (stage 1); lexicon(data_dir) is the pronunciation dictionary for phone tokens.
        decoding_lm(data_dir), when given, is the ARPA LM whose words and probabilities make
        the graph (instead of a Kneser-Ney model of the training transcripts), and
        rescore_lm(data_dir) one that rescores the lattices of stage 3. Returns the results of
        stage 3."""
        exp, data_dir = Path(args.exp_dir), Path(args.data_dir)
        if stage(args, 0, "get the corpus"):
            fetch(data_dir)
        if stage(args, 1, "manifests"):
            splits = prepare(data_dir)
            for name in self.narrowband:
                splits[f"{name}_8k"] = narrowband_copies(splits[name], exp / "audio" / f"{name}_8k")
            for stale in set(exp.glob("*.jsonl")) - {exp / f"{name}.jsonl" for name in splits}:
                stale.unlink()  # e.g. a test manifest from a data dir that had the test set
            write_manifests(exp, splits)
        if stage(args, 2, "train", every_rank=True):
            config = dataclasses.replace(self.training.with_options(args.epochs, args.loss, args.config),
                                         tokens=args.tokens)
            train_recognizer(read_manifest(exp / "train.jsonl"), read_manifest(exp / f"{self.valid}.jsonl"), exp,
                             config, lexicon(data_dir) if args.tokens == "phone" else None, args.device, args.seed,
                             decoding_lm(data_dir) if decoding_lm else None)
        if stage(args, 3, "decode and score"):
            rescoring = ArpaTable.cached(rescore_lm(data_dir), exp / "rescore_lm.npz") if rescore_lm else None
            return self._score(exp, args, rescoring)
        return None

    def _score(self, exp: Path, args, rescore: ArpaTable | None) -> dict:
        saved = load_model_dir(exp / "model")
        decoder = None
        if rescore is not None:  # the directory's own search, its lattices rescored
            decoder = saved.decoder(beam=BeamOptions(**saved.decoding, rescore_lm=rescore), device=args.device)
        sets = sorted(path.stem for path in exp.glob("*.jsonl") if path.stem != "train")
        results = {name: evaluate(saved, name, read_manifest(exp / f"{name}.jsonl"), args.device, exp, decoder)
                   for name in sets}
        summary = {"recipe": self.name, "tokens": saved.tokenizer.kind, "seed": args.seed,
                   "parameters": saved.model.num_parameters(), "encoder": saved.model.config.architecture,
                   "train_seconds": round(float((exp / "train_seconds").read_text()), 1),
                   "test_scored": "test" in results, "sets": results}
        write_atomic(exp / "results.json", json.dumps(summary, indent=2) + "\n")
        if "test" not in results:
            print(f"{self.name}: the official test set is absent ({self.test_location}): scored "
                  f"{', '.join(sets)} only")
        return summary
