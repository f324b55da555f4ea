"""Back-pressure: which priority lanes a queue's consumer stops fetching, and when again.

A consumer counts, per lane, the work orders it received that have not finished
(waiting or running). When the total reaches ``limit`` (``TASKSTREAM_EXECUTOR_MAX_BUFFERED``)
it pauses the partitions of every lane holding at least its *share* of the buffer
(``limit / 3``); a paused lane resumes when the total falls below half the limit, or
when the lane itself falls below half its share.

So a backlog of low-priority orders fills the buffer and pauses only the low lane,
while the high lane, holding less than its share, keeps being fetched: a high order
produced behind 5,000 low ones reaches the lanes at once and takes the next free slot.
The buffer stays bounded: at most ``limit`` plus a share per other lane (plus one
fetched batch).

Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

from taskstream.schemas import Priority

__all__ = ["lane_share", "paused_lanes"]


def lane_share(limit: int) -> int:
    """What a lane may always hold, however full the buffer is."""
    return max(1, limit // 3)


def paused_lanes(
    buffered: Mapping[Priority, int], paused: Set[Priority], limit: int
) -> set[Priority]:
    """The lanes to keep paused, given the unfinished counts and those paused now."""
    total = sum(buffered.values())
    share = lane_share(limit)
    result: set[Priority] = set()
    for priority in Priority:
        count = buffered.get(priority, 0)
        if priority in paused:
            if total >= limit // 2 and count >= share // 2 and count > 0:
                result.add(priority)
        elif total >= limit and count >= share:
            result.add(priority)
    return result
