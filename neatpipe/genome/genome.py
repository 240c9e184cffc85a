"""``PipelineGenome``: a NEAT genome whose phenotype is a code-generation pipeline.

It follows neat-python's custom-genome protocol (the methods ``neat.Population``,
``DefaultReproduction``, ``DefaultSpeciesSet`` and ``DefaultStagnation`` call), so a
``neat.Config`` with ``genome_type=PipelineGenome`` runs neat-python's own algorithm unchanged:
speciation by ``distance``, fitness sharing, stagnation, elitism and checkpoints.

Genes are frozen dataclasses held in two dicts, like neat-python's ``DefaultGenome``:
``nodes`` (key -> ``NodeGene``) and ``connections`` ((source, target) -> ``ConnectionGene``).
New node keys and connection innovation numbers come from neat-python's ``InnovationTracker``
(``config.innovation_tracker``), keyed by the structural edit, so the same edit made by two
genomes of one generation yields the same genes and lines up in crossover and distance.

Every genome this class produces (new, mutated or crossed over) is valid: mutations are edits that
keep the wiring rules, and crossover repairs the child, falling back to the fitter parent's
wiring when the mix cannot be repaired.
"""

from __future__ import annotations

import os
import random
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import IO, Any

import neat
from neat.innovation import InnovationTracker

from neatpipe.genome.canonical import Complexity, behaviour_hash, complexity
from neatpipe.genome.errors import GenomeError, Issue
from neatpipe.genome.genes import (
    ATTRIBUTE_FIELDS,
    OUTPUT,
    PROBLEM,
    ROLE_FIELDS,
    ConnectionGene,
    NodeGene,
    Role,
)
from neatpipe.genome.settings import GenomeSettings, PipelineGenomeConfig, write_neat_config
from neatpipe.genome.structure import Rules, count_roles, find_problems
from neatpipe.genome.summary import summary
from neatpipe.genome.surgery import (
    Alloc,
    Draft,
    add_analyzer,
    add_parallel_generator,
    enforce_limits,
    insert_stage,
    removable,
    remove_unit,
    repair,
)


class PipelineGenome:
    """A pipeline of model calls, program runs and selections, as NEAT genes.

    Plain, picklable data: a key, two dicts of frozen genes, a fitness and an optional
    human description (kept by graph files, not inherited).
    """

    # -- neat-python's config protocol ---------------------------------------------------------

    @classmethod
    def parse_config(cls, param_dict: Mapping[str, Any]) -> PipelineGenomeConfig:
        """The ``[PipelineGenome]`` section, typed and checked (see ``GenomeSettings``)."""
        return PipelineGenomeConfig(GenomeSettings.from_mapping(dict(param_dict)))

    @classmethod
    def write_config(cls, f: IO[str], config: PipelineGenomeConfig) -> None:
        config.settings.write(f)

    # -- construction --------------------------------------------------------------------------

    def __init__(self, key: int | None) -> None:
        self.key = key
        self.nodes: dict[int, NodeGene] = {}
        self.connections: dict[tuple[int, int], ConnectionGene] = {}
        self.fitness: float | None = None
        self.description: str = ""

    @classmethod
    def from_genes(
        cls,
        key: int | None,
        nodes: Iterable[NodeGene],
        connections: Iterable[ConnectionGene],
        fitness: float | None = None,
        description: str = "",
    ) -> PipelineGenome:
        """A genome holding exactly these genes (not checked: call ``check`` for that)."""
        genome = cls(key)
        genome.nodes = {g.key: g for g in nodes}
        genome.connections = {c.key: c for c in connections}
        genome.fitness = fitness
        genome.description = description
        return genome

    def copy(self, key: int | None = None) -> PipelineGenome:
        """The same genes (genes are immutable, so sharing them is safe) under ``key``."""
        return PipelineGenome.from_genes(
            self.key if key is None else key,
            self.nodes.values(),
            self.connections.values(),
            self.fitness,
            self.description,
        )

    def configure_new(self, config: PipelineGenomeConfig) -> None:
        """A solo generator with random model, prompt and temperature, followed by
        ``initial_stages`` refine stages. Every genome of the first generation has the same keys,
        so their differences are attributes only until structural mutations diverge them."""
        s = config.settings
        alloc = _alloc(config, self)
        d = Draft({}, {})
        gen = _model_gene(alloc(PROBLEM, OUTPUT, "seed:generator"), Role.GENERATOR, s)
        d.nodes[gen.key] = gen
        d.connect(PROBLEM, gen.key, alloc)
        d.connect(gen.key, OUTPUT, alloc)
        last = gen.key
        for _ in range(s.initial_stages):
            ex, ref = _new_stage(last, s, alloc)
            insert_stage(d, last, ex, ref, alloc)
            last = ref.key
        self._adopt(d)

    def configure_crossover(
        self,
        genome1: PipelineGenome,
        genome2: PipelineGenome,
        config: PipelineGenomeConfig,
        fitness_criterion: str | None = None,
    ) -> None:
        """The child of two parents, NEAT style: genes lined up by historical marking (node key,
        connection innovation), matching node genes mix their attributes field by field, and
        disjoint and excess genes come from the fitter parent, or from either at random when the
        fitnesses are equal. The mix is then repaired. ``fitness_criterion='min'`` makes the lower
        fitness the fitter one (neat-python passes its ``[NEAT] fitness_criterion``)."""
        first = _fitter(genome1.fitness, genome2.fitness, fitness_criterion)
        p1, p2 = (genome2, genome1) if first == 2 else (genome1, genome2)
        equal = first == 0 and genome1 is not genome2

        nodes: dict[int, NodeGene] = {}
        for key in sorted(set(p1.nodes) | set(p2.nodes)):
            n1, n2 = p1.nodes.get(key), p2.nodes.get(key)
            if n1 is not None and n2 is not None:
                nodes[key] = _cross_node(n1, n2) if n1.role == n2.role else n1
            elif n1 is not None and (not equal or random.random() < 0.5):
                nodes[key] = n1
            elif n2 is not None and equal and random.random() < 0.5:
                nodes[key] = n2
        by_innovation1 = {c.innovation: c for c in p1.connections.values()}
        by_innovation2 = {c.innovation: c for c in p2.connections.values()}
        edges: dict[tuple[int, int], int] = {}
        for innovation in sorted(set(by_innovation1) | set(by_innovation2)):
            c1, c2 = by_innovation1.get(innovation), by_innovation2.get(innovation)
            if c1 is not None and c2 is not None and c1.key == c2.key:
                chosen = c1
            elif c1 is not None and (not equal or random.random() < 0.5):
                chosen = c1
            elif c2 is not None and equal and random.random() < 0.5:
                chosen = c2
            else:
                continue
            if chosen.key not in edges:
                edges[chosen.key] = chosen.innovation

        s = config.settings
        rules = Rules.from_settings(s)
        alloc = _alloc(config, p1, p2)
        d = Draft(nodes, edges)
        repair(d, alloc)
        enforce_limits(d, rules, alloc)
        if find_problems(d.nodes, d.edges, rules):
            # Not repairable (no generator survived, say): the fitter parent's wiring, with the
            # attributes of the nodes both parents share still mixed.
            d = Draft(
                {
                    k: _cross_node(n, p2.nodes[k]) if k in p2.nodes and p2.nodes[k].role == n.role else n
                    for k, n in p1.nodes.items()
                },
                {c.key: c.innovation for c in p1.connections.values()},
            )
            if find_problems(d.nodes, d.edges, rules):
                d = Draft(p1.nodes, {c.key: c.innovation for c in p1.connections.values()})
        self._adopt(d)

    def renumbered(self, config: PipelineGenomeConfig, key: int | None = None) -> PipelineGenome:
        """The same pipeline with node keys and innovation numbers drawn from ``config``'s
        innovation tracker: how a genome read from a file joins a population (seeding a run with
        baselines) without its hand-picked keys clashing with evolved ones. Copies of one
        pipeline renumbered in the same generation get the same numbers, so they line up."""
        alloc = _alloc(config)
        tag = self.behaviour_hash()
        mapping = {PROBLEM: PROBLEM, OUTPUT: OUTPUT}
        for old in sorted(self.nodes):
            mapping[old] = alloc((tag, old), None, "renumber:node")
        nodes = [replace(g, key=mapping[k]) for k, g in self.nodes.items()]
        edges = [
            ConnectionGene((mapping[s], mapping[t]), alloc(mapping[s], mapping[t], "edge"))
            for (s, t) in sorted(self.connections, key=lambda e: self.connections[e].innovation)
        ]
        return PipelineGenome.from_genes(
            self.key if key is None else key, nodes, edges, None, self.description
        )

    # -- mutation ------------------------------------------------------------------------------

    def mutate(self, config: PipelineGenomeConfig) -> None:
        """Applies each mutation with its rate from ``[PipelineGenome]``: structural ones (add a
        refine stage, add an analyzer, add a parallel generator, remove a node or stage) at most
        once each, attribute ones (model, prompt, temperature, iterations, early stopping) to
        each node they apply to. A structural edit that would break a limit is skipped."""
        s = config.settings
        rules = Rules.from_settings(s)
        alloc = _alloc(config, self)
        before = Draft(self.nodes, {c.key: c.innovation for c in self.connections.values()})
        d = Draft(before.nodes, before.edges)
        if random.random() < s.add_stage_rate:
            _mutate_add_stage(d, s, alloc)
        if random.random() < s.add_analyzer_rate:
            _mutate_add_analyzer(d, s, alloc)
        if random.random() < s.add_generator_rate:
            _mutate_add_generator(d, s, alloc)
        if random.random() < s.remove_rate:
            units = removable(d)
            if units:
                remove_unit(d, random.choice(units), alloc)
        enforce_limits(d, rules, alloc)
        for key in sorted(d.nodes):
            d.nodes[key] = _mutate_attributes(d.nodes[key], s)
        problems = find_problems(d.nodes, d.edges, rules)
        if problems:
            warnings.warn(
                f"mutation of genome {self.key} produced an invalid pipeline and was undone: {problems[0]}",
                RuntimeWarning,
                stacklevel=2,
            )
            d = before
        self._adopt(d)

    # -- speciation and size -------------------------------------------------------------------

    def distance(self, other: PipelineGenome, config: PipelineGenomeConfig) -> float:
        """NEAT's compatibility distance, ``(c_excess * E + c_disjoint * D) / N + c_attribute * W``.

        E and D count excess and disjoint genes (node genes by key, connection genes by
        innovation number; excess = beyond the other genome's highest marking), N is the gene
        count of the larger genome, as in the NEAT paper, so one added stage weighs less in a big
        pipeline than in a solo generator. W is the mean attribute difference of matching node
        genes, where a model mismatch weighs ``compatibility_model_weight`` and every other field
        at most 1."""
        s = config.settings
        excess = disjoint = 0
        for mine, theirs in (
            (set(self.nodes), set(other.nodes)),
            (
                {c.innovation for c in self.connections.values()},
                {c.innovation for c in other.connections.values()},
            ),
        ):
            e, dj = _excess_disjoint(mine, theirs)
            excess += e
            disjoint += dj
        genes = max(len(self.nodes) + len(self.connections), len(other.nodes) + len(other.connections), 1)
        matching = sorted(set(self.nodes) & set(other.nodes))
        attribute = (
            sum(_attribute_distance(self.nodes[k], other.nodes[k], s) for k in matching) / len(matching)
            if matching
            else 0.0
        )
        structural = (
            s.compatibility_excess_coefficient * excess + s.compatibility_disjoint_coefficient * disjoint
        )
        return structural / genes + s.compatibility_attribute_coefficient * attribute

    def size(self) -> tuple[int, int]:
        """(nodes, enabled connections), as neat-python's reporters expect."""
        return len(self.nodes), len(self.connections)

    def complexity(self) -> Complexity:
        """Nodes, edges, model-calling nodes and worst-case model calls and program runs per problem."""
        return complexity(self.nodes, self.connections)

    def behaviour_hash(self) -> str:
        """Equal for genomes that describe the same pipeline, whatever their keys and innovations."""
        return behaviour_hash(self.nodes, self.connections)

    # -- validity ------------------------------------------------------------------------------

    def problems(self, rules: Rules | GenomeSettings | None = None) -> list[Issue]:
        if isinstance(rules, GenomeSettings):
            rules = Rules.from_settings(rules)
        out = find_problems(self.nodes, self.connections, rules)
        for key, c in self.connections.items():
            if key != c.key:
                out.append(Issue(f"connection {key}", f"gene key {c.key} differs from its dict key"))
        return out

    def check(self, rules: Rules | GenomeSettings | None = None) -> None:
        """Raises ``GenomeError`` naming every node, edge or field that breaks a rule."""
        problems = self.problems(rules)
        if problems:
            raise GenomeError(problems)

    def roles(self) -> dict[Role, int]:
        return count_roles(self.nodes)

    def __str__(self) -> str:
        return summary(self)

    def __repr__(self) -> str:
        n, e = self.size()
        return f"PipelineGenome(key={self.key!r}, nodes={n}, connections={e}, fitness={self.fitness!r})"

    # -- internals -----------------------------------------------------------------------------

    def _adopt(self, d: Draft) -> None:
        self.nodes = dict(sorted(d.nodes.items()))
        self.connections = {k: ConnectionGene(k, i) for k, i in sorted(d.edges.items(), key=lambda kv: kv[1])}


# -- helpers ------------------------------------------------------------------------------------


def _alloc(config: PipelineGenomeConfig, *genomes: PipelineGenome) -> Alloc:
    """neat-python's tracker as an ``Alloc``. Outside a Population (tests, file tools) the config
    gets a tracker of its own; its counter is moved past every key and innovation the genomes
    already use, so a genome read from a file never gets a clashing new key."""
    tracker = getattr(config, "innovation_tracker", None)
    if tracker is None:
        tracker = config.innovation_tracker = InnovationTracker()
    top = 0
    for g in genomes:
        top = max(
            top, max(g.nodes, default=0), max((c.innovation for c in g.connections.values()), default=0)
        )
    if tracker.global_counter < top:
        tracker.global_counter = top
    return tracker.get_innovation_number


def _fitter(f1: float | None, f2: float | None, criterion: str | None) -> int:
    """1 or 2 for the fitter parent, 0 when equal or unknown."""
    if f1 is None or f2 is None or f1 == f2:
        return 0
    lower_is_better = criterion == "min"
    return 1 if (f1 < f2) == lower_is_better else 2


def _cross_node(n1: NodeGene, n2: NodeGene) -> NodeGene:
    """Each attribute of the role from either parent at random."""
    changes = {f: (getattr(n1, f) if random.random() < 0.5 else getattr(n2, f)) for f in ROLE_FIELDS[n1.role]}
    return replace(n1, **changes)


def _clip_temperature(t: float, s: GenomeSettings) -> float:
    return round(min(s.temperature_max, max(s.temperature_min, t)), 3)


def _model_gene(key: int, role: Role, s: GenomeSettings) -> NodeGene:
    gene = NodeGene(
        key=key,
        role=role,
        model=random.choice(s.models),
        prompt=random.randrange(s.prompt_pool_size(role)),
        temperature=_clip_temperature(random.gauss(s.temperature_init, s.temperature_sigma), s),
        max_tokens=s.max_tokens(role),
    )
    if role == Role.REFINER:
        gene = replace(
            gene, iterations=random.randint(s.iterations_min, s.iterations_max), early_stop=s.early_stop_init
        )
    return gene


def _new_stage(producer: int, s: GenomeSettings, alloc: Alloc) -> tuple[NodeGene, NodeGene]:
    executor = NodeGene(
        key=alloc(producer, None, "add_stage:executor"),
        role=Role.EXECUTOR,
        feedback=s.executor_feedback,
        time_limit=s.executor_time_limit,
    )
    refiner = _model_gene(alloc(producer, None, "add_stage:refiner"), Role.REFINER, s)
    return executor, refiner


def _mutate_add_stage(d: Draft, s: GenomeSettings, alloc: Alloc) -> None:
    if len(d.of_role(Role.REFINER)) >= s.max_stages or len(d.nodes) + 2 > s.max_nodes:
        return
    producer = random.choice(d.candidates())
    executor, refiner = _new_stage(producer, s, alloc)
    if executor.key in d.nodes or refiner.key in d.nodes:  # the same edit twice in one generation
        return
    insert_stage(d, producer, executor, refiner, alloc)


def _mutate_add_analyzer(d: Draft, s: GenomeSettings, alloc: Alloc) -> None:
    open_stages = [r for r in d.of_role(Role.REFINER) if d.stage(r)[1] is None]
    if not open_stages or len(d.nodes) + 1 > s.max_nodes:
        return
    refiner = random.choice(open_stages)
    analyzer = _model_gene(alloc(refiner, None, "add_analyzer"), Role.ANALYZER, s)
    if analyzer.key not in d.nodes:
        add_analyzer(d, refiner, analyzer, alloc)


def _mutate_add_generator(d: Draft, s: GenomeSettings, alloc: Alloc) -> None:
    if len(d.of_role(Role.GENERATOR)) >= s.max_generators:
        return
    room = s.max_nodes - len(d.nodes)
    targets = [k for k in d.of_role(Role.SELECTOR) if room >= 1]
    targets += [
        k
        for k in d.of_role(Role.GENERATOR)
        if room >= 2 and not any(d.role(t) == Role.SELECTOR for t in d.outputs(k))
    ]
    if not targets:
        return
    target = random.choice(sorted(targets))
    if d.role(target) == Role.GENERATOR:
        template: NodeGene | None = d.nodes[target]
    else:
        siblings = [k for k in d.inputs(target) if d.role(k) == Role.GENERATOR]
        template = d.nodes[random.choice(siblings)] if siblings else None
    key = alloc(target, None, "add_generator")
    generator = template.with_key(key) if template else _model_gene(key, Role.GENERATOR, s)
    selector = None
    if d.role(target) == Role.GENERATOR:
        selector = NodeGene(
            key=alloc(target, None, "add_selector"), role=Role.SELECTOR, strategy=s.selector_strategy
        )
        if selector.key in d.nodes:
            return
    if generator.key in d.nodes:
        return
    add_parallel_generator(d, target, generator, selector, alloc)


def _mutate_attributes(gene: NodeGene, s: GenomeSettings) -> NodeGene:
    if not gene.calls_model:
        return gene
    changes: dict[str, Any] = {}
    if random.random() < s.model_swap_rate:
        others = [m for m in s.models if m != gene.model]
        if others:
            changes["model"] = random.choice(others)
    if random.random() < s.prompt_change_rate:
        others_p = [i for i in range(s.prompt_pool_size(gene.role)) if i != gene.prompt]
        if others_p:
            changes["prompt"] = random.choice(others_p)
    if random.random() < s.temperature_perturb_rate:
        changes["temperature"] = _clip_temperature(
            (gene.temperature or 0.0) + random.gauss(0.0, s.temperature_sigma), s
        )
    if gene.role == Role.REFINER:
        if random.random() < s.iterations_change_rate and s.iterations_min < s.iterations_max:
            step = random.choice((-1, 1))
            current = gene.iterations or s.iterations_min
            if not s.iterations_min <= current + step <= s.iterations_max:
                step = -step
            changes["iterations"] = min(s.iterations_max, max(s.iterations_min, current + step))
        if s.early_stop_mutable and random.random() < s.early_stop_toggle_rate:
            changes["early_stop"] = not gene.early_stop
    return replace(gene, **changes) if changes else gene


def _excess_disjoint(a: set[int], b: set[int]) -> tuple[int, int]:
    """(excess, disjoint) genes between two sets of historical markings."""
    only = a ^ b
    if not only:
        return 0, 0
    cut = min(max(a, default=0), max(b, default=0))
    excess = sum(1 for m in only if m > cut)
    return excess, len(only) - excess


def _attribute_distance(n1: NodeGene, n2: NodeGene, s: GenomeSettings) -> float:
    """How differently two matching node genes behave: model mismatch weighs
    ``compatibility_model_weight``, every other field contributes at most 1."""
    if n1.role != n2.role:
        return s.compatibility_model_weight + len(ATTRIBUTE_FIELDS)
    total = 0.0
    temp_span = s.temperature_max - s.temperature_min
    iter_span = s.iterations_max - s.iterations_min
    for f in ROLE_FIELDS[n1.role]:
        a, b = getattr(n1, f), getattr(n2, f)
        if a == b:
            continue
        if f == "model":
            total += s.compatibility_model_weight
        elif f == "temperature":
            total += min(1.0, abs(a - b) / temp_span) if temp_span > 0 else 1.0
        elif f == "iterations":
            total += min(1.0, abs(a - b) / iter_span) if iter_span > 0 else 1.0
        elif f in ("max_tokens", "time_limit"):
            total += min(1.0, abs(a - b) / max(abs(a), abs(b)))
        else:  # prompt, early_stop, feedback, strategy: categorical
            total += 1.0
    return total


def make_neat_config(
    genome: Mapping[str, Any] | GenomeSettings, neat_settings: Mapping[str, Mapping[str, Any]] | None = None
) -> neat.Config:
    """A ``neat.Config`` using ``PipelineGenome`` and neat-python's default reproduction, species set
    and stagnation, built from dictionaries. neat-python only reads files, so this writes a
    temporary one (:func:`~neatpipe.genome.settings.write_neat_config`) and removes it."""
    handle, path = tempfile.mkstemp(prefix="neatpipe-", suffix=".ini")
    os.close(handle)
    try:
        write_neat_config(path, genome, neat_settings)
        return neat.Config(
            PipelineGenome, neat.DefaultReproduction, neat.DefaultSpeciesSet, neat.DefaultStagnation, path
        )
    finally:
        os.unlink(path)
