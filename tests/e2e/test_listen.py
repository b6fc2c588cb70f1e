"""``agent-sessions listen --forward-to URL``, black box: it follows a running API's feed and POSTs each
event to a local receiver, signed with the secret it prints; after the API goes away and comes back it
resumes from the last event (the one committed meanwhile, through another API process, arrives)."""

from __future__ import annotations

import re
import subprocess
import threading

import httpx
import pytest
from standardwebhooks import Webhook

from agent_sessions.redis.server import free_port
from tests.support.processes import command, env, running, wait_http, working
from tests.support.receiver import Receiver
from tests.support.wait import eventually

pytestmark = pytest.mark.e2e


class Lines:
    """Everything a process prints, collected by one thread, to wait for."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.lines: list[str] = []
        stdout = proc.stdout
        threading.Thread(target=lambda: self.lines.extend(stdout), daemon=True).start()

    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, marker: str) -> None:
        eventually(lambda: marker in self.text(), f"{marker!r} not printed; printed:\n{self.text()}", timeout=30)


AGENT = "agt_listen"


def test_listen_forwards_signed_events_and_resumes_after_a_dropped_feed(
    redis_url: str, make_key: object, receiver: Receiver
) -> None:
    key = make_key("admin", rate=1e6, burst=10**6)  # type: ignore[operator]
    headers = {"x-api-key": key}
    settings = env(REDIS_URL=redis_url, RELAY_LINGER_MS="5")
    port, other = free_port(), free_port()
    followed = f"http://127.0.0.1:{port}"
    with working(settings, "--relay-only"), running([command(), "serve", "--port", str(other)], settings):
        backup = f"http://127.0.0.1:{other}"
        wait_http(f"{backup}/healthz")
        assert httpx.post(f"{backup}/v2/agents", json={"key": AGENT, "name": "l"}, headers=headers).status_code == 201
        with running([command(), "serve", "--port", str(port)], settings) as api:
            wait_http(f"{followed}/healthz", api)
            client_env = env(AGENT_SESSIONS_URL=followed, AGENT_SESSIONS_API_KEY=key)
            argv = [
                command(),
                "listen",
                "--forward-to",
                receiver.url,
                "--agent-key",
                AGENT,
                "--types",
                "session.created",
            ]
            with running(argv, client_env, stdout=subprocess.PIPE, text=True) as listening:
                printed = Lines(listening)
                printed.wait_for("following")
                secret = re.search(r"(whsec_\S+)", printed.text())
                assert secret is not None, printed.text()
                sessions = f"{backup}/v2/agents/{AGENT}/sessions"
                assert httpx.post(sessions, json={"key": "ase_1"}, headers=headers).status_code == 201
                (first,) = receiver.wait_for(1)
                sent = Webhook(secret.group(1)).verify(first.body, first.headers)
                assert sent["type"] == "session.created" and sent["data"]["session_key"] == "ase_1"
                assert first.headers["webhook-id"] == sent["data"]["event_id"]
                printed.wait_for("session.created agt_listen/ase_1 v1  -> 204")

                api.terminate()  # the followed API goes away...
                api.wait(30)
                assert httpx.post(sessions, json={"key": "ase_2"}, headers=headers).status_code == 201
                with running([command(), "serve", "--port", str(port)], settings) as again:  # ...and comes back
                    wait_http(f"{followed}/healthz", again)
                    printed.wait_for("(resumed)")
                    delivered = receiver.wait_for(2, timeout=30)
                    ids = [Webhook(secret.group(1)).verify(d.body, d.headers)["data"]["session_key"] for d in delivered]
                    assert ids == ["ase_1", "ase_2"]  # the one made while it was gone, and nothing twice
