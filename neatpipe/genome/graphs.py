"""Graph helpers over plain edge lists: what can be reached, a cycle if there is one, and a stable
topological order.

Genomes, drafts under repair, plans and pictures all keep their wiring as ``(source, target)`` pairs
of node keys; these functions work on such pairs and know nothing else about a pipeline (as
neat-python keeps its own in ``graphs.py``). They are iterative, so a deep graph meets no recursion
limit.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from neatpipe.genome.errors import GenomeError


def adjacency(edges: Iterable[tuple[int, int]], *, forward: bool = True) -> dict[int, list[int]]:
    """Each key's successors (``forward``) or predecessors, in edge order; every end is a key."""
    out: dict[int, list[int]] = {}
    for s, t in edges:
        a, b = (s, t) if forward else (t, s)
        out.setdefault(a, []).append(b)
        out.setdefault(b, [])
    return out


def reach(start: int, edges: Iterable[tuple[int, int]], *, forward: bool = True) -> set[int]:
    """``start`` and every key reachable from it along the edges (against them when not ``forward``)."""
    adj = adjacency(edges, forward=forward)
    seen, stack = {start}, [start]
    while stack:
        for nxt in adj.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def find_cycle(edges: Iterable[tuple[int, int]]) -> list[int] | None:
    """One cycle's keys in order (the search starts from the smallest key, so the answer is stable),
    or None when the edges form a DAG."""
    succ = adjacency(edges)
    state: dict[int, int] = {}  # 1 on the path, 2 done
    for root in sorted(succ):
        if root in state:
            continue
        path, iters = [root], [iter(succ[root])]
        state[root] = 1
        while path:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(succ[nxt]))
    return None


def topological_order(nodes: Iterable[int], edges: Iterable[tuple[int, int]]) -> list[int]:
    """``nodes`` in an order where every edge between them goes forward, ties by key so the order is
    stable; edges to other keys (the pins) are ignored. Raises ``GenomeError`` on a cycle."""
    keys = set(nodes)
    indeg = dict.fromkeys(keys, 0)
    succ: dict[int, list[int]] = {k: [] for k in keys}
    for s, t in edges:
        if s in keys and t in keys:
            succ[s].append(t)
            indeg[t] += 1
    heap = [k for k, d in indeg.items() if d == 0]
    heapq.heapify(heap)
    order = []
    while heap:
        k = heapq.heappop(heap)
        order.append(k)
        for t in succ[k]:
            indeg[t] -= 1
            if indeg[t] == 0:
                heapq.heappush(heap, t)
    if len(order) != len(keys):
        raise GenomeError("the graph has a cycle")
    return order
