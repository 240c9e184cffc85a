"""One cost value type: added field by field, read off any record, summed over many."""

from __future__ import annotations

from dataclasses import dataclass

from neatpipe.costs import Cost


@dataclass
class Record:
    prompt_tokens: int
    completion_tokens: int
    model_calls: int = 1


def test_costs_add_field_by_field_and_read_any_record() -> None:
    a, b = Cost(10, 5, 1, 0), Cost(3, 2, 2, 1)
    assert a + b == Cost(13, 7, 3, 1) and (a + b).tokens == 20
    assert Cost.of(Record(7, 4)) == Cost(7, 4, 1, 0)  # a record without cache hits counts 0 of them
    assert Cost.of({"prompt_tokens": 2, "cache_hits": 3}) == Cost(2, 0, 0, 3)
    assert Cost.total([Record(1, 1), Record(2, 3, 0), {"model_calls": 4}]) == Cost(3, 4, 5, 0)
    assert Cost.total([]) == Cost()
    assert Cost(1, 2, 3, 4).fields() == {
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "model_calls": 3,
        "cache_hits": 4,
    }
