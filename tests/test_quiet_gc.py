"""``jobs.quiet_gc``: a job runs with fewer collections and leaves the collector as it found it."""

from __future__ import annotations

import gc

from totask_manifest._jobs.quiet_gc import fewer_collections


def test_settings_come_back_after_nested_periods_and_cycles_are_still_collected():
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    with fewer_collections(threshold=50_000):
        assert gc.get_threshold()[0] == max(50_000, before[0])
        assert gc.get_freeze_count() > frozen  # the startup heap is out of the collector's sight
        with fewer_collections():
            assert gc.get_threshold()[0] == max(50_000, before[0])
        assert gc.get_threshold()[0] == max(50_000, before[0])  # the inner period does not end the outer
        cycle: list = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1  # a cycle made during the job is still garbage
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen


def test_objects_frozen_by_the_caller_stay_frozen():
    # A marker, not the freeze count: frozen objects freed by another thread (one left running by
    # an earlier test) lower the count while nothing was thawed. A thawed marker would be back in
    # the collector's generations, where gc.get_objects() lists it.
    marker: list = [[]]
    gc.freeze()
    try:
        assert not any(obj is marker for obj in gc.get_objects())
        with fewer_collections():
            pass
        assert gc.get_freeze_count() > 0
        assert not any(obj is marker for obj in gc.get_objects())
    finally:
        gc.unfreeze()
    assert any(obj is marker for obj in gc.get_objects())  # the check above can fail


def test_collection_switched_off_by_threshold_zero_stays_off():
    before = gc.get_threshold()
    gc.set_threshold(0)
    try:
        with fewer_collections():
            assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)
