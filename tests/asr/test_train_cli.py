"""`asr train`: manifests in, a model directory out that `asr transcribe` loads; reruns resume."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from asr import cli
from asr.config import to_dict
from asr.data import Utterance, write_manifest
from asr.decoding import BeamOptions, WfstDecoder
from asr.features import SilenceOptions, SpecAugmentOptions
from asr.model_dir import load_model_dir
from asr.training import DEFAULT_TRAINING, RecognizerConfig, best_lm_scale, epochs_for, training_from_config
from asr.transcribe import Recognizer

from .conftest import RATE, noise_wav

ROOT = Path(__file__).resolve().parents[2]

CONFIG = {"model": {"input_dim": 23, "d_model": 32, "num_heads": 2, "num_layers": 1, "ff_dim": 64},
          "train": {"epochs": 2, "warmup_steps": 2, "log_every": 1}, "sample_rate": RATE, "batch_seconds": 4,
          "speeds": [1.1], "noise": {"count": 1, "level": [-1, 1]}, "augment": {"freq_width": 4}}


def test_train_writes_a_model_directory_with_an_lm_graph_and_resumes(tmp_path, capsys):
    texts = ["YES NO", "NO NO YES", "YES", "NO YES YES", "NO", "YES YES"]
    utterances = [Utterance(f"u{i}", str(noise_wav(tmp_path / f"u{i}.wav", 1.0, i)), 1.0, text, "s")
                  for i, text in enumerate(texts)]
    write_manifest(tmp_path / "train.jsonl", utterances[:4])
    write_manifest(tmp_path / "valid.jsonl", utterances[4:])
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    arguments = ["train", "--train", str(tmp_path / "train.jsonl"), "--valid", str(tmp_path / "valid.jsonl"),
                 "--exp-dir", str(tmp_path / "exp"), "--config", str(tmp_path / "config.json"), "--lm-order", "2"]
    assert cli.main(arguments) == 0
    saved = load_model_dir(tmp_path / "exp" / "model")
    assert saved.graph.words == ["NO", "YES"] and saved.tokens[:2] == ["<blk>", "|"]
    assert (tmp_path / "exp" / "lm.arpa").read_text().startswith("\\data\\")
    assert saved.graph.lm is not None  # the graph keeps its LM, so its lattices can be rescored
    assert (saved.graph.graph.ilabel == -1).any()  # back-off and word-end epsilon arcs, so beam search
    decoder = Recognizer(saved).decoder
    assert saved.decoding["lm_scale"] in DEFAULT_TRAINING.lm_scales  # chosen on the validation set
    assert decoder.options.lm_scale == saved.decoding["lm_scale"]
    weights = {k: v.clone() for k, v in saved.model.state_dict().items()}
    assert cli.main(arguments) == 0  # everything is checkpointed: the rerun resumes after the last epoch
    again = load_model_dir(tmp_path / "exp" / "model").model.state_dict()
    assert all(torch.equal(weights[k], again[k]) for k in weights)
    capsys.readouterr()
    assert cli.main(["transcribe", str(tmp_path / "exp" / "model"), str(tmp_path / "u0.wav")]) == 0
    assert set(capsys.readouterr().out.split()[1:]) <= {"YES", "NO"}
    # the model directory's graph keeps the LM `asr train` estimated: its lattices can be rescored
    assert cli.main(["transcribe", str(tmp_path / "exp" / "model"), str(tmp_path / "u0.wav"), "--nbest", "3",
                     "--rescore-lm", str(tmp_path / "exp" / "lm.arpa"), "-f", "json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert 1 <= len(record["nbest"]) <= 3 and record["nbest"][0]["text"] == record["text"]
    # lexicon-free: CTC prefix beam search over the characters, word times by forced alignment
    assert cli.main(["transcribe", str(tmp_path / "exp" / "model"), str(tmp_path / "u0.wav"), "--prefix-beam", "4",
                     "-f", "json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert set("".join(record["text"].split())) <= set("YESNO")
    assert len(record["words"]) == len(record["text"].split())
    # hotwords: an empty list changes nothing; a phrase the tokens cannot spell is named
    prefix = ["transcribe", str(tmp_path / "exp" / "model"), str(tmp_path / "u0.wav"), "--prefix-beam", "4", "-f",
              "json"]
    (tmp_path / "none.txt").write_text("\n")
    assert cli.main([*prefix, "--hotwords", str(tmp_path / "none.txt")]) == 0
    assert json.loads(capsys.readouterr().out) == record
    (tmp_path / "hot.txt").write_text("YES NO :2.0\nQUIZ\n")
    assert cli.main([*prefix, "--hotwords", str(tmp_path / "hot.txt")]) == 2
    assert "hotword 'QUIZ' cannot be spelled" in capsys.readouterr().err
    # through the graph: phrases of its words; a word it lacks is named
    assert cli.main([*prefix[:3], "-f", "json", "--beam", "16"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert cli.main([*prefix[:3], "-f", "json", "--beam", "16", "--hotwords", str(tmp_path / "none.txt")]) == 0
    assert json.loads(capsys.readouterr().out) == plain
    assert cli.main([*prefix[:3], "--hotwords", str(tmp_path / "hot.txt")]) == 2
    assert "QUIZ not in the graph's vocabulary" in capsys.readouterr().err
    # a word the graph lacks but the tokens spell joins the graph, at the LM's <unk> probability
    (tmp_path / "oov.txt").write_text("SON :3.0\n")
    assert cli.main([*prefix[:3], "--hotwords", str(tmp_path / "oov.txt")]) == 0
    graph = saved.decoder(hotwords=[("SON", 3.0)]).graph
    assert graph.words == ["NO", "YES", "SON"] and graph.lm.probs[("SON",)][0] == saved.graph.lm.probs[("<unk>",)][0]
    ids = [graph.tokens.index(t) for t in ("S", "O", "N")]
    log_probs = torch.full((1, 7, len(graph.tokens)), -10.0)
    log_probs[0, torch.arange(7), [0, ids[0], 0, ids[1], ids[1], ids[2], 0]] = 0.0  # S O N, blanks between
    assert WfstDecoder(graph.graph)(log_probs.log_softmax(-1), [7]).words == [[graph.words.index("SON")]]
    assert cli.main(arguments[:-2] + ["--tokens", "words"]) == 2
    assert "tokens must be 'char', 'phone' or 'bpe:N'" in capsys.readouterr().err


def test_a_config_overrides_single_options_of_the_default_training():
    training = training_from_config({"model": {"d_model": 96}, "train": {"epochs": 7}, "augment": None})
    assert training.model == dataclasses.replace(DEFAULT_TRAINING.model, d_model=96)
    assert training.train == dataclasses.replace(DEFAULT_TRAINING.train, epochs=7)
    assert training.augment is None and training.speeds == DEFAULT_TRAINING.speeds == (0.9, 1.1)
    assert training_from_config({"augment": {"p": 0.5}}).augment == dataclasses.replace(DEFAULT_TRAINING.augment, p=0.5)
    assert training_from_config({}) == DEFAULT_TRAINING
    # the whole tree goes to JSON and back unchanged
    assert training_from_config(json.loads(json.dumps(to_dict(training)))) == training
    long = training_from_config(json.loads((ROOT / "examples" / "long_recordings.json").read_text()))
    assert long.silence == SilenceOptions(p=0.5, max_seconds=0.5) and long.noise_floor == 1.0
    assert long.fbank().noise_floor == 1.0 and DEFAULT_TRAINING.silence is None


@pytest.mark.parametrize("config, message", [
    ({"epochs": 3}, r"config: unknown key epochs \(known: augment, band_limit_p"),
    ({"train": {"epoch": 3}}, r"config.train: unknown key epoch \(known: accumulate"),
    ({"model": {"architecture": "lstm"}}, r"config.model: architecture must be one of"),
    ({"augment": {"p": 2}}, r"config.augment: time_width and p must lie in \[0, 1\]"),
    ({"loss": "mmi2"}, r"config: unknown loss 'mmi2'"),
    ({"speeds": [0.9, -1]}, r"config: speeds must be positive"),
    ({"tokens": "words"}, r"config: tokens must be 'char', 'phone' or 'bpe:N'"),
    ({"noise": 3}, r"config.noise: expected an object of NoiseOptions settings"),
    ({"silence": {"p": 1.5}}, r"config.silence: silence padding needs p in \[0, 1\]"),
])
def test_a_bad_config_is_refused_before_anything_runs_with_the_key_named(config, message):
    with pytest.raises(ValueError, match=message):
        training_from_config(config)


def test_asr_train_checks_the_config_before_reading_data_and_writes_it_whole(tmp_path, capsys):
    (tmp_path / "config.json").write_text('{"train": {"epohcs": 3}}')
    arguments = ["train", "--train", str(tmp_path / "missing.jsonl"), "--valid", str(tmp_path / "missing.jsonl"),
                 "--exp-dir", str(tmp_path / "exp"), "--config", str(tmp_path / "config.json")]
    assert cli.main(arguments) == 2
    assert "config.json.train: unknown key epohcs" in capsys.readouterr().err and not (tmp_path / "exp").exists()
    config = dataclasses.replace(DEFAULT_TRAINING, augment=SpecAugmentOptions(freq_width=4))
    config.save(tmp_path / "exp")
    saved = json.loads((tmp_path / "exp" / "config.json").read_text())
    assert saved["augment"]["freq_width"] == 4 and saved["tokens"] == "char" and saved["train"]["epochs"] is None
    assert training_from_config(saved) == config and isinstance(config, RecognizerConfig)


def test_default_epochs_follow_the_amount_of_training_audio():
    assert epochs_for(1.84) == 33  # AN4's 37 minutes with two speed-perturbed copies
    assert epochs_for(300.0) == 10 and epochs_for(0.01) == 60  # LibriSpeech-100 x 3 speeds; yesno


def test_the_lm_scale_chosen_is_the_one_with_the_fewest_errors_on_the_validation_set(model_dir, tmp_path):
    """References made by decoding at one scale: that scale makes no errors and must be chosen
    (the scale weighs the grammar's 1/2 per word: larger scales drop more words)."""
    saved = load_model_dir(model_dir)
    files = [(f"u{i}", str(noise_wav(tmp_path / f"u{i}.wav", 1.0 + 0.3 * i, i))) for i in range(6)]
    at = {scale: Recognizer(saved, saved.decoder(beam=BeamOptions(lm_scale=scale))).texts(files)
          for scale in (0.0, 12.0, 20.0)}
    assert len({tuple(texts.values()) for texts in at.values()}) == 3  # the scales decode differently
    for scale, texts in at.items():
        valid = [Utterance(u, path, 1.0, texts[u], "s") for u, path in files]
        assert best_lm_scale(saved, valid, (20.0, 0.0, 12.0)) == scale


@pytest.mark.parametrize("loss", ["examples/custom_graph_loss.py:factory", "mmi", "asg", "wordpiece"])
def test_asr_train_with_another_loss_learns_and_its_model_decodes(loss, tmp_path, capsys, caplog):
    """`asr train --loss`: a user's loss file (no change to the package) or a built-in graph loss
    trains (its training loss falls) and `asr transcribe` decodes the model directory; an ASG
    model's directory decodes through ASG's topology with the transitions it learned; the
    word-piece loss trains a model with sentencepiece tokens."""
    import logging
    import re
    from pathlib import Path

    texts = ["YES NO", "NO NO YES", "YES", "NO YES YES", "NO", "YES YES"]
    utterances = [Utterance(f"u{i}", str(noise_wav(tmp_path / f"u{i}.wav", 1.0, i)), 1.0, text, "s")
                  for i, text in enumerate(texts)]
    write_manifest(tmp_path / "train.jsonl", utterances[:4])
    write_manifest(tmp_path / "valid.jsonl", utterances[4:])
    config = {**CONFIG, "train": {"epochs": 6, "warmup_steps": 2, "log_every": 1, "lr": 3e-3}, "speeds": [],
              "noise": None, "augment": None}
    (tmp_path / "config.json").write_text(json.dumps(config))
    if loss.endswith(":factory"):
        loss = str(Path(__file__).resolve().parents[2] / loss)
    caplog.set_level(logging.INFO, logger="asr.train")
    assert cli.main(["train", "--train", str(tmp_path / "train.jsonl"), "--valid", str(tmp_path / "valid.jsonl"),
                     "--exp-dir", str(tmp_path / "exp"), "--config", str(tmp_path / "config.json"),
                     "--loss", loss, *(["--tokens", "bpe:8"] if loss == "wordpiece" else [])]) == 0
    losses = [float(m.group(1)) for m in (re.search(r"step \d+: loss ([\d.]+)", r.getMessage()) for r in caplog.records)
              if m]
    assert len(losses) >= 6 and sum(losses[-3:]) < sum(losses[:3]), losses
    assert json.loads((tmp_path / "exp" / "config.json").read_text())["loss"] == loss
    capsys.readouterr()
    assert cli.main(["transcribe", str(tmp_path / "exp" / "model"), str(tmp_path / "u0.wav")]) == 0
    assert set(capsys.readouterr().out.split()[1:]) <= {"YES", "NO"}
    topology = load_model_dir(tmp_path / "exp" / "model").graph.topology
    assert topology.name == ("asg" if loss == "asg" else "ctc")
    if loss == "asg":  # the transitions learned are the last checkpoint's, and they moved
        learned = torch.load(tmp_path / "exp" / "epoch-6.pt", weights_only=False)["loss_fn"]["transitions"]
        assert torch.allclose(topology.transitions, learned) and learned.abs().max() > 1e-3
        assert cli.main(["transcribe", str(tmp_path / "exp" / "model"), str(tmp_path / "u0.wav"), "--greedy"]) == 0
        assert set("".join(capsys.readouterr().out.split()[1:])) <= set("YESNO")  # any spelling, no graph
        assert cli.main(["transcribe", str(tmp_path / "exp" / "model"), str(tmp_path / "u0.wav"),
                         "--prefix-beam", "4"]) == 2
        assert "prefix beam search reads CTC frames" in capsys.readouterr().err


def test_a_bad_loss_is_named():
    from asr.losses import make_loss

    with pytest.raises(ValueError, match=r"loss 'nowhere.py:f': cannot import nowhere.py"):
        training_from_config({"loss": "nowhere.py:f"})
    with pytest.raises(ValueError, match=r"has no function 'nothing'"):
        training_from_config({"loss": "asr.losses:nothing"})
    with pytest.raises(ValueError, match="made from the tokenizer"):
        make_loss("mmi")
