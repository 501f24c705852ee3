"""A local HTTPS server speaking the dbt Cloud API v2 paths prefect-dbt's client calls."""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

ACCOUNT = 4242
JOB = 77
PROJECT = 9


@dataclass
class FakeDbtCloud:
    """Scripted run statuses and HTTP hiccups; records every call it answers."""

    statuses: list[int] = field(default_factory=lambda: [3, 10])
    hiccups: list[int] = field(default_factory=list)  # statuses to answer first, in order
    run_results: dict[str, Any] | None = None
    calls: list[str] = field(default_factory=list)
    next_run_id: int = 1000
    polls: dict[int, int] = field(default_factory=dict)
    auth_status: int | None = None

    def handle(self, request: Request) -> Response:
        self.calls.append(f"{request.method} {request.path}")
        if self.auth_status:
            return Response(json.dumps({"status": {"is_success": False}}), self.auth_status)
        if self.hiccups:
            return Response("try again", self.hiccups.pop(0))
        path = request.path.removeprefix(f"/api/v2/accounts/{ACCOUNT}")
        if request.method == "POST" and (m := re.fullmatch(r"/jobs/(\d+)/run/", path)):
            return self._new_run()
        if request.method == "POST" and re.fullmatch(r"/runs/\d+/retry/", path):
            self.statuses = [3, 10]
            return self._new_run()
        if m := re.fullmatch(r"/runs/(\d+)/", path):
            run_id = int(m[1])
            index = min(self.polls.get(run_id, 0), len(self.statuses) - 1)
            self.polls[run_id] = self.polls.get(run_id, 0) + 1
            status = self.statuses[index]
            return _json({"data": {"id": run_id, "project_id": PROJECT, "status": status,
                                   "status_humanized": str(status)}})  # fmt: skip
        if re.fullmatch(r"/runs/\d+/artifacts/run_results\.json", path):
            if self.run_results is None:
                return Response("not found", 404)
            return _json(self.run_results)
        return Response(f"unexpected {request.method} {path}", 500)

    def _new_run(self) -> Response:
        self.next_run_id += 1
        return _json({"data": {"id": self.next_run_id, "project_id": PROJECT}})

    def count(self, prefix: str) -> int:
        return sum(call.startswith(prefix) for call in self.calls)


def _json(payload: dict[str, Any]) -> Response:
    return Response(json.dumps(payload), 200, content_type="application/json")


@pytest.fixture(scope="session")
def dbt_cloud_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HTTPServer, Path]]:
    """An HTTPS server with a throwaway CA; yields the server and the CA bundle to trust."""
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    yield server, bundle
    server.stop()


@pytest.fixture
def dbt_cloud(
    dbt_cloud_server: tuple[HTTPServer, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeDbtCloud]:
    server, bundle = dbt_cloud_server
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    fake = FakeDbtCloud()
    server.clear()
    server.expect_request(re.compile(r"/api/v2/.*")).respond_with_handler(fake.handle)
    yield fake
