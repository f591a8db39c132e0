"""toy_problems.memo.BatchMemo: each request measures only the keys the memo lacks, in one call."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toy_problems.memo import BatchMemo


@given(st.lists(st.lists(st.integers(0, 20), max_size=12), max_size=8), st.integers(1, 30))
@settings(max_examples=60, deadline=None)
def test_values_are_the_measured_ones_and_only_missing_keys_are_measured_once_per_request(requests, size):
    memo, calls = BatchMemo(size=size), []

    def measure(keys):
        calls.append(list(keys))
        return [key * key for key in keys]

    held: list[int] = []  # the memo's keys, least recently used first, as its contract says
    for keys in requests:
        before = len(calls)
        assert memo.values(keys, measure) == [key * key for key in keys]
        missing = list(dict.fromkeys(key for key in keys if key not in held))
        assert calls[before:] == ([missing] if missing else [])
        for key in keys:
            if key in held:
                held.remove(key)
        held += [key for key in dict.fromkeys(keys) if key not in held]
        held = held[-size:]


def test_a_measure_that_returns_the_wrong_number_of_values_is_refused_and_nothing_is_kept():
    memo = BatchMemo()
    with pytest.raises(ValueError, match="2 values for 3 keys"):
        memo.values([1, 2, 3], lambda keys: [0, 0])
    assert memo.values([1], lambda keys: ["fresh"]) == ["fresh"]
