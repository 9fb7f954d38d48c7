"""Downloads (resume, checksum) against a local HTTP server; yesno preparation on the shared copy."""

import hashlib
import http.server
import io
import tarfile
import threading
from functools import partial
from pathlib import Path

import pytest

from asr.corpora import yesno
from asr.download import download, extract

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with support for `Range: bytes=N-` (Python's handler ignores ranges)."""

    def send_head(self):
        start = self.headers.get("Range", "bytes=0-")[6:].rstrip("-")
        if not start or start == "0":
            return super().send_head()
        path = Path(self.translate_path(self.path))
        data = path.read_bytes()[int(start):]
        self.send_response(206)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        return io.BytesIO(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_RangeHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_download_resumes_and_checks_the_digest(server, tmp_path):
    root, url = server
    payload = bytes(range(256)) * 4000
    (root / "file.bin").write_bytes(payload)
    dest = tmp_path / "out" / "file.bin"
    dest.parent.mkdir()
    (dest.parent / "file.bin.part").write_bytes(payload[:1000])  # an interrupted earlier attempt
    md5 = hashlib.md5(payload).hexdigest()
    assert download(f"{url}/file.bin", dest, md5).read_bytes() == payload
    assert not (dest.parent / "file.bin.part").exists()
    dest.unlink()
    with pytest.raises(ValueError, match="checksum mismatch"):
        download(f"{url}/file.bin", dest, hashlib.sha256(b"something else").hexdigest())
    assert not dest.exists()


def test_extract_unpacks_a_tarball(tmp_path):
    archive = tmp_path / "a.tar.gz"
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.txt").write_text("hi")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "x.txt", arcname="folder/x.txt")
    assert (extract(archive, tmp_path / "out") / "folder" / "x.txt").read_text() == "hi"


def test_yesno_transcripts_and_split():
    assert yesno.transcript(Path("0_1_1_0_0_1_0_1.wav")) == "NO YES YES NO NO YES NO YES"
    with pytest.raises(ValueError, match="not a yesno file name"):
        yesno.transcript(Path("2_1.wav"))


@pytest.mark.skipif(not (SHARED / "yesno").is_dir(), reason="../shared/data/yesno is not present")
def test_yesno_manifests_from_the_shared_copy():
    splits = yesno.utterances(yesno.find(SHARED / "yesno"))
    assert len(splits["train"]) == 31 and len(splits["test"]) == 29
    first = splits["train"][0]
    assert first.id.startswith("0_") and len(first.text.split()) == 8 and 5 < first.duration < 7
