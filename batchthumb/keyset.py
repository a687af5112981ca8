"""Finding the plans a large job lists twice, in 8 bytes an item.

A Python set of a million keys costs some 70 MB even when the keys are 8-byte digests (an int
object and a hash-table slot each). Here each key's digest goes into one of 256 flat arrays,
and the few digests that repeat are found bucket by bucket once every key is in. A repeated
digest only says where to look: the caller compares the actual keys of those few items.
"""

from __future__ import annotations

from array import array

_BUCKETS = 256


def key_hash(key: tuple[str, str]) -> int:
    """A 64-bit digest of an item's key, stable within one process (not across processes)."""
    return hash(key)


class KeyDigests:
    """The digests of the keys seen so far; which of them repeat."""

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets = [array("q") for _ in range(_BUCKETS)]

    def add(self, key: tuple[str, str]) -> None:
        """Count one item's key."""
        digest = key_hash(key)
        self._buckets[digest % _BUCKETS].append(digest)

    def repeated(self) -> set[int]:
        """The digests added more than once: usually none, so usually no closer look."""
        found: set[int] = set()
        for bucket in self._buckets:
            if len(set(bucket)) == len(bucket):
                continue
            seen: set[int] = set()
            for digest in bucket:
                if digest in seen:
                    found.add(digest)
                seen.add(digest)
        return found
