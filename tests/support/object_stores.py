"""Stand-ins for remote source locations: an HTTP file server with range requests, and an
S3 API (moto's server) that Arrow's own S3 client talks to unmodified."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.prefect_server import free_port


class RangeRequestHandler(SimpleHTTPRequestHandler):
    """Serves files like a CDN or object store's HTTPS endpoint: HEAD, GET and `Range: bytes=`."""

    def do_GET(self) -> None:
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if wanted is None or not path.is_file():
            super().do_GET()
            return
        data = path.read_bytes()
        start = int(wanted[1])
        end = min(int(wanted[2]) if wanted[2] else len(data) - 1, len(data) - 1)
        self.send_response(HTTPStatus.PARTIAL_CONTENT)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self.wfile.write(data[start : end + 1])

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serving_directory(root: Path) -> Iterator[str]:
    """Serve `root` over HTTP on a free local port; yield its base URL."""
    handler = functools.partial(RangeRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def s3_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's S3 server on a free local port, and the standard AWS settings pointing at it
    (AWS_ENDPOINT_URL_S3 is honoured by Arrow and boto3 alike); yield a boto3 S3 client."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "stand-in")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "stand-in")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    try:
        yield boto3.client("s3")
    finally:
        server.stop()


def upload_directory(s3: Any, bucket: str, prefix: str, root: Path) -> None:
    """Put every file directly under `root` at `s3://bucket/prefix/<name>`."""
    for file in sorted(root.iterdir()):
        s3.upload_file(str(file), bucket, f"{prefix}/{file.name}")
