"""Deadlines that scale with how loaded the machine is, for tests that time a decode or a shutdown.

A test that gives a file one second to decode passes on an idle machine and fails on one running the
suite on both cores, where a sound video can take longer. `SLOWDOWN` is the 1-minute load per CPU when
the tests start (at least 1, rounded up), or EMBEDPIPE_TEST_SLOWDOWN; each deadline is multiplied by it.
"""

from __future__ import annotations

import math
import os


def slowdown() -> int:
    if given := os.environ.get("EMBEDPIPE_TEST_SLOWDOWN"):
        return max(1, int(given))
    return max(1, math.ceil(os.getloadavg()[0] / (os.cpu_count() or 1)))


SLOWDOWN = slowdown()


def scaled(seconds: float) -> float:
    return seconds * SLOWDOWN
