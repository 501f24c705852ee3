"""A local HTTPS server speaking the dbt Cloud API v2 paths prefect-dbt's client calls."""

from __future__ import annotations

import json
import re
import socket
import ssl
import struct
import threading
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
UI_HOST = "cloud.example.test"
HUMANIZED = {10: "Success", 20: "Error", 30: "Cancelled"}
TRIGGER = f"POST /api/v2/accounts/{ACCOUNT}/jobs/{JOB}/run/"
# Longer than httpx's default 5 s read timeout, which prefect-dbt's client keeps.
HANG_SECONDS = 6.0


@dataclass
class FakeRun:
    """One run of the job: the statuses it reports poll after poll (the last one repeats)."""

    id: int
    cause: str
    statuses: list[int]
    polls: int = 0

    @property
    def status(self) -> int:
        """The status of the last poll (the first one before any)."""
        return self.statuses[min(max(self.polls, 1), len(self.statuses)) - 1]

    def poll(self) -> int:
        self.polls += 1
        return self.status


@dataclass
class FakeDbtCloud:
    """Scripted runs and faults; records every call it answers and every run it created."""

    statuses: list[int] = field(default_factory=lambda: [3, 10])  # each new run's script
    scripts: list[list[int]] = field(default_factory=list)  # taken first, one per new run
    hiccups: list[int] = field(default_factory=list)  # statuses to answer first, in order
    # The next triggers create their run, then lose the answer: "reset", "timeout" or "502".
    lost_trigger_answers: list[str] = field(default_factory=list)
    run_results: dict[str, Any] | None = None  # None: the job saves no artifacts
    status_message: str | None = None  # what dbt Cloud says about an errored run
    run_steps: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    runs: dict[int, FakeRun] = field(default_factory=dict)
    next_run_id: int = 1000
    auth_status: int | None = None
    refused_polls: int | None = None  # a status answered to every GET of a run
    malformed_polls: bool = False  # GET of a run answers 200 with a proxy's HTML page
    hung_polls: bool = False  # GET of a run never answers within the client's timeout
    released: threading.Event = field(default_factory=threading.Event)

    @property
    def triggers(self) -> int:
        """How many `POST .../jobs/{job}/run/` reached dbt Cloud."""
        return self.count(TRIGGER)

    @property
    def last_run(self) -> FakeRun:
        return self.runs[max(self.runs)]

    def handle(self, request: Request) -> Response:
        self.calls.append(f"{request.method} {request.path}")
        if self.auth_status:
            return Response(json.dumps({"status": {"is_success": False}}), self.auth_status)
        if self.hiccups:
            return Response("try again", self.hiccups.pop(0))
        path = request.path.removeprefix(f"/api/v2/accounts/{ACCOUNT}")
        if request.method == "POST" and re.fullmatch(rf"/jobs/{JOB}/run/", path):
            run = self._new_run(str((request.get_json(silent=True) or {}).get("cause", "")))
            if self.lost_trigger_answers:
                return self._lose_answer(request, self.lost_trigger_answers.pop(0))
            return _json({"data": self._payload(run)})
        if request.method == "POST" and re.fullmatch(rf"/jobs/{JOB}/rerun/", path):
            return _json({"data": self._payload(self._new_run("Rerun from failure"))})
        if request.method == "POST" and (m := re.fullmatch(r"/runs/(\d+)/cancel/", path)):
            run = self.runs[int(m[1])]
            run.statuses, run.polls = [30], 0
            return _json({"data": self._payload(run)})
        if request.method == "GET" and path == "/runs/":
            return self._list_runs(request)
        if m := re.fullmatch(r"/runs/(\d+)/", path):
            return self._get_run(request, int(m[1]))
        if re.fullmatch(r"/runs/\d+/artifacts/", path):
            return _json(
                {"data": ["manifest.json", "run_results.json"] if self.run_results else []}
            )
        if re.fullmatch(r"/runs/\d+/artifacts/run_results\.json", path):
            if self.run_results is None:
                return Response("not found", 404)
            return _json(self.run_results)
        return Response(f"unexpected {request.method} {path}", 500)

    def _new_run(self, cause: str) -> FakeRun:
        self.next_run_id += 1
        script = self.scripts.pop(0) if self.scripts else self.statuses
        run = FakeRun(self.next_run_id, cause, list(script))
        self.runs[run.id] = run
        return run

    def _payload(self, run: FakeRun) -> dict[str, Any]:
        status = run.status
        payload = {
            "id": run.id,
            "job_definition_id": JOB,
            "project_id": PROJECT,
            "status": status,
            "status_humanized": {10: "Success", 20: "Error", 30: "Cancelled"}.get(
                status, "Running"
            ),
            "href": f"https://cloud.example.test/deploy/{ACCOUNT}/projects/{PROJECT}/runs/{run.id}/",
            "trigger": {"cause": run.cause},
        }
        if status == 20:
            payload["status_message"] = self.status_message
        return payload

    def _get_run(self, request: Request, run_id: int) -> Response:
        if self.refused_polls:
            return Response(json.dumps({"status": {"is_success": False}}), self.refused_polls)
        if self.malformed_polls:
            return Response("<html>502 Bad Gateway</html>", 200, content_type="application/json")
        if self.hung_polls:
            self.released.wait(HANG_SECONDS)
        run = self.runs[run_id]
        run.poll()
        payload = self._payload(run)
        if "run_steps" in request.args.getlist("include_related"):
            payload["run_steps"] = self.run_steps
        return _json({"data": payload})

    def _list_runs(self, request: Request) -> Response:
        job = int(request.args.get("job_definition_id", 0))
        limit = int(request.args.get("limit", 100))
        runs = sorted(self.runs.values(), key=lambda run: -run.id) if job == JOB else []
        return _json({"data": [self._payload(run) for run in runs[:limit]]})

    def _lose_answer(self, request: Request, how: str) -> Response:
        if how == "502":
            return Response("<html>502 Bad Gateway</html>", 502)
        if how == "timeout":
            self.released.wait(HANG_SECONDS)
            return Response("too late", 200)
        connection: socket.socket = request.environ["werkzeug.socket"]
        # SO_LINGER 0: closing sends a TCP reset instead of an orderly end.
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()
        return Response("never sent", 200)

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
    # Threaded: a request left hanging must not hold up the client's next one.
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context, threaded=True)
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
    fake.released.set()  # let hung requests end
