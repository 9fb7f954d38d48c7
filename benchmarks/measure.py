"""Shared by the benchmark scripts: timing, peak-memory measurement in a fresh subprocess, and
number formatting. A script's hidden `--measure CASE SIDE` mode calls `peak_rss_increase` (or
its own CUDA measurement) and `report_measurement`; the parent reads it with `measure_in_subprocess`."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent
MEASURE_PREFIX = "MEASURE-RESULT "


@contextlib.contextmanager
def work_folder(keep: str | None) -> Iterator[Path]:
    """The folder `keep` (created when missing), or else a temporary one removed afterwards:
    where a benchmark writes its generated inputs."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(keep or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        yield folder


def now() -> float:
    return time.perf_counter()


def rss_kib(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise KeyError(field_name)


def own_peak_bytes() -> int:
    """This process's peak RSS since it started (VmHWM: getrusage's ru_maxrss would include the
    peak of the parent that forked it, which Linux carries across fork and exec)."""
    return rss_kib("VmHWM") * 1024


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_increase(run: Callable[[], object]) -> dict:
    """Call `run()` and return {peak_bytes, base_bytes, method}: the peak RSS increase over the
    RSS before the call, via /proc/self/clear_refs + VmHWM, else getrusage ru_maxrss (which cannot
    be reset, so it reads 0 when an earlier moment of the process peaked higher)."""
    if reset_peak_rss():
        base = rss_kib("VmRSS")
        run()
        peak, method = rss_kib("VmHWM"), "VmHWM after clear_refs"
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        run()
        peak, method = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss"
    return {"peak_bytes": max(peak - base, 0) * 1024, "base_bytes": base * 1024, "method": method}


def report_measurement(result: dict) -> None:
    """Print the measuring subprocess's result where `measure_in_subprocess` finds it."""
    print(MEASURE_PREFIX + json.dumps(result), flush=True)


def measure_in_subprocess(module: str, arguments: list[str], timeout: float) -> dict:
    """Run `python -m module *arguments` from the repository root and return the dict it
    reported, or {"status": "failed", "why": ...}."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        proc = subprocess.run([sys.executable, "-m", module, *arguments], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "why": f"timed out after {timeout}s"}
    for line in proc.stdout.splitlines():
        if line.startswith(MEASURE_PREFIX):
            return json.loads(line[len(MEASURE_PREFIX):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
    return {"status": "failed", "why": f"subprocess exit {proc.returncode}: {tail[0]}"}


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)


def short_error(e: BaseException, limit: int = 160) -> str:
    text = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
