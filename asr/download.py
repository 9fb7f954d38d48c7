"""Resumable, checksummed downloads and archive extraction for corpus recipes.

A partial download is kept as `<file>.part` and continued with an HTTP Range request;
the finished file is checked against the size the server announced and, when one is
given, its digest (MD5 or SHA-256, told apart by length) before it is renamed into place, so a corrupt or interrupted download is never
mistaken for a good one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import urllib.request
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger("asr.download")
CHUNK = 1 << 20


def digest(path: str | os.PathLike, checksum: str) -> str:
    """The file's hex digest in the algorithm of `checksum` (32 hex digits: MD5, 64: SHA-256)."""
    algorithms = {32: "md5", 64: "sha256"}
    if len(checksum) not in algorithms:
        raise ValueError(f"checksum {checksum!r} is neither an MD5 nor a SHA-256 hex digest")
    digest = hashlib.new(algorithms[len(checksum)])
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: str | os.PathLike, checksum: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch `url` to `dest` (skipped if it already exists with the right checksum),
    resuming a previous partial download."""
    dest = Path(dest)
    if dest.exists() and (checksum is None or digest(dest, checksum) == checksum):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        resumed = have and response.status == 206
        total = int(response.headers.get("Content-Length", 0)) + (have if resumed else 0)
        with open(partial, "ab" if resumed else "wb") as out, tqdm(
            total=total or None, initial=have if resumed else 0, unit="B", unit_scale=True, desc=dest.name,
            disable=None,
        ) as bar:
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                bar.update(len(block))
    if total and (received := partial.stat().st_size) != total:
        raise OSError(f"{url}: incomplete download ({received} of {total} bytes); run again to resume")
    if checksum is not None and (actual := digest(partial, checksum)) != checksum:
        partial.unlink()
        raise ValueError(f"{url}: checksum mismatch (got {actual}, expected {checksum}); download removed")
    os.replace(partial, dest)
    return dest


def extract(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Unpack a tar archive into `dest`, refusing members that would land outside it."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    return dest
