"""`make check`: nothing outside ``agent_sessions.redis`` spells a Redis key or runs a script by hand.

Looks at every string literal (f-strings included) in ``src`` and ``bench`` outside the Redis package
for the key prefix, and at every name for ``evalsha``, ``register_script`` and ``script_load``. Exits
non-zero and prints each place found. ``bench/baseline_app.py`` is exempt: it is the yardstick, kept
as it was given, and owns no key of ours.
"""

from __future__ import annotations

import io
import re
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src/agent_sessions/redis"
EXEMPT = {ROOT / "bench/baseline_app.py"}
KEY_LITERAL = re.compile(r"^[rRbBuUfF]*('''|\"\"\"|'|\")as:")
SCRIPT_CALLS = {"evalsha", "register_script", "script_load", "EVALSHA"}


# Python 3.12+ splits an f-string into tokens (3.11 keeps it one STRING): rejoin its start and text.
FSTRING_START = getattr(tokenize, "FSTRING_START", None)
FSTRING_MIDDLE = getattr(tokenize, "FSTRING_MIDDLE", None)


def violations(path: Path) -> list[str]:
    found = []
    tokens = list(tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline))
    for token, following in zip(tokens, [*tokens[1:], None], strict=True):
        where = f"{path.relative_to(ROOT)}:{token.start[0]}"
        text = token.string
        if token.type == FSTRING_START and following is not None and following.type == FSTRING_MIDDLE:
            text += following.string
        if token.type in (tokenize.STRING, FSTRING_START) and KEY_LITERAL.match(text):
            found.append(f"{where}: a Redis key literal {text}")
        elif text.strip("'\"") in SCRIPT_CALLS and token.type in (tokenize.NAME, tokenize.STRING):
            found.append(f"{where}: {text} outside the Redis package")
    return found


def main() -> int:
    files = [
        path
        for folder in (ROOT / "src", ROOT / "bench")
        for path in sorted(folder.rglob("*.py"))
        if PACKAGE not in path.parents and path not in EXEMPT
    ]
    found = [line for path in files for line in violations(path)]
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} place(s) outside agent_sessions/redis speak Redis directly", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
