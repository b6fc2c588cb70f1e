"""Child processes that never outlive the process that started them.

``die_with_parent`` is a ``preexec_fn``: on Linux the kernel sends the child SIGTERM when its parent
dies, however it dies (SIGKILL included), so a killed ``agent-sessions dev`` or ``worker`` leaves no
Redis or Dramatiq process behind. Elsewhere it does nothing (the graceful paths still stop children).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
