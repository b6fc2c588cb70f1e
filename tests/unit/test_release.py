"""The release is named once and said the same everywhere: the package's version, the changelog's
newest release, and a README that stays a short front door whose links all lead somewhere."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from agent_sessions import __version__

ROOT = Path(__file__).resolve().parents[2]


def test_the_version_is_the_changelogs_newest_release() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert project["version"] == __version__ == releases[0]
    assert releases == sorted(releases, key=lambda v: tuple(map(int, v.split("."))), reverse=True)


def test_the_readme_is_short_and_every_link_in_it_resolves() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if not link.startswith(("http://", "https://"))]
    assert local and all((ROOT / link).exists() for link in local), [x for x in local if not (ROOT / x).exists()]
