"""docker-compose.yml and the Dockerfile, checked without a Docker engine: the file parses, every
service command is a real `agent-sessions` command, and every variable it sets is a real setting."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent_sessions.cli import _parser
from agent_sessions.config import ENV_VARS, Settings

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("api", "worker")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def interpolate_defaults(value: str) -> str:
    """${VAR:-default} -> default (what compose uses when VAR is unset)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"redis", "api", "worker", "rabbitmq"}
    assert "--appendonly yes" in services["redis"]["command"]
    assert "--maxmemory-policy noeviction" in services["redis"]["command"]
    assert services["rabbitmq"]["profiles"] == ["rabbitmq"]


def test_what_an_operator_expects(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
        assert "healthcheck" in service and "stop_grace_period" in service, name
        if "image" in service and name not in APP_SERVICES:
            assert re.fullmatch(r"[a-z]+:\d+\.\d+\.\d+(-[a-z]+)?", service["image"]), service["image"]
    assert int(services["worker"]["stop_grace_period"].rstrip("s")) > 30  # Dramatiq's 30 s shutdown, and more
    for name in APP_SERVICES:  # RabbitMQ, when its profile is on, is waited for
        assert services[name]["depends_on"]["rabbitmq"] == {"condition": "service_healthy", "required": False}
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}
    published = [port for service in services.values() for port in service.get("ports", [])]
    assert published == ["8000:8000"]  # the API only: no metrics, no broker console on the host
    worker_argv = shlex.split(services["worker"]["command"])
    health_file = worker_argv[worker_argv.index("--health-file") + 1]
    assert health_file in " ".join(services["worker"]["healthcheck"]["test"])


def test_the_image_pins_its_base_and_every_runtime_dependency() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:\d+\.\d+\.\d+-slim-\w+$", dockerfile, re.M)
    assert "-c constraints.txt" in dockerfile
    pins = dict(
        line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines() if line and line[0] != "#"
    )
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in constraints.txt"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_commands_are_real_cli_commands(compose: dict[str, Any], service: str) -> None:
    argv = shlex.split(compose["services"][service]["command"])
    assert argv[0] == "agent-sessions"
    args = _parser().parse_args(argv[1:])  # exits (fails the test) on anything it does not know
    assert args.command == {"api": "serve", "worker": "worker"}[service]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_environment_is_made_of_real_settings(compose: dict[str, Any], service: str) -> None:
    environment: dict[str, str] = compose["services"][service]["environment"]
    assert set(environment) <= set(ENV_VARS)
    defaults = {k: interpolate_defaults(str(v)) for k, v in environment.items()}
    settings = Settings.from_env(defaults)  # the defaults are valid settings
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.effective_broker_url == "redis://redis:6379/0"
    amqp = Settings.from_env({**defaults, "BROKER_URL": "amqp://guest:guest@rabbitmq:5672/%2F"})
    assert amqp.effective_broker_url.startswith("amqp://")  # type: ignore[union-attr]


def test_dockerfile_installs_the_package_and_runs_a_real_command() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install" in dockerfile
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.M)
    assert cmd
    argv = yaml.safe_load(cmd.group(1))
    assert argv[0] == "agent-sessions"
    _parser().parse_args(argv[1:])
