"""The LibriSpeech recipe end to end on a tiny corpus in LibriSpeech's layout made on the fly
(eSpeak NG speech as FLAC, chapter transcripts, a lexicon and gzipped ARPA LMs under the
published names): every stage runs, the graph holds the LM's words, every set is scored."""

import gzip
import json

from asr.lm import estimate_kneser_ney, write_arpa
from asr.model import TransformerEncoder
from recipes.librispeech.__main__ import TRAIN_100H, TRAIN_960H
from tests.asr.test_librispeech_corpus import make_corpus


def test_librispeech_recipe_runs_every_stage_on_a_tiny_corpus(run_recipe, tmp_path):
    data = tmp_path / "data"
    written = make_corpus(data, ["train-clean-100", "dev-clean", "dev-other", "test-clean", "test-other"],
                          chapters=2, per_chapter=3)
    texts = [text.split() for subset in written.values() for text, _, _ in subset.values()]
    for order, name in ((3, "3-gram.pruned.1e-7.arpa.gz"), (4, "4-gram.arpa.gz")):
        write_arpa(estimate_kneser_ney(texts + [["ZERO", "TEN"]], order), tmp_path / "lm.arpa")
        with gzip.open(data / name, "wt", encoding="utf-8") as f:
            f.write((tmp_path / "lm.arpa").read_text())
    words = sorted({w for text in texts for w in text} | {"ZERO", "TEN"})
    (data / "librispeech-lexicon.txt").write_text("".join(f"{w}\t{' '.join(w)}\n" for w in words))

    # The recipe's model, a few steps: too slow for CI. A small one through --config.
    tiny = {"model": {"d_model": 32, "num_heads": 2, "num_layers": 1, "ff_dim": 64, "conv_kernel": 7},
            "train": {"average_last": 1, "keep_last": 1, "warmup_epochs": 0}, "lm_scale": 0.5}
    (tmp_path / "tiny.json").write_text(json.dumps(tiny))
    results, stdout, exp = run_recipe("librispeech", data, "--tokens", "bpe:30", "--epochs", "2",
                                      "--config", str(tmp_path / "tiny.json"))
    assert sorted(results["sets"]) == ["dev-clean", "dev-other", "test-clean", "test-other"]
    assert results["tokens"] == "bpe" and results["parameters"] < 100_000
    graph_words = (exp / "model" / "graph" / "words.txt").read_text().split()
    assert {"ZERO", "TEN"} <= set(graph_words)  # the LM's words, not only the training transcripts'
    assert all((exp / f"hyp_{name}.txt").exists() for name in results["sets"])
    assert (exp / "rescore_lm.npz").is_file()  # the 4-gram rescored the lattices (the default), read once
    assert "WER test-clean" in stdout


def test_librispeech_configs_have_the_sizes_of_published_small_and_large_ctc_models():
    small = TransformerEncoder(TRAIN_100H.model.with_vocab(501)).num_parameters()
    large = TransformerEncoder(TRAIN_960H.model.with_vocab(501)).num_parameters()
    assert 25e6 <= small <= 30e6 and large > 3 * small, (small, large)


def test_a_recipe_on_a_machine_with_several_gpus_reruns_itself_under_torchrun():
    import importlib.util
    import sys

    from asr.recipe import data_parallel_command

    spec = importlib.util.find_spec("recipes.librispeech.__main__")
    assert data_parallel_command(spec, ["--epochs", "2"], "cuda", 4, {}) == [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4", "-m", "recipes.librispeech",
        "--epochs", "2"]
    assert data_parallel_command(spec, [], "cuda", 4, {"WORLD_SIZE": "4"}) is None  # already a torchrun worker
    assert data_parallel_command(spec, [], "cuda:1", 4, {}) is None  # one GPU named
    assert data_parallel_command(spec, [], "cpu", 4, {}) is None
    assert data_parallel_command(spec, [], "cuda", 1, {}) is None
    assert data_parallel_command(None, [], "cuda", 4, {}) is None  # not started with python -m
