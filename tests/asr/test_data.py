"""asr.data: manifests, Kaldi data dirs, the bucketing batch sampler, the dataset and collate."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from asr.audio import load_audio
from asr.data import (
    BucketBatchSampler,
    Skipped,
    SpeechDataset,
    Utterance,
    collate,
    export_kaldi_dir,
    import_kaldi_dir,
    read_manifest,
    speed_perturbed,
    write_manifest,
)

# ---------------------------------------------------------------- manifests


def _utterances(folder: Path, count: int = 3) -> list[Utterance]:
    return [Utterance(f"spk{i % 2}-utt{i}", str(folder / f"u{i}.wav"), 1.25 + i, f"hello {i}", f"spk{i % 2}")
            for i in range(count)]


def test_manifest_round_trip_and_relative_paths(tmp_path, monkeypatch):
    utterances = _utterances(tmp_path) + [Utterance("x", str(tmp_path / "x.wav"), 2, "", "s")]
    path = tmp_path / "new" / "train.jsonl"
    write_manifest(path, utterances)
    assert read_manifest(path) == [*utterances[:3], Utterance("x", str(tmp_path / "x.wav"), 2.0, "", "s")]
    assert sorted(os.listdir(path.parent)) == ["train.jsonl"]  # no temporary file left

    record = {"id": "a", "audio": "wav/a.wav", "duration": 1.5, "text": "ünïcode", "speaker": "s"}
    path.write_text("\n" + json.dumps(record) + "\n\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # resolution must not depend on the current folder
    [utterance] = read_manifest(Path("new") / "train.jsonl")
    assert utterance.audio == str(tmp_path / "new" / "wav" / "a.wav")
    assert utterance.text == "ünïcode"


GOOD = '{"id": "a", "audio": "a.wav", "duration": 1.0, "text": "x", "speaker": "s"}'


@pytest.mark.parametrize("line, message", [
    ('{"id": "b", "audio": "b.wav", "duration": 1.0, "text": "x"', "invalid JSON"),
    ('{"id": "b", "audio": "b.wav", "text": "x"}', "missing field.*duration.*speaker"),
    ('{"id": "b", "audio": "b.wav", "duration": "1.0", "text": "x", "speaker": "s"}', "'duration' must be a number"),
    ('{"id": "b", "audio": "b.wav", "duration": 0, "text": "x", "speaker": "s"}', "positive"),
    ('{"id": 7, "audio": "b.wav", "duration": 1.0, "text": "x", "speaker": "s"}', "'id' must be a string"),
    ('{"id": "b c", "audio": "b.wav", "duration": 1.0, "text": "x", "speaker": "s"}', "without whitespace"),
    ('{"id": "b", "audio": "b.wav", "duration": 1.0, "text": "x", "speaker": "s", "lang": "en"}', "unknown field"),
    ('{"id": "b", "audio": "b.wav", "duration": 1.0, "text": "x", "speaker": "s", "speed": -1}', "'speed' must be positive"),
    ('["b", "b.wav"]', "expected a JSON object"),
    (GOOD, "'a' already appears on line 1"),
])
def test_manifest_errors_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(f"{GOOD}\n\n{line}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        read_manifest(path)
    assert str(info.value).startswith(f"{path}, line 3: ")


def test_speed_perturbed_copies_round_trip_through_a_manifest(tmp_path):
    utterances = _utterances(tmp_path, count=2)
    perturbed = speed_perturbed(utterances, (0.9, 1.0, 1.1))
    assert perturbed[:2] == utterances and len(perturbed) == 6
    slow = perturbed[2]
    assert (slow.id, slow.speaker, slow.speed, slow.text) == ("sp0.9-spk0-utt0", "sp0.9-spk0", 0.9, "hello 0")
    assert slow.duration == pytest.approx(utterances[0].duration / 0.9)
    path = tmp_path / "sp.jsonl"
    write_manifest(path, perturbed)
    lines = path.read_text().splitlines()
    assert "speed" not in json.loads(lines[0]) and json.loads(lines[2])["speed"] == 0.9
    assert read_manifest(path) == perturbed
    with pytest.raises(ValueError, match="speed factors must be positive numbers"):
        speed_perturbed(utterances, "0.9")


def test_failed_write_leaves_the_old_manifest(tmp_path):
    path = tmp_path / "train.jsonl"
    write_manifest(path, _utterances(tmp_path))
    before = path.read_bytes()
    duplicate = _utterances(tmp_path) + _utterances(tmp_path)[:1]
    with pytest.raises(ValueError, match="appears twice"):
        write_manifest(path, duplicate)
    with pytest.raises(ValueError, match="positive"):
        write_manifest(path, [Utterance("a", "a.wav", -1.0, "", "s")])
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["train.jsonl"]


# ---------------------------------------------------------------- Kaldi data dirs


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _wav(path: Path, samples: int, rate: int = 8000, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).uniform(-0.5, 0.5, samples).astype(np.float32)
    soundfile.write(path, noise, rate, subtype="PCM_16")
    return path


def test_import_kaldi_dir_measures_audio_and_defaults_speakers(tmp_path):
    _wav(tmp_path / "audio" / "a.wav", 8000)
    _wav(tmp_path / "audio" / "b.wav", 4000)
    data = tmp_path / "data" / "train"
    _write(data / "wav.scp", "a audio/a.wav\nb   audio/b.wav\n")
    _write(data / "text", "a YES NO\nb\n")
    utterances = import_kaldi_dir(data, root=tmp_path)
    assert utterances == [Utterance("a", str(tmp_path / "audio" / "a.wav"), 1.0, "YES NO", "a"),
                          Utterance("b", str(tmp_path / "audio" / "b.wav"), 0.5, "", "b")]
    _write(data / "utt2spk", "b s2\na s1\n")
    measured = import_kaldi_dir(data, duration=lambda path: 3.0 if path.endswith("a.wav") else 4.0, root=tmp_path)
    assert [(u.speaker, u.duration) for u in measured] == [("s1", 3.0), ("s2", 4.0)]


def test_kaldi_export_import_round_trip(tmp_path):
    utterances = _utterances(tmp_path, 5) + [Utterance("spk1-empty", "/audio dir/e.flac", 0.3, "", "spk1")]
    data = tmp_path / "kaldi"
    export_kaldi_dir(reversed(utterances), data)
    assert (data / "spk2utt").read_text() == ("spk0 spk0-utt0 spk0-utt2 spk0-utt4\n"
                                              "spk1 spk1-empty spk1-utt1 spk1-utt3\n")
    assert (data / "wav.scp").read_text().splitlines()[0] == f"spk0-utt0 {tmp_path / 'u0.wav'}"
    assert "spk1-empty\n" in (data / "text").read_text()
    # utt2dur carries the durations, so the (absent) audio files are never opened.
    assert import_kaldi_dir(data) == sorted(utterances, key=lambda u: u.id)
    assert sorted(os.listdir(data)) == ["spk2utt", "text", "utt2dur", "utt2spk", "wav.scp"]


def test_kaldi_export_import_keeps_speed_perturbation(tmp_path):
    audio = _wav(tmp_path / "a.wav", 8000, seed=0)
    utterances = speed_perturbed([Utterance("a", str(audio), 1.0, "x", "s")], (0.9,))
    export_kaldi_dir(utterances, tmp_path / "kaldi")
    assert (tmp_path / "kaldi" / "wav.scp").read_text().splitlines() == [
        f"a {audio}", f"sp0.9-a sox -t wav {audio} -t wav - speed 0.9 |"]  # as perturb_data_dir_speed.sh
    assert import_kaldi_dir(tmp_path / "kaldi") == utterances
    (tmp_path / "kaldi" / "utt2dur").unlink()  # measured: the file's duration over the speed
    assert [u.duration for u in import_kaldi_dir(tmp_path / "kaldi")] == pytest.approx([1.0, 1.0 / 0.9])


@pytest.mark.parametrize("files, culprit, message", [
    ({"wav.scp": "a a.wav\nb sph2pipe -f wav b.sph |\n"}, "wav.scp, line 2", "piped commands .* not supported"),
    ({"segments": "a rec 0 1\n"}, "segments", "not supported"),
    ({"wav.scp": "a a.wav\nb\n"}, "wav.scp, line 2", "found only the id"),
    ({"text": "a x\nb y\na z\n"}, "text, line 3", "'a' already appears on line 1"),
    ({"text": "a x\n"}, "text", "no entry for utterance 'b' .*wav.scp, line 2"),
    ({"utt2spk": "a s\nb s\nc s\n"}, "utt2spk, line 3", "'c' is not in"),
    ({"utt2spk": "a s\nb s t\n"}, "utt2spk, line 2", "expected `b <value>`"),
    ({"utt2dur": "a 1.0\nb long\n"}, "utt2dur, line 2", "cannot get the duration"),
    ({"wav.scp": "a a.wav\nb missing.wav\n"}, "wav.scp, line 2", "cannot get the duration of .*missing.wav"),
])
def test_kaldi_import_errors_name_file_and_line(tmp_path, files, culprit, message):
    _wav(tmp_path / "a.wav", 800)
    _wav(tmp_path / "b.wav", 800)
    data = tmp_path / "data"
    for name, text in {"wav.scp": "a a.wav\nb b.wav\n", "text": "a x\nb y\n", **files}.items():
        _write(data / name, text)
    with pytest.raises(ValueError, match=message) as info:
        import_kaldi_dir(data, root=tmp_path)
    assert str(info.value).startswith(f"{data / culprit}")


def test_kaldi_export_rejects_unwritable_utterances(tmp_path):
    with pytest.raises(ValueError, match="line breaks"):
        export_kaldi_dir([Utterance("a", "a.wav", 1.0, "two\nlines", "s")], tmp_path / "out")
    with pytest.raises(ValueError, match="appears twice"):
        export_kaldi_dir(_utterances(tmp_path, 2) * 2, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- batch sampler


DURATIONS = np.random.default_rng(0).uniform(0.5, 20.0, 1000)
BUDGET = 60.0


def _epoch(sampler: BucketBatchSampler, epoch: int) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_each_utterance_once_per_epoch_within_budget():
    sampler = BucketBatchSampler(DURATIONS, BUDGET, num_buckets=8)
    for epoch in (0, 1):
        batches = _epoch(sampler, epoch)
        assert len(batches) == len(sampler)
        assert sorted(i for batch in batches for i in batch) == list(range(len(DURATIONS)))
        padded = [DURATIONS[batch].max() * len(batch) for batch in batches]
        assert max(padded) <= BUDGET
        assert sum(DURATIONS) / sum(padded) > 0.8  # buckets keep the padding small
        assert all(isinstance(i, int) for i in batches[0])


def test_sorted_order_and_drop_last():
    batches = list(BucketBatchSampler(DURATIONS, BUDGET, shuffle=False))
    flat = np.concatenate(batches)
    assert np.all(np.diff(DURATIONS[flat]) >= 0)
    dropped = list(BucketBatchSampler(DURATIONS, BUDGET, num_buckets=4, shuffle=False, drop_last=True))
    full = list(BucketBatchSampler(DURATIONS, BUDGET, num_buckets=4, shuffle=False))
    removed = [i for i, batch in enumerate(full) if batch not in dropped]
    assert dropped == [batch for i, batch in enumerate(full) if i not in removed]
    # At most one remainder per bucket, each smaller than the full batch before it.
    assert 0 < len(removed) <= 4 and all(len(full[i]) < len(full[i - 1]) for i in removed)


def test_order_is_deterministic_per_seed_and_epoch():
    a, b = BucketBatchSampler(DURATIONS, BUDGET, seed=3), BucketBatchSampler(DURATIONS, BUDGET, seed=3)
    assert _epoch(a, 0) == _epoch(b, 0)
    assert _epoch(a, 1) == _epoch(b, 1) != _epoch(a, 0)
    assert _epoch(a, 1) == _epoch(a, 1)  # iterating again repeats the epoch
    assert _epoch(BucketBatchSampler(DURATIONS, BUDGET, seed=4), 1) != _epoch(a, 1)


def test_exact_resume_mid_epoch():
    reference = _epoch(BucketBatchSampler(DURATIONS, BUDGET, seed=5), 2)
    sampler = BucketBatchSampler(DURATIONS, BUDGET, seed=5)
    sampler.set_epoch(2)
    iterator = iter(sampler)
    consumed = [next(iterator) for _ in range(7)]
    state = sampler.state_dict()
    assert state == {"epoch": 2, "batches_done": 7, "seed": 5}
    # A DataLoader with workers draws ahead; the trainer passes what it consumed.
    [next(iterator) for _ in range(3)]
    assert sampler.state_dict(batches_done=7) == state

    resumed = BucketBatchSampler(DURATIONS, BUDGET, seed=0)
    resumed.load_state_dict(state)
    resumed.set_epoch(state["epoch"])  # the usual trainer loop; must keep the resume point
    assert consumed + list(resumed) == reference
    assert resumed.state_dict()["batches_done"] == len(reference)
    assert _epoch(resumed, 3) == _epoch(BucketBatchSampler(DURATIONS, BUDGET, seed=5), 3)
    with pytest.raises(ValueError, match="batches_done"):
        resumed.load_state_dict({"epoch": 0, "batches_done": len(reference) + 1, "seed": 5})


@pytest.mark.parametrize("world_size", [2, 5, 7])  # 5 and 7 do not divide the batch count: padding
def test_ddp_shards_are_equal_and_cover_the_epoch(world_size):
    full = _epoch(BucketBatchSampler(DURATIONS, BUDGET, seed=1), 4)
    padded = full + full[:-len(full) % world_size]  # repeated first batches up to a multiple of world_size
    shards = [_epoch(BucketBatchSampler(DURATIONS, BUDGET, seed=1, rank=r, world_size=world_size), 4)
              for r in range(world_size)]
    assert {len(shard) for shard in shards} == {len(padded) // world_size}
    assert [padded[r::world_size] for r in range(world_size)] == shards
    assert {i for shard in shards for batch in shard for i in batch} == set(range(len(DURATIONS)))

    kept = _epoch(BucketBatchSampler(DURATIONS, BUDGET, seed=1, drop_last=True), 4)
    shards = [_epoch(BucketBatchSampler(DURATIONS, BUDGET, seed=1, drop_last=True, rank=r, world_size=world_size), 4)
              for r in range(world_size)]
    assert {len(shard) for shard in shards} == {len(kept) // world_size}
    flat = [i for shard in shards for batch in shard for i in batch]
    assert len(flat) == len(set(flat))  # disjoint
    assert sorted(map(tuple, (b for shard in shards for b in shard))) == sorted(
        map(tuple, kept[:len(kept) - len(kept) % world_size]))


def test_sampler_rejects_unbatchable_input():
    with pytest.raises(ValueError, match="1 utterance.*longer than max_seconds_per_batch"):
        BucketBatchSampler([1.0, 70.0], BUDGET)
    with pytest.raises(ValueError, match="positive"):
        BucketBatchSampler([1.0, 0.0], BUDGET)
    with pytest.raises(ValueError, match="rank"):
        BucketBatchSampler([1.0], BUDGET, rank=2, world_size=2)


# ---------------------------------------------------------------- dataset and collate


def load_wav(path: str) -> torch.Tensor:
    """Stand-in for asr.audio.load_audio: raises ValueError naming the file, as AudioError does."""
    try:
        samples, _ = soundfile.read(path, dtype="float32")
    except soundfile.LibsndfileError as e:
        raise ValueError(f"{path}: {e}") from None
    return torch.from_numpy(samples)


def frames(waveform: torch.Tensor) -> torch.Tensor:
    """Stand-in featurizer: consecutive 80-sample frames as [T, 80] features."""
    return waveform[:len(waveform) // 80 * 80].reshape(-1, 80)


def letters(text: str) -> list[int]:
    """Stand-in tokenizer: a=1 ... z=26."""
    return [ord(c) - 96 for c in text]


def _corpus(folder: Path) -> list[Utterance]:
    utterances = []
    for i in range(12):
        samples = 800 * (1 + i % 5)
        audio = _wav(folder / f"u{i}.wav", samples, seed=i)
        utterances.append(Utterance(f"u{i}", str(audio), samples / 8000, "abc"[: 1 + i % 3], "s"))
    (folder / "u5.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")  # corrupt
    return utterances


def test_dataloader_with_workers_skips_and_reports_the_corrupt_file(tmp_path):
    utterances = _corpus(tmp_path)
    dataset = SpeechDataset(utterances, load=load_wav, featurize=frames, encode=letters)
    sampler = BucketBatchSampler([u.duration for u in utterances], max_seconds_per_batch=1.0, num_buckets=3)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=2, collate_fn=collate)
    batches = list(loader)
    assert len(batches) == len(sampler)

    skipped = [s for batch in batches for s in batch["skipped"]]
    assert [(s.id, s.audio) for s in skipped] == [("u5", str(tmp_path / "u5.wav"))]
    assert "u5.wav" in skipped[0].error
    ids = [i for batch in batches for i in batch["ids"]]
    assert sorted(ids) == sorted(f"u{i}" for i in range(12) if i != 5)

    by_id = {u.id: u for u in utterances}
    for batch in batches:
        features, lengths = batch["features"], batch["feature_lengths"]
        assert features.shape == (len(batch["ids"]), int(lengths.max()), 80)
        assert batch["tokens"].dtype == torch.long
        for row, uid in enumerate(batch["ids"]):
            expected = frames(load_wav(by_id[uid].audio))
            assert torch.equal(features[row, :lengths[row]], expected)
            assert not features[row, lengths[row]:].any()
            tokens = batch["tokens"][row]
            assert tokens[:batch["token_lengths"][row]].tolist() == letters(by_id[uid].text)
            assert not tokens[batch["token_lengths"][row]:].any()


def test_load_failure_is_logged_and_counted_in_process(tmp_path, caplog):
    utterances = _corpus(tmp_path)
    dataset = SpeechDataset(utterances, load=load_wav, featurize=frames, encode=letters)
    with caplog.at_level("WARNING", logger="asr.data"):
        result = dataset[5]
    assert isinstance(result, Skipped) and result.id == "u5"
    assert dataset.failures == [result]
    assert str(tmp_path / "u5.wav") in caplog.text
    batch = collate([result])
    assert batch["ids"] == [] and batch["features"].shape[0] == 0 and batch["skipped"] == [result]


def test_cache_reads_each_file_once_and_returns_the_same_samples(tmp_path):
    utterances = _corpus(tmp_path)
    reads = []

    def counting_load(path):
        reads.append(path)
        return load_wav(path)

    cached = SpeechDataset(utterances, load=counting_load, featurize=frames, encode=letters, cache=True)
    plain = SpeechDataset(utterances, load=load_wav, featurize=frames, encode=letters)
    for _ in range(3):
        for i in range(len(utterances)):
            got, expected = cached[i], plain[i]
            if isinstance(expected, Skipped):
                assert got == expected
            else:
                assert got["id"] == expected["id"] and torch.equal(got["features"], expected["features"])
    assert sorted(reads) == sorted(u.audio for u in utterances)  # once each, the corrupt one included
    assert len(cached.failures) == 1


def test_transform_changes_every_read_after_the_cache(tmp_path):
    utterances = _corpus(tmp_path)
    calls = []

    def pad_one_row(features):
        calls.append(len(features))
        return torch.cat([features, torch.full((len(calls), features.shape[1]), -1.0)])

    dataset = SpeechDataset(utterances, load=load_wav, featurize=frames, encode=letters, cache=True,
                            transform=pad_one_row)
    first, second = dataset[0], dataset[0]
    expected = frames(load_wav(utterances[0].audio))
    assert torch.equal(first["features"][: len(expected)], expected) and len(first["features"]) == len(expected) + 1
    assert len(second["features"]) == len(expected) + 2  # a fresh draw on the cached sample, not on its last result
    assert isinstance(dataset[5], Skipped) and calls == [len(expected)] * 2  # a skipped file is not transformed


def test_dataset_reads_speed_perturbed_copies_at_their_speed(tmp_path):
    rate = 8000
    t = np.arange(rate) / rate
    soundfile.write(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * 1000 * t), rate)
    utterance = Utterance("tone", str(tmp_path / "tone.wav"), 1.0, "ab", "s")
    dataset = SpeechDataset(speed_perturbed([utterance], (0.8,)), load=lambda path, **kw: load_audio(path, rate, **kw),
                            featurize=lambda w: w[None], encode=letters)
    original, slow = dataset[0]["features"][0], dataset[1]["features"][0]
    assert dataset[1]["id"] == "sp0.8-tone" and dataset[1]["tokens"].tolist() == letters("ab")
    assert abs(slow.numel() - rate / 0.8) <= 1 and original.numel() == rate
    peak_hz = torch.fft.rfft(slow).abs().argmax().item() * rate / slow.numel()
    assert abs(peak_hz - 800) < 5  # played 0.8 times as fast: longer and lower


def test_band_limited_reads_are_drawn_with_their_probability_and_cached_per_variant(tmp_path):
    rate = 16000
    t = np.arange(rate) / rate
    soundfile.write(tmp_path / "tones.wav", 0.3 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 6000 * t), rate)
    utterance = Utterance("tones", str(tmp_path / "tones.wav"), 1.0, "ab", "s")
    reads = []

    def load(path, **options):
        reads.append(options)
        return load_audio(path, rate, **options)

    def high_band_share(waveform):
        spectrum = torch.fft.rfft(waveform).abs().square()
        return (spectrum[4500:].sum() / spectrum.sum())[None]  # 1 Hz per bin: energy above 4.5 kHz

    dataset = SpeechDataset([utterance], load=load, featurize=high_band_share, encode=letters, cache=True,
                            band_limits=(8000,), band_limit_p=0.25)
    torch.manual_seed(0)
    shares = [float(dataset[0]["features"]) for _ in range(400)]
    narrow = sum(share < 1e-4 for share in shares)
    assert 70 < narrow < 130 and all(share > 0.4 or share < 1e-4 for share in shares)  # 1 in 4, and nothing between
    assert sorted(map(str, reads)) == ["{'band_limit': 8000}", "{}"]  # each variant read once
    with pytest.raises(ValueError, match="band_limits"):
        SpeechDataset([utterance], load=load, featurize=high_band_share, encode=letters, band_limit_p=0.5)


def test_target_graphs_travel_with_their_samples_into_the_batch(tmp_path):
    utterances = [u for u in _corpus(tmp_path) if u.id != "u5"]  # u5 is unreadable
    graph_of = {u.text: object() for u in utterances}
    dataset = SpeechDataset(utterances, load=load_wav, featurize=frames, encode=letters, target_graph=graph_of.get)
    batch = collate([dataset[i] for i in range(3)])
    assert batch["target_graphs"] == [graph_of[u.text] for u in utterances[:3]]
    assert "target_graphs" not in collate([SpeechDataset(utterances, load=load_wav, featurize=frames,
                                                         encode=letters)[0]])

