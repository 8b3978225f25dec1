"""Named steps where the tests kill a writer, to prove a crash at any of them leaves a sound store.

OVERLAYKIT_CRASH_AT=<step> ends the process with os._exit(137) (what kill -9 leaves: no
finally, no atexit, no flush) the first time it reaches <step>; <step>:<n> the n-th time.
Unset, as it always is outside the tests, `reached` is one dictionary lookup.
"""

import os

_counts: dict[str, int] = {}


def reached(step: str) -> None:
    """Die here if the tests asked for a crash at this step (and this is the asked-for time)."""
    wanted = os.environ.get("OVERLAYKIT_CRASH_AT")
    if not wanted:
        return
    name, _, nth = wanted.partition(":")
    if name != step:
        return
    _counts[step] = _counts.get(step, 0) + 1
    if _counts[step] == int(nth or 1):
        os._exit(137)
