"""A stand-in Docker Engine: the HTTP API docker-py speaks, recording builds, tags and pushes.

prefect-docker's build and push steps run unmodified against it (DOCKER_HOST=tcp://...),
so `prefect deploy` runs prefect.yaml's real build and push steps without a Docker daemon.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

API_VERSION = "1.45"
ROUTE = re.compile(rf"^(?:/v{re.escape(API_VERSION)})?(?P<path>/.*)$")


@dataclass
class Build:
    """One `POST /build`: its query, the files of its context and the Dockerfile's text."""

    params: dict[str, str]
    context_files: list[str]
    dockerfile: str
    image_id: str


@dataclass
class DockerEngine:
    """What the client asked the engine to do, in order."""

    url: str = ""
    builds: list[Build] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    pushes: list[str] = field(default_factory=list)

    def build(self, params: dict[str, str], context: bytes) -> list[dict[str, Any]]:
        with tarfile.open(fileobj=io.BytesIO(context), mode="r:*") as tar:
            names = sorted(member.name for member in tar.getmembers() if member.isfile())
            name = params.get("dockerfile", "Dockerfile")
            member = tar.extractfile(name) if name in names else None
            dockerfile = member.read().decode() if member else ""
        if not dockerfile:
            return [{"error": f"Cannot locate specified Dockerfile: {name}"}]
        image_id = "sha256:" + hashlib.sha256(context).hexdigest()
        self.builds.append(Build(params, names, dockerfile, image_id))
        return [{"stream": f"Successfully built {image_id[7:19]}\n"}, {"aux": {"ID": image_id}}]

    def push(self, repository: str, tag: str) -> list[dict[str, Any]]:
        reference = f"{repository}:{tag}"
        if reference not in self.tags:
            return [{"error": f"An image does not exist locally with the tag: {reference}"}]
        self.pushes.append(reference)
        return [
            {"status": f"The push refers to repository [{repository}]"},
            {"status": f"{tag}: digest: sha256:{'0' * 64} size: 1234"},
        ]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # build and push progress is streamed in chunks
    engine: DockerEngine

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, events: list[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in events:
            chunk = (json.dumps(event) + "\r\n").encode()
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def _route(self) -> tuple[str, dict[str, str], bytes]:
        url = urlsplit(self.path)
        match = ROUTE.match(url.path)
        path = match["path"] if match else url.path
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return path, dict(parse_qsl(url.query)), body

    def do_GET(self) -> None:
        path, _, _ = self._route()
        if path == "/version":
            self._reply(
                200,
                {
                    "ApiVersion": API_VERSION,
                    "MinAPIVersion": "1.24",
                    "Version": "27.0.0",
                    "Os": "linux",
                    "Arch": "amd64",
                },
            )
        elif path.startswith("/images/") and path.endswith("/json"):
            image_id = path.removeprefix("/images/").removesuffix("/json")
            if any(build.image_id == image_id for build in self.engine.builds):
                self._reply(200, {"Id": image_id, "RepoTags": []})
            else:
                self._reply(404, {"message": f"No such image: {image_id}"})
        else:
            self._reply(404, {"message": f"page not found: {path}"})

    def do_POST(self) -> None:
        path, params, body = self._route()
        if path == "/build":
            self._stream(self.engine.build(params, body))
        elif path.startswith("/images/") and path.endswith("/tag"):
            self.engine.tags.append(f"{params['repo']}:{params['tag']}")
            self._reply(201, {})
        elif path.startswith("/images/") and path.endswith("/push"):
            repository = path.removeprefix("/images/").removesuffix("/push")
            self._stream(self.engine.push(repository, params.get("tag", "latest")))
        else:
            self._reply(404, {"message": f"page not found: {path}"})


@contextmanager
def running_docker_engine() -> Iterator[DockerEngine]:
    """Serve a fresh engine on a free local port; its `url` is a DOCKER_HOST value."""
    engine = DockerEngine()
    handler = type("Handler", (_Handler,), {"engine": engine})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    engine.url = f"tcp://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield engine
    finally:
        server.shutdown()
        server.server_close()
