"""Key digests: the repeated keys of a large job found in 8 bytes an item."""

from __future__ import annotations

from batchthumb.keyset import KeyDigests, key_hash


def test_only_the_keys_added_twice_are_repeated() -> None:
    """Among thousands of distinct keys, exactly the two added again come back."""
    digests = KeyDigests()
    keys = [("p", f"{n:032x}") for n in range(5000)]
    for key in keys:
        digests.add(key)
    digests.add(keys[7])
    digests.add(keys[4999])
    digests.add(keys[7])
    assert digests.repeated() == {key_hash(keys[7]), key_hash(keys[4999])}


def test_the_same_plan_in_another_project_is_another_key() -> None:
    """Identity is (project_id, plan_id): one plan id in two projects is not a repeat."""
    digests = KeyDigests()
    digests.add(("a", "plan"))
    digests.add(("b", "plan"))
    assert digests.repeated() == set()
