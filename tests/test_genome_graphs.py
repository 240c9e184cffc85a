"""The graph helpers of neatpipe.genome.graphs agree with networkx on arbitrary small graphs."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neatpipe.genome import GenomeError
from neatpipe.genome.graphs import find_cycle, reach, topological_order

edge_lists = st.lists(st.tuples(st.integers(-2, 8), st.integers(-2, 8)), max_size=25)


@settings(max_examples=200, deadline=None)
@given(edge_lists, st.integers(-2, 8))
def test_reach_is_networkx_descendants_and_ancestors(edges: list[tuple[int, int]], start: int) -> None:
    graph = nx.DiGraph(edges)
    graph.add_node(start)
    assert reach(start, edges) == nx.descendants(graph, start) | {start}
    assert reach(start, edges, forward=False) == nx.ancestors(graph, start) | {start}


@settings(max_examples=200, deadline=None)
@given(edge_lists)
def test_find_cycle_finds_a_real_cycle_exactly_when_there_is_one(edges: list[tuple[int, int]]) -> None:
    cycle = find_cycle(edges)
    if nx.is_directed_acyclic_graph(nx.DiGraph(edges)):
        assert cycle is None
    else:
        assert cycle, "a cyclic graph has a cycle"
        ring = list(zip(cycle, [*cycle[1:], cycle[0]], strict=True))
        assert set(ring) <= set(edges)


@settings(max_examples=200, deadline=None)
@given(edge_lists)
def test_topological_order_is_the_smallest_key_first_order(edges: list[tuple[int, int]]) -> None:
    nodes = [k for k in range(0, 9)]  # keys -2 and -1 play the pins: edges to them are ignored
    inner = [(s, t) for s, t in edges if s >= 0 and t >= 0]
    graph = nx.DiGraph(inner)
    graph.add_nodes_from(nodes)
    if nx.is_directed_acyclic_graph(graph):
        assert topological_order(nodes, edges) == list(nx.lexicographical_topological_sort(graph))
    else:
        with pytest.raises(GenomeError, match="cycle"):
            topological_order(nodes, edges)
