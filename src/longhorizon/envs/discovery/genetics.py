"""The Alien Genetics Laboratory world of `longhorizon/Discovery-v0` (UltraHorizon's bio env, arXiv 2509.21766).

Organisms are triploid: 3 alleles per gene, for `n_rules - 1` genes (color,
size, shell; alleles C1-C3, S1-S3, H1-H3). In a cross, each offspring gets 2
alleles of every gene from one parent and 1 from the other (which parent gives
2 is a coin flip; the alleles are drawn without replacement): the paper's
unequal 1+2 segregation. Hidden rules: per gene a dominance order (the
phenotype shows the trait of the most dominant allele present), and one lethal
combination: a multiset of 3 alleles of one gene, either {x, x, y} or the three
different alleles; offspring with it die and are counted as non-viable. Each
trait reading of a new offspring is wrong with probability `noise` (replaced by
one of the two other traits). The stock holds known pure-breeding lines: a
reference line with allele 1 in every gene and, per gene, lines homozygous for
allele 2 or 3 in that gene only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from longhorizon.envs.core.tools import ToolCall, ToolError, dumps, parse_results, tool_schema

GENES: list[tuple[str, str, list[str]]] = [
    ("color", "C", ["red", "blue", "white"]),
    ("size", "S", ["large", "medium", "small"]),
    ("shell", "H", ["spiky", "smooth", "ridged"]),
]
OFFSPRING_PER_CROSS = 20
PAIRS = ((1, 2), (1, 3), (2, 3))
LIST_LIMIT = 50
Genotype = dict[str, tuple[str, ...]]  # gene -> its 3 alleles, sorted

COMMIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": '{"dominance": {gene: [3 alleles, most dominant first]}, "lethal": [3 alleles of one gene]}',
}


def alleles(gene_index: int) -> list[str]:
    return [f"{GENES[gene_index][1]}{k}" for k in (1, 2, 3)]


@dataclass
class Organism:
    id: int
    genotype: Genotype
    phenotype: dict[str, str]
    parents: tuple[int, int] | None
    generation: int
    known: bool  # stock line: genotype is public

    def public(self) -> dict[str, Any]:
        record: dict[str, Any] = {"id": self.id, **self.phenotype, "generation": self.generation,
                                  "parents": list(self.parents) if self.parents else None}
        record["genotype"] = {g: "/".join(a) for g, a in self.genotype.items()} if self.known else "unknown"
        return record


class GeneticsWorld:
    """The lab: hidden dominance orders, the lethal combination, and every organism so far."""

    def __init__(self, rng: np.random.Generator, n_rules: int, required_steps: int, noise: float):
        self.rng, self.required, self.noise = rng, required_steps, noise
        self.genes = [name for name, _, _ in GENES[: n_rules - 1]]
        self.dominance = {g: [alleles(i)[int(k)] for k in rng.permutation(3)] for i, g in enumerate(self.genes)}
        self.lethal_gene = self.genes[int(rng.integers(len(self.genes)))]
        self.lethal = _lethal_options(self.genes.index(self.lethal_gene))[int(rng.integers(7))]
        self.rule_names = [f"dominance_{g}" for g in self.genes] + ["lethal"]
        self.experiments = 0
        self.organisms: dict[int, Organism] = {}
        stock = self._stock()
        for genotype, phenotype in zip(stock, self._read_phenotypes(stock)):
            self._add(genotype, phenotype, None, 0, known=True)

    def _stock(self) -> list[Genotype]:
        reference = {g: (alleles(i)[0],) * 3 for i, g in enumerate(self.genes)}
        lines = [reference]
        for i, g in enumerate(self.genes):
            lines += [{**reference, g: (alleles(i)[k],) * 3} for k in (1, 2)]
        return lines

    def _add(self, genotype: Genotype, phenotype: dict[str, str], parents: tuple[int, int] | None,
             generation: int, known: bool) -> Organism:
        organism = Organism(len(self.organisms) + 1, genotype, phenotype, parents, generation, known)
        self.organisms[organism.id] = organism
        return organism

    def _read_phenotypes(self, genotypes: list[Genotype]) -> list[dict[str, str]]:
        """The trait of the most dominant allele of each gene; each reading is wrong with probability `noise`."""
        shape = (len(genotypes), len(self.genes))
        offsets = (1 + self.rng.integers(0, 2, shape)) * (self.rng.random(shape) < self.noise)
        phenotypes = []
        for genotype, offset in zip(genotypes, offsets):
            phenotype = {}
            for i, g in enumerate(self.genes):
                expressed = next(a for a in self.dominance[g] if a in genotype[g])
                phenotype[g] = GENES[i][2][(int(expressed[1]) - 1 + int(offset[i])) % 3]
            phenotypes.append(phenotype)
        return phenotypes

    # -- tools ------------------------------------------------------------------------------------
    def cross(self, parent1: int, parent2: int) -> str:
        """Cross two organisms (one experiment): 20 offspring are conceived; the viable ones join the lab with new ids.

        Args:
            parent1: the first parent's id
            parent2: the second parent's id
        """
        if self.experiments >= self.required:
            raise ToolError(f"you have made all {self.required} required crosses; no more crosses are allowed. "
                            "Review your notes and commit your rules")
        p1, p2 = self._get(parent1), self._get(parent2)
        self.experiments += 1
        generation = max(p1.generation, p2.generation) + 1
        viable = [c for c in self._conceive(p1, p2) if not self._lethal(c)]
        born = [self._add(c, phenotype, (p1.id, p2.id), generation, known=False)
                for c, phenotype in zip(viable, self._read_phenotypes(viable))]
        return dumps({"cross": self.experiments, "parents": [p1.id, p2.id], "offspring": OFFSPRING_PER_CROSS,
                      "viable": len(born), "non_viable": OFFSPRING_PER_CROSS - len(born),
                      "new_organisms": [{"id": o.id, **o.phenotype} for o in born],
                      "crosses_done": self.experiments, "crosses_required": self.required})

    def _conceive(self, p1: Organism, p2: Organism) -> list[Genotype]:
        """OFFSPRING_PER_CROSS genotypes: per child, one parent gives 2 alleles of each gene, the other 1."""
        n, n_genes = OFFSPRING_PER_CROSS, len(self.genes)
        p1_gives_two = self.rng.random(n) < 0.5
        two_of_three = np.argsort(self.rng.random((n, n_genes, 3)), axis=2)[:, :, :2]
        one_of_three = self.rng.integers(0, 3, (n, n_genes))
        children = []
        for c in range(n):
            two, one = (p1, p2) if p1_gives_two[c] else (p2, p1)
            children.append({g: tuple(sorted([*(two.genotype[g][int(k)] for k in two_of_three[c, j]),
                                              one.genotype[g][int(one_of_three[c, j])]]))
                             for j, g in enumerate(self.genes)})
        return children

    def _lethal(self, genotype: Genotype) -> bool:
        return tuple(sorted(genotype[self.lethal_gene])) == self.lethal

    def _get(self, organism_id: int) -> Organism:
        if organism_id not in self.organisms:
            raise ToolError(f"no organism with id {organism_id}; ids run from 1 to {len(self.organisms)}")
        return self.organisms[organism_id]

    def list_organisms(self, first_id: int = 1, last_id: int | None = None) -> str:
        """List organisms with ids in [first_id, last_id] (at most 50; free).

        Args:
            first_id: the first id to list (default 1)
            last_id: the last id to list (default first_id + 49)
        """
        last = min(first_id + LIST_LIMIT - 1 if last_id is None else last_id, first_id + LIST_LIMIT - 1)
        if last < first_id:
            raise ToolError(f"last_id ({last_id}) must be >= first_id ({first_id})")
        shown = [self.organisms[i].public() for i in range(first_id, last + 1) if i in self.organisms]
        return dumps({"organisms": shown, "total_organisms": len(self.organisms)})

    def inspect(self, organism_id: int) -> str:
        """Show one organism: phenotype, parents, generation, known genotype (free).

        Args:
            organism_id: the organism's id
        """
        return dumps(self._get(organism_id).public())

    # -- commit -----------------------------------------------------------------------------------
    def parse_commit(self, rules: Any) -> dict[str, Any]:
        example = {"dominance": {g: alleles(i) for i, g in enumerate(self.genes)}, "lethal": alleles(0)}
        if not isinstance(rules, dict) or set(rules) != {"dominance", "lethal"}:
            raise ToolError(f"rules must be an object with exactly the keys 'dominance' and 'lethal', "
                            f"e.g. {dumps(example)}")
        return {"dominance": self._parse_dominance(rules["dominance"]), "lethal": self._parse_lethal(rules["lethal"])}

    def _parse_dominance(self, dominance: Any) -> dict[str, list[str]]:
        if not isinstance(dominance, dict) or set(dominance) != set(self.genes):
            raise ToolError(f"rules.dominance must map exactly the genes {', '.join(self.genes)} to allele orders")
        for i, g in enumerate(self.genes):
            order = dominance[g]
            if not isinstance(order, list) or sorted(map(str, order)) != alleles(i):
                raise ToolError(f"rules.dominance.{g} must list the alleles {', '.join(alleles(i))} once each, "
                                f"most dominant first; got {repr(order)[:60]}")
        return {g: list(dominance[g]) for g in self.genes}

    def _parse_lethal(self, lethal: Any) -> tuple[str, ...]:
        options = [a for i in range(len(self.genes)) for a in alleles(i)]
        if not isinstance(lethal, list) or len(lethal) != 3 or any(a not in options for a in lethal):
            raise ToolError(f"rules.lethal must be a list of 3 alleles (from {', '.join(options)}), "
                            f"e.g. [\"C1\", \"C1\", \"C2\"]; got {repr(lethal)[:60]}")
        if len({a[0] for a in lethal}) != 1:
            raise ToolError("rules.lethal must hold 3 alleles of the same gene")
        return tuple(sorted(lethal))

    def grade(self, parsed: dict[str, Any]) -> dict[str, bool]:
        scores = {f"dominance_{g}": parsed["dominance"][g] == self.dominance[g] for g in self.genes}
        scores["lethal"] = parsed["lethal"] == self.lethal
        return scores

    def wrong_commit(self) -> dict[str, Any]:
        dominance = {g: order[::-1] for g, order in self.dominance.items()}
        options = _lethal_options(self.genes.index(self.lethal_gene))
        return {"dominance": dominance, "lethal": list(options[(options.index(self.lethal) + 1) % len(options)])}

    def intro(self) -> str:
        genes = "\n".join(f"  {g}: " + ", ".join(f"{a} -> {t}" for a, t in zip(alleles(i), GENES[i][2]))
                          for i, g in enumerate(self.genes))
        stock = "\n".join(f"  #{o.id}: " + ", ".join(f"{g} {'/'.join(a)}" for g, a in o.genotype.items())
                          for o in self.organisms.values())
        return (
            "=== ALIEN GENETICS LABORATORY: discover the hidden rules ===\n"
            f"The organisms are triploid: 3 alleles for each gene. Genes, alleles and the trait each allele shows:\n"
            f"{genes}\n"
            "In a cross, every offspring receives 2 alleles of every gene from one parent and 1 from the other "
            f"(which parent gives 2 is random; alleles are drawn without replacement). A cross conceives "
            f"{OFFSPRING_PER_CROSS} offspring.\n"
            "Hidden rules: (1) each gene has a dominance order of its 3 alleles; an organism shows the trait of the "
            "most dominant allele it carries. (2) Exactly one combination of 3 alleles of one gene is lethal: "
            "either two copies of one allele plus one of another (like H1/H1/H2) or all three different alleles "
            "(like H1/H2/H3). Offspring with it die and are counted as non-viable. Trait readings are noisy: each "
            f"trait of a new organism is misread with probability {self.noise:g} (shown as one of the other two).\n"
            f"Stock (pure-breeding lines with known genotypes; phenotype readings are noisy too):\n{stock}\n"
            f"You must make exactly {self.required} crosses (experiments); crosses beyond that are refused, and you "
            "may commit only after all of them. Use notes to record observations and hypotheses. Then call commit "
            "once with rules = {\"dominance\": {gene: [alleles, most dominant first]}, \"lethal\": [3 alleles]}, "
            f"e.g. {dumps({'dominance': {g: alleles(i) for i, g in enumerate(self.genes)}, 'lethal': alleles(0)})}. "
            "Your reward is the fraction of rules right (one per gene's dominance order, one for the lethal "
            "combination).\n"
            "Tools: list_organisms(first_id, last_id), cross(parent1, parent2), inspect(organism_id), "
            "notes(action, text), commit(rules)."
        )


def _lethal_options(gene_index: int) -> list[tuple[str, ...]]:
    """The 7 possible lethal multisets of a gene: {x, x, y} for x != y, and {1, 2, 3}."""
    a = alleles(gene_index)
    pairs = [tuple(sorted((x, x, y))) for x in a for y in a if x != y]
    return pairs + [tuple(a)]


# The experiment tools' schemas, from the world's methods; ids are >= 1 (a bound the signature cannot give).
# Their docstrings state OFFSPRING_PER_CROSS (20) and LIST_LIMIT (50); tests/test_discovery.py checks they agree.
ID = {"minimum": 1}
TOOLS = [tool_schema(GeneticsWorld.list_organisms, {"first_id": ID, "last_id": ID}),
         tool_schema(GeneticsWorld.cross, {"parent1": ID, "parent2": ID}),
         tool_schema(GeneticsWorld.inspect, {"organism_id": ID})]


def make_world(rng: np.random.Generator, n_rules: int, required_steps: int, noise: float) -> GeneticsWorld:
    return GeneticsWorld(rng, n_rules, required_steps, noise)


# -- the oracle: a systematic experimenter that only reads observations ----------------------------


@dataclass
class _CrossStats:
    """Everything seen from the crosses of one parent pair (repeats pooled)."""

    total: int = 0
    non_viable: int = 0
    readings: dict[str, Counter[str]] = field(default_factory=dict)
    survivors: list[int] = field(default_factory=list)


class Experimenter:
    """Plan, per gene g with pure lines L1, L2, L3 (differing only in g):
    1. cross every pair of lines: the majority trait among offspring of Lx x Ly shows which of x, y dominates;
       non-viable offspring mean the lethal combination is {x,x,y} or {x,y,y};
    2. if Lx x Ly had deaths, backcross a survivor with Lx: deaths again -> {x,x,y} (the survivors are
       x/y/y, which give x/x/y with Lx), none -> {x,y,y} (survivors x/x/y never give x/y/y with Lx);
       if no pair had deaths anywhere, cross a survivor of L1 x L2 with L3: deaths -> {1,2,3} in that gene;
    3. repeat all those crosses round-robin until the budget is spent (pooling averages out the noise).
    """

    def __init__(self) -> None:
        self.lines: dict[tuple[str, int], int] = {}  # (gene, allele number) -> stock id
        self.genes: list[str] = []
        self.stats: dict[tuple[int, int], _CrossStats] = {}
        self.done_crosses: list[tuple[int, int]] = []
        self.crosses_done, self.required = 0, None
        self.noted = False

    def next_call(self, observation: str) -> ToolCall:
        for name, payload in parse_results(observation):
            if name == "list_organisms" and "organisms" in payload and not self.lines:
                self._read_stock(payload["organisms"])
            elif name == "cross" and "new_organisms" in payload:
                self._observe_cross(payload)
        if not self.lines:
            return ToolCall("list_organisms", {"first_id": 1, "last_id": 7})
        if self.required is not None and self.crosses_done >= self.required:
            return ToolCall("commit", {"rules": self.conclusions()})
        if self.required is not None and self.crosses_done == self.required - 1 and not self.noted:
            self.noted = True
            return ToolCall("notes", {"action": "add", "text": f"conclusions so far: {dumps(self.conclusions())}"})
        p1, p2 = self._next_cross()
        return ToolCall("cross", {"parent1": p1, "parent2": p2})

    # -- reading observations ---------------------------------------------------------------------
    def _read_stock(self, organisms: list[dict[str, Any]]) -> None:
        stock = [o for o in organisms if isinstance(o.get("genotype"), dict)]
        self.genes = [g for g, _, _ in GENES if stock and g in stock[0]["genotype"]]
        reference = stock[0]
        for o in stock:
            for g in self.genes:
                allele = int(o["genotype"][g].split("/")[0][1:])
                if allele != 1 or o is reference:
                    self.lines[(g, allele)] = o["id"]
        for g in self.genes:
            self.lines[(g, 1)] = reference["id"]

    def _observe_cross(self, payload: dict[str, Any]) -> None:
        key = (min(payload["parents"]), max(payload["parents"]))
        stats = self.stats.setdefault(key, _CrossStats())
        stats.total += payload["offspring"]
        stats.non_viable += payload["non_viable"]
        for child in payload["new_organisms"]:
            stats.survivors.append(child["id"])
            for g in self.genes:
                stats.readings.setdefault(g, Counter())[child[g]] += 1
        self.crosses_done, self.required = payload["crosses_done"], payload["crosses_required"]
        if key not in self.done_crosses:
            self.done_crosses.append(key)

    # -- planning -----------------------------------------------------------------------------------
    def _pair(self, g: str, x: int, y: int) -> tuple[int, int]:
        a, b = self.lines[(g, x)], self.lines[(g, y)]
        return min(a, b), max(a, b)

    def _stats(self, pair: tuple[int, int]) -> _CrossStats:
        return self.stats.get(pair, _CrossStats())

    def _deaths(self) -> list[tuple[str, int, int]]:
        """(gene, x, y) for the line crosses Lx x Ly that produced non-viable offspring."""
        return [(g, x, y) for g in self.genes for x, y in PAIRS if self._stats(self._pair(g, x, y)).non_viable]

    def _next_cross(self) -> tuple[int, int]:
        for g in self.genes:
            for x, y in PAIRS:
                if not self._stats(self._pair(g, x, y)).survivors:
                    return self._pair(g, x, y)
        for test in self._lethal_tests():
            if test not in self.stats:
                return test
        return self.done_crosses[(self.crosses_done - len(self.done_crosses)) % len(self.done_crosses)]

    def _lethal_tests(self) -> list[tuple[int, int]]:
        """Step 2's crosses: (survivor, pure line), normalised as sorted id pairs."""
        deaths = self._deaths()
        if deaths:
            wanted = [(g, (x, y), x) for g, x, y in deaths]
        else:
            wanted = [(g, (1, 2), 3) for g in self.genes]
        tests = []
        for g, (x, y), partner in wanted:
            survivors = self._stats(self._pair(g, x, y)).survivors
            if survivors:
                a, b = survivors[0], self.lines[(g, partner)]
                tests.append((min(a, b), max(a, b)))
        return tests

    # -- conclusions --------------------------------------------------------------------------------
    def conclusions(self) -> dict[str, Any]:
        dominance = {g: self._dominance(g) for g in self.genes}
        return {"dominance": dominance, "lethal": self._lethal()}

    def _dominance(self, g: str) -> list[str]:
        i = [name for name, _, _ in GENES].index(g)
        wins: Counter[int] = Counter()
        for x, y in PAIRS:
            counts = self._stats(self._pair(g, x, y)).readings.get(g, Counter())
            winner = x if counts[GENES[i][2][x - 1]] >= counts[GENES[i][2][y - 1]] else y
            wins[winner] += 1
        return sorted(alleles(i), key=lambda a: (-wins[int(a[1])], a))

    def _lethal(self) -> list[str]:
        tests, deaths = self._lethal_tests(), self._deaths()
        i_of = {name: k for k, (name, _, _) in enumerate(GENES)}
        if deaths:
            g, x, y = deaths[0]
            backcross_deaths = bool(tests) and self._stats(tests[0]).non_viable > 0
            a = alleles(i_of[g])
            return sorted([a[x - 1], a[x - 1], a[y - 1]] if backcross_deaths else [a[x - 1], a[y - 1], a[y - 1]])
        for g, test in zip(self.genes, tests):
            if self._stats(test).non_viable:
                return alleles(i_of[g])
        return alleles(i_of[self.genes[-1]])
