"""`asr transcribe` and asr.transcribe: inputs, batched decoding, output formats, bad files."""

import json

import numpy as np
import pytest
import soundfile
import torch

from asr import cli
from asr.data import Utterance, write_manifest
from asr.decoding import viterbi_words
from asr.model_dir import load_model_dir
from asr.transcribe import Recognizer, Transcript, find_inputs, format_transcript

from .conftest import RATE, WORDS, noise_wav


def test_find_inputs_expands_files_directories_scp_and_manifests(tmp_path):
    (tmp_path / "dir" / "sub").mkdir(parents=True)
    a = noise_wav(tmp_path / "dir" / "a.wav", 0.5, 0)
    b = noise_wav(tmp_path / "dir" / "sub" / "b.flac", 0.5, 1)
    (tmp_path / "dir" / "notes.txt").write_text("not audio")
    (tmp_path / "wav.scp").write_text(f"utt1 {a}\n\nutt2 {b}\n")
    write_manifest(tmp_path / "m.jsonl", [Utterance("m1", str(a), 0.5, "NO", "s")])
    found = list(find_inputs([str(a), str(tmp_path / "dir"), str(tmp_path / "wav.scp"), str(tmp_path / "m.jsonl")]))
    assert found == [("a", str(a)), ("a", str(a)), ("sub-b", str(b)), ("utt1", str(a)), ("utt2", str(b)),
                     ("m1", str(a))]
    with pytest.raises(ValueError, match="nowhere: no such file"):
        list(find_inputs([str(tmp_path / "nowhere")]))
    (tmp_path / "bad.scp").write_text("utt1 a.wav\nlonely\n")
    with pytest.raises(ValueError, match=r"bad.scp, line 2"):
        list(find_inputs([str(tmp_path / "bad.scp")]))


def test_transcripts_are_the_best_graph_path_whatever_the_batch(model_dir, tmp_path):
    saved = load_model_dir(model_dir)
    files = [(f"u{i}", str(noise_wav(tmp_path / f"u{i}.wav", 0.4 + 0.3 * i, i))) for i in range(5)]
    one_batch = list(Recognizer(saved).transcribe(files, batch_size=5))
    singles = list(Recognizer(saved).transcribe(files, batch_size=1))
    assert [t.words for t in one_batch] == [t.words for t in singles]
    assert any(t.words for t in one_batch)
    for transcript, (_, path) in zip(one_batch, files):
        waveform = torch.from_numpy(soundfile.read(path, dtype="float32")[0])
        features = saved.featurizer(waveform)[None]
        log_probs, lengths = saved.model(features, torch.tensor([features.shape[1]]))
        expected, _ = viterbi_words(log_probs.detach().double(), lengths, saved.graph.graph)
        assert transcript.words == [WORDS[w] for w in expected[0]]
        assert transcript.starts == sorted(transcript.starts)
        assert all(0 <= s <= e <= transcript.duration for s, e in zip(transcript.starts, transcript.ends))
        assert transcript.duration == pytest.approx(waveform.numel() / RATE)


def test_cli_reports_bad_files_decodes_the_rest_and_fails_at_the_end(model_dir, tmp_path, capsys):
    good = noise_wav(tmp_path / "good.wav", 1.0, 0)
    empty = tmp_path / "empty.wav"
    soundfile.write(str(empty), np.zeros(0, dtype=np.float32), RATE)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    status = cli.main(["transcribe", str(model_dir), str(tmp_path / "corrupt.wav"), str(good), str(empty)])
    out, err = capsys.readouterr()
    assert status == 1
    lines = out.splitlines()
    assert [line.split(" ")[0] for line in lines] == ["good", "empty"] and lines[1] == "empty"
    assert "corrupt.wav" in err and "2 of 3 files" in err and "real-time factor" in err


def test_cli_writes_every_format(model_dir, tmp_path, capsys):
    audio = [str(noise_wav(tmp_path / f"f{i}.wav", 1.0, i)) for i in range(2)]
    out_dir = tmp_path / "out"
    assert cli.main(["transcribe", str(model_dir), *audio, "-f", "txt,json,ctm,srt,vtt", "-o", str(out_dir)]) == 0
    texts = (out_dir / "transcripts.txt").read_text().splitlines()
    records = [json.loads(line) for line in (out_dir / "transcripts.json").read_text().splitlines()]
    assert [r["id"] for r in records] == ["f0", "f1"]
    assert [f"{r['id']} {r['text']}".rstrip() for r in records] == texts
    ctm = (out_dir / "transcripts.ctm").read_text().splitlines()
    assert len(ctm) == sum(len(r["words"]) for r in records)
    assert (out_dir / "f0.srt").exists() and (out_dir / "f1.vtt").read_text().startswith("WEBVTT")


def test_formats_of_a_known_transcript():
    t = Transcript("utt", "a.wav", ["YES", "NO"], [0.2, 3661.5], [0.4, 3661.75], 3662.0)
    assert format_transcript(t, "txt") == "utt YES NO\n"
    assert format_transcript(t, "ctm") == "utt 1 0.200 0.200 YES\nutt 1 3661.500 0.250 NO\n"
    # Two cues (a long pause between the words), each stretched to 0.8 s into the silence around
    # it, the last one no further than the end of the audio.
    assert format_transcript(t, "srt") == ("1\n00:00:00,200 --> 00:00:01,000\nYES\n\n"
                                           "2\n01:01:01,200 --> 01:01:02,000\nNO\n")
    assert format_transcript(t, "vtt").startswith("WEBVTT\n\n00:00:00.200 --> 00:00:01.000\nYES\n")
    record = json.loads(format_transcript(t, "json"))
    assert record["words"][1] == {"word": "NO", "start": 3661.5, "end": 3661.75}
    assert format_transcript(Transcript("e", "e.wav"), "txt") == "e\n"
    with pytest.raises(ValueError, match="unknown format 'doc'"):
        format_transcript(t, "doc")


def test_a_segment_searched_whole_is_shown_as_its_phrases():
    """A short file is searched as one segment; its pauses (`breaks`) split the JSON segments
    and the subtitle cues, and its n best stay the file's (they cover all its phrases)."""
    from asr.decoding import Hypothesis
    from asr.transcribe import Segment, _word_breaks

    words, starts, ends = ["YES", "NO", "YES"], [0.2, 0.6, 3.0], [0.5, 0.9, 3.3]
    alternatives = [("YES NO YES", -1.0), ("YES NO NO", -2.0)]
    t = Transcript("utt", "a.wav", words, starts, ends, 4.0, segments=[Segment(0, 3, alternatives, breaks=[2])])
    record = json.loads(format_transcript(t, "json"))
    assert [(s["text"], s["start"], s["end"]) for s in record["segments"]] == [("YES NO", 0.2, 0.9), ("YES", 3.0, 3.3)]
    assert "nbest" not in record["segments"][0] and record["nbest"][0] == {"text": "YES NO YES", "score": -1.0}
    assert [cue.split("\n")[2] for cue in format_transcript(t, "srt").strip().split("\n\n")] == ["YES NO", "YES"]
    # break frames -> the words that begin a phrase: the first word starting at or after each
    hypothesis = Hypothesis(words, [(5, 8), (15, 20), (75, 80)], [], -1.0)
    assert _word_breaks(hypothesis, [40]) == [2]
    assert _word_breaks(hypothesis, [2, 90]) == []  # before the first word, after the last
    assert _word_breaks(hypothesis, [10, 12, 60]) == [1, 2]


def test_model_dir_keeps_its_noise_floor_and_one_written_before_it_reads_without(model_dir):
    options = json.loads((model_dir / "features.json").read_text())
    (model_dir / "features.json").write_text(json.dumps({**options, "noise_floor": 1.0}))
    assert load_model_dir(model_dir).featurizer.fbank.noise_floor == 1.0
    del options["noise_floor"]  # a directory saved before the floor existed: its features as they were
    (model_dir / "features.json").write_text(json.dumps(options))
    assert load_model_dir(model_dir).featurizer.fbank.noise_floor == 0.0


def test_model_dir_with_mismatched_tokens_is_a_clear_error(model_dir):
    (model_dir / "tokens.txt").write_text("<blk> 0\nNO 1\n")
    with pytest.raises(ValueError, match="tokens.txt has 2 tokens but the model outputs 3"):
        load_model_dir(model_dir)
    (model_dir / "tokens.txt").write_text("<blk> 0\nYES 1\nNO 2\n")
    with pytest.raises(ValueError, match="graph/tokens.txt differs from the model's token set"):
        load_model_dir(model_dir)
    (model_dir / "graph" / "HLG.pt").unlink()
    with pytest.raises(ValueError, match="graph: not a graph directory .*HLG.pt"):
        load_model_dir(model_dir)


def test_beam_search_through_a_compiled_graph_matches_the_exact_search(model_dir, tmp_path, capsys):
    """--lexicon without an LM compiles the same word loop as the model directory's graph
    (each word weighted 1/2); its beam search (epsilon arcs from the disambiguation symbols) must
    find the exact search's words, and forced alignment gives the same word times."""
    files = [str(noise_wav(tmp_path / f"u{i}.wav", 0.5 + 0.4 * i, i)) for i in range(4)]
    (tmp_path / "lexicon.txt").write_text("NO NO\nYES YES\n")
    assert cli.main(["transcribe", str(model_dir), *files, "-f", "json"]) == 0
    exact = capsys.readouterr().out
    assert cli.main(["transcribe", str(model_dir), *files, "-f", "json", "--lexicon", str(tmp_path / "lexicon.txt"),
                     "--beam", "30"]) == 0
    assert capsys.readouterr().out == exact
    assert any(json.loads(line)["words"] for line in exact.splitlines())


def test_compile_graph_with_an_lm_and_decode_with_it(model_dir, tmp_path, capsys, caplog):
    (tmp_path / "text").write_text("YES NO\nYES YES NO\nNO NO\nMAYBE YES\n")
    (tmp_path / "lexicon.txt").write_text("NO NO\nYES YES\n")
    assert cli.main(["lm", str(tmp_path / "text"), "-o", str(tmp_path / "lm.arpa"), "--order", "2"]) == 0
    assert cli.main(["compile-graph", "--tokens", str(model_dir), "--lexicon", str(tmp_path / "lexicon.txt"),
                     "--lm", str(tmp_path / "lm.arpa"), "-o", str(tmp_path / "graph")]) == 0
    err = capsys.readouterr().err
    assert "LM words have no pronunciation (e.g. MAYBE)" in caplog.text and "HLG with" in err
    assert sorted(p.name for p in (tmp_path / "graph").iterdir()) == ["HLG.pt", "lexicon.txt", "lm.arpa",
                                                                       "tokens.txt", "words.txt"]
    audio = str(noise_wav(tmp_path / "a.wav", 1.5, 3))
    assert cli.main(["transcribe", str(model_dir), audio, "--graph", str(tmp_path / "graph")]) == 0
    words = capsys.readouterr().out.split()[1:]
    assert words and set(words) <= set(WORDS)
    # n-best lists from the word lattice; rescoring with another LM
    assert cli.main(["transcribe", str(model_dir), audio, "--graph", str(tmp_path / "graph"), "--nbest", "3",
                     "-f", "json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["text"] == " ".join(words) and 1 <= len(record["nbest"]) <= 3
    assert record["nbest"][0]["text"] == record["text"]
    scores = [h["score"] for h in record["nbest"]]
    assert scores == sorted(scores, reverse=True)
    (tmp_path / "text2").write_text("NO NO NO\nNO NO\nNO\n")
    assert cli.main(["lm", str(tmp_path / "text2"), "-o", str(tmp_path / "no.arpa"), "--order", "2"]) == 0
    assert cli.main(["transcribe", str(model_dir), audio, "--graph", str(tmp_path / "graph"), "--rescore-lm",
                     str(tmp_path / "no.arpa"), "--nbest", "2", "-f", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["nbest"]
    # a graph made for other tokens is refused with a clear message
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "tokens.txt").write_text("<blk> 0\nYES 1\nNO 2\n")
    assert cli.main(["compile-graph", "--tokens", str(tmp_path / "other"), "--lexicon", str(tmp_path / "lexicon.txt"),
                     "-o", str(tmp_path / "graph2")]) == 0
    assert cli.main(["transcribe", str(model_dir), audio, "--graph", str(tmp_path / "graph2")]) == 2
    assert "differs from the model's token set" in capsys.readouterr().err
    assert cli.main(["transcribe", str(model_dir), audio, "--lexicon", str(tmp_path / "lexicon.txt"), "--rescore-lm",
                     str(tmp_path / "no.arpa")]) == 2
    assert "rescoring needs the LM the graph was compiled with" in capsys.readouterr().err


def test_prefix_beam_needs_a_character_or_word_piece_model(model_dir, tmp_path, capsys):
    audio = str(noise_wav(tmp_path / "a.wav", 1.0, 0))
    assert cli.main(["transcribe", str(model_dir), audio, "--prefix-beam", "4"]) == 2
    assert "outputs phones" in capsys.readouterr().err


def test_greedy_output_is_the_best_token_of_every_frame_merged(model_dir, tmp_path, capsys):
    saved = load_model_dir(model_dir)
    path = noise_wav(tmp_path / "a.wav", 1.5, 3)
    (transcript,) = Recognizer(saved, saved.decoder(greedy=True)).transcribe([("a", str(path))])
    features = saved.featurizer(torch.from_numpy(soundfile.read(path, dtype="float32")[0]))[None]
    best = saved.model(features, torch.tensor([features.shape[1]]))[0][0].argmax(-1).tolist()
    merged = [saved.tokens[t] for i, t in enumerate(best) if t != 0 and (i == 0 or best[i - 1] != t)]
    assert transcript.words == merged and merged  # this model's "words" are its tokens (YES, NO)
    assert transcript.starts == sorted(transcript.starts) and len(transcript.ends) == len(merged)
    assert cli.main(["transcribe", str(model_dir), str(path), "--greedy"]) == 0
    assert capsys.readouterr().out == f"a {' '.join(merged)}\n"
    assert cli.main(["transcribe", str(model_dir), str(path), "--greedy", "--beam", "8"]) == 2
    assert "greedy decoding uses no search" in capsys.readouterr().err


def test_audio_below_the_model_rate_is_decoded_with_a_warning_naming_file_and_rates(model_dir, tmp_path, capsys):
    low = tmp_path / "low.wav"
    samples = np.random.default_rng(0).normal(0, 0.1, RATE // 2).astype(np.float32)
    soundfile.write(str(low), samples, RATE // 2)  # the model reads 8 kHz; this file is 4 kHz
    assert cli.main(["transcribe", str(model_dir), str(low)]) == 0
    err = capsys.readouterr().err
    assert f"asr transcribe: warning: {low}: recorded at 4000 Hz, below the model's 8000 Hz" in err
    assert "load_audio(" not in err  # the warning alone, no source line


def test_decoding_defaults_come_from_the_model_directory_and_flags_override_them(model_dir):
    (model_dir / "decoding.json").write_text('{"lm_scale": 0.25, "beam": 9}')
    saved = load_model_dir(model_dir)
    assert saved.decoding == {"lm_scale": 0.25, "beam": 9}
    parse = cli.parser().parse_args
    options = cli.beam_options(parse(["transcribe", str(model_dir), "x.wav", "--beam", "12"]), saved.decoding)
    assert options.beam == 12 and options.lm_scale == 0.25 and options.max_active == 2000
    assert cli.beam_options(parse(["transcribe", str(model_dir), "x.wav"]), saved.decoding) is None
    (model_dir / "decoding.json").write_text('{"lm_weight": 1}')
    with pytest.raises(ValueError, match="decoding.json: expected an object of numbers"):
        load_model_dir(model_dir)


def test_a_file_that_runs_out_of_memory_is_skipped_and_the_rest_decoded(model_dir, tmp_path, monkeypatch):
    saved = load_model_dir(model_dir)
    files = [(f"u{i}", str(noise_wav(tmp_path / f"u{i}.wav", seconds, i))) for i, seconds in enumerate([1, 6, 1, 1])]
    expected = [t.words for t in Recognizer(saved).transcribe(files, batch_size=4)]
    forward = saved.model.forward

    def short_only(features, lengths):  # as if a window of the 6-second file did not fit in memory
        if int(lengths.max()) > 300:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory")
        return forward(features, lengths)

    monkeypatch.setattr(saved.model, "forward", short_only)
    transcripts = list(Recognizer(saved).transcribe(files, batch_size=4))
    assert [t.id for t in transcripts] == ["u0", "u1", "u2", "u3"]
    assert "can't allocate memory" in transcripts[1].error
    assert [t.words for i, t in enumerate(transcripts) if i != 1] == [w for i, w in enumerate(expected) if i != 1]
    assert all(t.error is None for i, t in enumerate(transcripts) if i != 1)
