"""A real Hamilton UI server (the `ui` extra) for the tests that track a build to it: started on
127.0.0.1 and a free port (`hamilton ui` itself would bind 0.0.0.0), read through its HTTP API. The
`ui_server` fixture (conftest.py) runs one per test module."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import requests

USER = "cpgflow-test"
START_SECONDS = 120  # migrating and starting the server: ~6 s here


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-20:])


def wait_for(check: Callable[[], Any], seconds: float, what: str) -> Any:
    """``check()``'s first truthy result, polled until ``seconds`` have passed; then a failure naming ``what``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    pytest.fail(f"gave up after {seconds} s waiting for {what}")


class UiServer(msgspec.Struct, frozen=True):
    url: str
    log: Path

    def get(self, path: str, **params: object) -> Any:
        response = requests.get(f"{self.url}/api/v1/{path}", params=params, headers={"x-api-user": USER}, timeout=30)
        assert response.ok, f"GET {path}: {response.status_code} {response.text[:500]}"
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = requests.post(f"{self.url}/api/v1/{path}", json=body, headers={"x-api-user": USER}, timeout=30)
        assert response.ok, f"POST {path}: {response.status_code} {response.text[:500]}"
        return response.json()

    def create_project(self, description: str, *writers: str) -> int:
        """A new project with USER (and ``writers``) among its writers, as the tracker requires; its number.
        The local UI makes a user on the first request it sends, and a project only lists known users."""
        for writer in writers:
            response = requests.get(f"{self.url}/api/v1/projects", headers={"x-api-user": writer}, timeout=30)
            assert response.ok, f"GET projects as {writer}: {response.status_code} {response.text[:500]}"
        project = self.post("projects", {
            "name": "cpgflow", "description": description, "tags": {},
            "visibility": {"user_ids_visible": [], "team_ids_visible": [], "team_ids_writable": [],
                           "user_ids_writable": [USER, *writers]},
        })
        return project["id"]


def _answers(url: str, server: subprocess.Popen[bytes], log: Path) -> bool:
    if server.poll() is not None:
        pytest.fail(f"the Hamilton UI server exited with status {server.returncode}:\n{log_tail(log)}")
    try:
        return requests.get(f"{url}/api/v1/health", timeout=2).ok
    except requests.ConnectionError:
        return False


@contextlib.contextmanager
def running_ui_server(base: Path) -> Iterator[UiServer]:
    """The Hamilton UI of the `ui` extra, on 127.0.0.1 and a free port, with its sqlite database and
    blobs in ``base``; stopped on exit."""
    spec = importlib.util.find_spec("hamilton_ui")
    assert spec is not None and spec.origin, "the `ui` extra is not installed: pip install -e '.[dev,ui]'"
    manage = Path(spec.origin).parent / "manage.py"
    env = {**os.environ, "HAMILTON_BASE_DIR": str(base), "DJANGO_LOG_LEVEL": "WARNING"}
    settings = "--settings=server.settings_mini"
    migrated = subprocess.run([sys.executable, str(manage), "migrate", settings], env=env, capture_output=True,
                              text=True, timeout=START_SECONDS, check=False)
    assert migrated.returncode == 0, f"migrating the UI's database failed:\n{migrated.stderr[-2000:]}"
    port, log = free_port(), base / "server.log"
    with log.open("wb") as log_file:
        server = subprocess.Popen([sys.executable, str(manage), "runserver", f"127.0.0.1:{port}", settings,
                                   "--noreload"], env=env, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url, server, log), START_SECONDS, f"the Hamilton UI to answer at {url}")
        yield UiServer(url, log)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
