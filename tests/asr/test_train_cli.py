"""`asr train`: manifests in, a model directory out that `asr transcribe` loads; reruns resume."""

import json

import pytest
import torch

from asr import cli
from asr.data import Utterance, write_manifest
from asr.model_dir import load_model_dir
from asr.recipe import DEFAULT_LM_SCALE, DEFAULT_TRAINING, epochs_for, training_from_config
from asr.transcribe import Recognizer

from .conftest import RATE, noise_wav

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
    assert saved.decoding == {"lm_scale": DEFAULT_LM_SCALE} and decoder.options.lm_scale == DEFAULT_LM_SCALE
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
    assert cli.main(arguments[:-2] + ["--tokens", "words"]) == 2
    assert "tokens must be 'char' or 'bpe:N'" in capsys.readouterr().err


def test_a_config_overrides_single_options_of_the_default_training():
    training = training_from_config({"model": {"d_model": 96}, "train": {"epochs": 7}, "augment": {}})
    assert training.model == {**DEFAULT_TRAINING.model, "d_model": 96}
    assert training.train == {**DEFAULT_TRAINING.train, "epochs": 7}
    assert training.augment == {} and training.speeds == DEFAULT_TRAINING.speeds == (0.9, 1.1)
    assert training_from_config({}) == DEFAULT_TRAINING
    with pytest.raises(ValueError, match=r"unknown keys \['epochs'\]"):
        training_from_config({"epochs": 3})


def test_default_epochs_follow_the_amount_of_training_audio():
    assert epochs_for(1.84) == 33  # AN4's 37 minutes with two speed-perturbed copies
    assert epochs_for(300.0) == 10 and epochs_for(0.01) == 60  # LibriSpeech-100 x 3 speeds; yesno
