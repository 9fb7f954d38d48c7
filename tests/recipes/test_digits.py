"""The offline demo (the README's main command) end to end: synthesize, train, decode, score."""

import dataclasses
import json
import re

from asr import cli


def test_digits_demo_reaches_its_word_error_rate_offline(digits_demo, tmp_path, capsys):
    results, stdout, exp = digits_demo
    assert results["num_words"] > 500 and results["test_set"] == "digits test (200 files)" and results["decode_rtf"] > 0
    assert results["wer"] < 0.02, stdout[-2000:]
    shown = re.search(r"reference: +(.*)\n +recognized: +(.*)", stdout)
    assert shown, stdout[-2000:]
    assert (exp / "model" / "graph" / "HLG.pt").exists() and (exp / "model" / "tokens.txt").exists()
    # The recipe's WER is the command line's: `asr transcribe` on the same files, then `asr score`.
    references = [json.loads(line) for line in (exp / "test.jsonl").read_text().splitlines()]
    (tmp_path / "ref.txt").write_text("".join(f"{r['id']} {r['text']}\n" for r in references))
    assert cli.main(["transcribe", str(exp / "model"), str(exp / "test.jsonl"), "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "transcripts.txt").read_text() == (exp / "hyp_test.txt").read_text()
    capsys.readouterr()
    assert cli.main(["score", str(tmp_path / "ref.txt"), str(tmp_path / "out" / "transcripts.txt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["wer"] == results["wer"]


def test_digits_long_recording_decodes_as_its_files_one_by_one(digits_demo, tmp_path):
    """Held-out files in one recording with 0.3-1.5 s pauses: the same words as decoding them one
    by one, word starts within 2 encoder frames of theirs plus the file's offset, encoder window
    borders inside words change nothing, and the subtitles parse and keep within their limits."""
    import srt

    from asr.data import read_manifest
    from asr.longform import ChunkOptions
    from asr.model_dir import load_model_dir
    from asr.subtitles import make_cues
    from asr.transcribe import Recognizer
    from benchmarks.longform import build_long_file, compare
    from tests.asr.test_subtitles import check_cues

    _, _, exp = digits_demo
    saved = load_model_dir(exp / "model")
    utterances = read_manifest(exp / "test.jsonl")
    placed = build_long_file(utterances, 2.0, saved.sample_rate, tmp_path / "long.wav", seed=0)
    singles = {t.id: t for t in Recognizer(saved).transcribe([(u.id, u.audio) for u in utterances], batch_size=16)}
    (long,) = Recognizer(saved).transcribe([("long", str(tmp_path / "long.wav"))])
    result = compare(placed, {u.id: u.text for u in utterances}, singles, dataclasses.asdict(long),
                     saved.frame_seconds)
    # At most two errors more than one by one: a word is 0.6 points of these ~170, and the model
    # trained on another CPU (float summation order) has made 1 or 2 more; the 0.3-point target is
    # for the hour-long benchmark's ~5,000 words (docs/results.md). The model trained here varies
    # from run to run (one by one: 0 to 3 errors in these 176 words seen), hence the loose 3%.
    words = result["reference_words"]
    extra_errors = round(result["wer"] * words) - round(result["one_by_one_wer"] * words)
    assert extra_errors <= 2 and result["wer"] < 0.03, result
    assert result["same_words_utterances"] >= 0.9 and result["within_2_frames"] == 1.0, result
    assert len(long.segments) >= 10  # cut at pauses, not decoded in one piece
    # Windows of 1.2 s put ~100 borders inside words: the windowed model's emissions are exact,
    # so the words and their times are those of 30 s windows.
    (small,) = Recognizer(saved, chunk=ChunkOptions(chunk_seconds=1.2)).transcribe([("long", str(tmp_path / "long.wav"))])
    assert (small.words, small.starts, small.ends) == (long.words, long.starts, long.ends)

    assert cli.main(["transcribe", str(exp / "model"), str(tmp_path / "long.wav"), "-f", "srt,vtt",
                     "-o", str(tmp_path / "subtitles")]) == 0
    cues = make_cues(long.words, long.starts, long.ends, [s.first for s in long.segments], duration=long.duration)
    check_cues(cues, long.words, long.starts, long.ends, [s.first for s in long.segments], long.duration)
    parsed = list(srt.parse((tmp_path / "subtitles" / "long.srt").read_text()))
    assert [p.content for p in parsed] == [c.text for c in cues] and len(parsed) < len(long.words) / 2
    assert (tmp_path / "subtitles" / "long.vtt").read_text().startswith("WEBVTT")


def test_digits_long_recording_aligns_segment_by_segment_as_its_files_one_by_one(digits_demo, tmp_path):
    """`asr align` of a 2-minute recording with its whole transcript: aligned segment by segment
    (each with the words the recognizer anchored to it), in segments cut at pauses and in
    1-second ones, word starts within 2 encoder frames of aligning each file alone plus the
    file's offset."""
    from asr.data import read_manifest
    from asr.longform import SegmentOptions
    from asr.model_dir import load_model_dir
    from asr.transcribe import Recognizer
    from benchmarks.longform import build_long_file, compare

    _, _, exp = digits_demo
    saved = load_model_dir(exp / "model")
    utterances = read_manifest(exp / "test.jsonl")
    placed = build_long_file(utterances, 2.0, saved.sample_rate, tmp_path / "long.wav", seed=1)
    texts = {u.id: u.text.split() for u in utterances}
    singles = {t.id: t for t in Recognizer(saved).align([(u.id, u.audio) for u in utterances], texts, batch_size=16)}
    reference = [word for u, _ in placed for word in texts[u]]
    for segments in (SegmentOptions(), SegmentOptions(pause_seconds=0.3, max_segment_seconds=1.0)):
        (long,) = Recognizer(saved, segments=segments).align([("long", str(tmp_path / "long.wav"))],
                                                             {"long": reference}, plot_dir=tmp_path / "plots")
        assert long.error is None and long.words == reference and len(long.segments) >= 10
        result = compare(placed, {u: " ".join(t) for u, t in texts.items()}, singles, dataclasses.asdict(long),
                         saved.frame_seconds)
        # Seen with the recipe's model, seeds 1-6, both settings: every utterance the same words, every
        # start within 1 frame. Seed 1 has a SIX the search misses in a skipped pause: aligned only
        # within its segment, it was squeezed beside the next utterance's SIX.
        assert result["same_words_utterances"] == 1.0 and result["within_2_frames"] >= 0.98, (segments, result)
        assert result["max_start_shift_frames"] <= 6, (segments, result)
    assert len(list((tmp_path / "plots").glob("long-*.png"))) >= 10
