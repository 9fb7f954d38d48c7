"""Batch jobs that resume: `asr transcribe -o DIR` killed midway and rerun gives the outputs of
an uninterrupted run without decoding a file twice (asr.jobs)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asr import cli
from asr.jobs import LEDGER, OutputDir

from .conftest import noise_wav

ROOT = Path(__file__).resolve().parents[2]

FORMATS = "txt,json,ctm,srt"
RUN = [sys.executable, "-c", "import sys; from asr.cli import main; sys.exit(main())"]


def outputs(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != LEDGER}


def test_a_killed_job_resumes_where_it_stopped(model_dir, tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(200):
        noise_wav(audio / f"f{i:03d}.wav", 2.0 + (i % 5) * 0.5, i)
    arguments = ["transcribe", str(model_dir), str(audio), "-f", FORMATS, "--batch-size", "2"]
    whole = tmp_path / "whole"
    assert cli.main([*arguments, "-o", str(whole)]) == 0

    killed = tmp_path / "killed"
    job = subprocess.Popen([*RUN, *arguments, "-o", str(killed)], stderr=subprocess.DEVNULL)
    ledger = killed / LEDGER
    while job.poll() is None and (not ledger.exists() or ledger.read_text().count("\n") < 40):
        time.sleep(0.02)
    job.send_signal(signal.SIGKILL)
    job.wait()
    done = ledger.read_text().count("\n")
    assert 40 <= done < 200, "the job should have been killed midway"

    result = subprocess.run([*RUN, *arguments, "-o", str(killed)], capture_output=True, text=True, env=os.environ)
    assert result.returncode == 0, result.stderr
    assert f"{done} files already done in {killed}, {200 - done} to go" in result.stderr
    assert f"{200 - done} of {200 - done} files" in result.stderr  # nothing decoded twice
    assert outputs(killed) == outputs(whole)
    again = subprocess.run([*RUN, *arguments, "-o", str(killed)], capture_output=True, text=True)
    assert "200 files already done" in again.stderr and outputs(killed) == outputs(whole)


def test_partial_results_of_the_file_being_written_are_dropped(tmp_path):
    def render(transcript, fmt):
        return f"{transcript.id} {fmt}\n"

    class Done:
        def __init__(self, name):
            self.id = name

    with OutputDir(tmp_path, ["txt", "json", "srt"], render) as out:
        out.write(Done("a"))
        out.write(Done("b"))
    with open(tmp_path / "transcripts.txt", "a") as f:
        f.write("c tx")  # killed while writing c
    with open(tmp_path / LEDGER, "a") as f:
        f.write('{"id": "c", "si')
    with OutputDir(tmp_path, ["txt", "json", "srt"], render) as out:
        assert out.done == {"a", "b"}
        out.write(Done("c"))
    assert (tmp_path / "transcripts.txt").read_text() == "a txt\nb txt\nc txt\n"
    assert (tmp_path / "transcripts.json").read_text() == "a json\nb json\nc json\n"
    assert [json.loads(line)["id"] for line in (tmp_path / LEDGER).read_text().splitlines()] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="other formats"):
        OutputDir(tmp_path, ["txt"], render)


def test_two_worker_processes_write_what_one_process_writes(model_dir, tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(200):
        noise_wav(audio / f"f{i:03d}.wav", 1.0 + (i % 5) * 0.5, i)
    arguments = ["transcribe", str(model_dir), str(audio), "-f", FORMATS, "--batch-size", "4"]
    assert cli.main([*arguments, "-o", str(tmp_path / "one")]) == 0
    assert cli.main([*arguments, "-o", str(tmp_path / "two"), "--jobs", "2"]) == 0
    assert outputs(tmp_path / "two") == outputs(tmp_path / "one") and len(outputs(tmp_path / "one")) == 203


def test_under_torchrun_two_ranks_write_what_one_process_writes(model_dir, tmp_path):
    """Two gloo ranks share the files out and rank 0 writes them in input order: the same bytes
    as one process, here also resuming a job one process started (60 of 200 files done)."""
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(200):
        noise_wav(audio / f"f{i:03d}.wav", 1.0 + (i % 5) * 0.5, i)
    (tmp_path / "first.scp").write_text("".join(f"f{i:03d} {audio / f'f{i:03d}.wav'}\n" for i in range(60)))
    arguments = ["transcribe", str(model_dir), "-f", FORMATS, "--batch-size", "4"]
    assert cli.main([*arguments, str(audio), "-o", str(tmp_path / "one")]) == 0
    assert cli.main([*arguments, str(tmp_path / "first.scp"), "-o", str(tmp_path / "two")]) == 0
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "asr.cli"]
    env = {"PATH": os.environ["PATH"], "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([*torchrun, *arguments, str(audio), "-o", str(tmp_path / "two")], capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert "60 files already done" in result.stderr and result.stderr.count("140 of 140 files") == 1  # rank 0 speaks
    assert outputs(tmp_path / "two") == outputs(tmp_path / "one") and len(outputs(tmp_path / "one")) == 203
    # Without -o, rank 0 prints the transcripts as one process does.
    printed = subprocess.run([*torchrun, *arguments, str(audio)], capture_output=True, text=True, timeout=300, env=env)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == (tmp_path / "one" / "transcripts.txt").read_text()
