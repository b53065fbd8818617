"""Planning a batch's calls: which objects share a call, and which calls must go one after
the other. The objects of one profile stay in one lane, oldest first (the service keeps the
newest value by source timestamp, but calls in flight at once could still race); lanes that
share no profile go at once."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from chalicelib.events import Event

MAX_ITEMS_PER_CALL: Final = 10  # BatchPutProfileObject's Items (botocore's model)


@dataclass
class Item:
    """One event's object, ready to send."""

    index: int  # in the batch
    event: Event
    body: str


class DisjointSets:
    """Union-find over 0..size-1: which members end up together once joined in pairs."""

    def __init__(self, size: int) -> None:
        self._parent = list(range(size))

    def root(self, member: int) -> int:
        parent = self._parent
        while parent[member] != member:
            parent[member] = parent[parent[member]]  # path halving
            member = parent[member]
        return member

    def join(self, first: int, second: int) -> None:
        self._parent[self.root(first)] = self.root(second)

    def groups(self) -> list[list[int]]:
        """The members of each set, each set in member order, sets in order of their first
        member."""
        found: dict[int, list[int]] = {}
        for member in range(len(self._parent)):
            found.setdefault(self.root(member), []).append(member)
        return list(found.values())


def profile_groups(events: Sequence[Event]) -> list[list[int]]:
    """Indexes of the events that may write one profile, oldest first in each group: the
    same endpoint id, or the same user id (a second PROFILE key), joined transitively."""
    sets = DisjointSets(len(events))
    first: dict[tuple[str, str], int] = {}
    for index, event in enumerate(events):
        keys = [("endpoint", event.endpoint_id)]
        if event.profile.user_id:
            keys.append(("user", event.profile.user_id))
        for key in keys:
            if key in first:
                sets.join(index, first[key])
            else:
                first[key] = index
    # ISO 8601 UTC with milliseconds sorts as text; equal times keep the batch's order.
    return [sorted(members, key=lambda i: (events[i].timestamp, i)) for members in sets.groups()]


def plan_calls(items: Sequence[Item]) -> list[list[list[Item]]]:
    """The calls for `items`, as lanes: each lane's calls go one after the other, lanes go
    concurrently. As few calls as the item limit allows (ceil(n / 10)); a profile's objects
    share one call when they fit (best fit, largest profiles first), and when a profile
    needs more than one call, those calls are in one lane and its objects go oldest first
    across them."""
    if not items:
        return []
    groups = [[items[i] for i in group] for group in profile_groups([i.event for i in items])]
    free = [MAX_ITEMS_PER_CALL] * math.ceil(len(items) / MAX_ITEMS_PER_CALL)
    placed: list[tuple[list[Item], list[tuple[int, int]]]] = []  # group, [(call, count)]
    for group in sorted(groups, key=lambda g: (-len(g), g[0].index)):
        fitting = [c for c in range(len(free)) if free[c] >= len(group)]
        parts: list[tuple[int, int]] = []
        if fitting:
            best = min(fitting, key=lambda c: (free[c], c))
            parts.append((best, len(group)))
            free[best] -= len(group)
        else:
            left = len(group)
            while left:
                roomiest = max(range(len(free)), key=lambda c: (free[c], -c))
                taken = min(left, free[roomiest])
                parts.append((roomiest, taken))
                free[roomiest] -= taken
                left -= taken
        placed.append((group, sorted(parts)))
    # Lanes: calls that share a profile. In a lane, calls go in index order, and a profile's
    # objects are dealt to its calls in that order, oldest first.
    lanes = DisjointSets(len(free))
    calls: list[list[Item]] = [[] for _ in free]
    for group, parts in placed:
        position = 0
        for call, taken in parts:
            calls[call].extend(group[position : position + taken])
            position += taken
            lanes.join(call, parts[0][0])
    return [
        in_lane
        for lane in lanes.groups()
        if (in_lane := [calls[call] for call in lane if calls[call]])
    ]
