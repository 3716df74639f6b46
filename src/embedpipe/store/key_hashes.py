"""Keys that occur twice among millions, found in 8 bytes a key instead of a set of the keys themselves
(~100 bytes a key: a gigabyte at 10^7). Each key's hash (Python's own: stable within one process) goes
into an int64 array as the keys stream past; the sorted hashes show which repeat, and only keys with a
repeated hash are compared as text, on a second pass over the keys."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np


def key_hashes(keys: list[str]) -> np.ndarray:
    return np.fromiter(map(hash, keys), np.int64, len(keys))


def repeated_keys(hashes: list[np.ndarray], keys: Iterable[str]) -> Iterator[str]:
    """Each occurrence after the first of a key, in order. `keys`: the same keys again, in the order
    their hashes were taken (read only when some hash repeats)."""
    ordered = np.sort(np.concatenate(hashes)) if hashes else np.empty(0, np.int64)
    repeated = set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())
    if not repeated:
        return
    seen: set[str] = set()
    for key in keys:
        if hash(key) in repeated:
            if key in seen:
                yield key
            seen.add(key)
