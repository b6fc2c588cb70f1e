"""Request and event ids: unique, not secret.

An id only has to differ from every other one (request ids in logs, event ids for consumers' dedupe),
so each process draws 80 random bits once (again after a fork) and counts from there: no system call
per id. ``secrets.token_hex`` reads the kernel's random source on every call, which showed up as 4% of
a PATCH in the profile.
"""

from __future__ import annotations

import itertools
import os


class _Ids:
    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self.prefix = os.urandom(10).hex()
        self.counter = itertools.count()

    def next(self, kind: str) -> str:
        return f"{kind}_{self.prefix}{next(self.counter):012x}"


_ids = _Ids()
os.register_at_fork(after_in_child=_ids.reseed)


def new_id(kind: str) -> str:
    """``<kind>_`` + 32 hex digits, unique across processes and restarts (80 random bits + a counter)."""
    return _ids.next(kind)
