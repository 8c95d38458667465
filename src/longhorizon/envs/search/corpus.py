"""The seeded world behind `longhorizon/Search-v0`: entities, their facts, documents and one multi-hop question.

Four kinds of entity (person, company, city, country) with invented names,
so no model knows the answers beforehand. Each entity has two attributes
and two relations to other entities (functional: one value each), all
stated in the entity's own document, one fact per sentence, in a seeded
order. A question follows `hops` relations from a start entity and asks an
attribute of the entity it reaches:

    What is the population of the city where the founder of Qorvex Labs was born?

Answering it needs the documents of all `hops + 1` entities on the chain,
and each next entity's name is only found in the previous one's document,
so the agent must search and read `hops + 1` times.

Difficulty (distractors):
1. every name is made of words no other name uses; no distractor documents;
2. look-alike names (shared first names, twin company and city stems such as
   "Durnhold" and "New Durnhold") and 25% of the corpus is "news" documents
   that mention entities without stating any relation;
3. as 2, with 50% news documents, each chain entity mentioned in at least
   two of them, and shorter search snippets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SYLLABLES = ("ka", "lor", "ven", "dri", "mor", "tal", "ser", "qui", "bra", "nel", "zor", "vix", "pel", "dun", "rho",
             "sil", "tam", "gor", "fen", "ith", "ul", "yar", "cas", "bel", "thi", "nox", "ra", "vel", "mar", "gai",
             "esk", "oth", "pri", "wen", "dal", "hu")
COMPANY_SUFFIXES = ("Labs", "Systems", "Holdings", "Works", "Group", "Industries", "Partners", "Foundry")
CITY_PREFIXES = ("New", "Port", "North", "South", "Old", "Upper")
PROFESSIONS = ("architect", "botanist", "pilot", "surgeon", "sculptor", "chemist", "cartographer", "violinist",
               "geologist", "lawyer", "baker", "astronomer")
INDUSTRIES = ("robots", "textiles", "solar panels", "bicycles", "medicines", "ceramics", "satellites", "furniture",
              "batteries", "glassware", "microchips", "fertiliser")
KINDS = ("person", "company", "city", "country")
KIND_SHARE = {"person": 0.4, "company": 0.25, "city": 0.25, "country": 0.1}
NEWS_SHARE = {1: 0.0, 2: 0.25, 3: 0.5}
SNIPPET_CHARS = {1: 200, 2: 120, 3: 60}
NEWS_TEMPLATES = ("{a} and {b} were both named in a long article about {c}.",
                  "A report on {a} cites interviews about {b} and {c}.",
                  "Readers often confuse {a} with {b}; few have heard of {c}.",
                  "{a} appeared in a documentary alongside {b} and {c}.")


@dataclass(frozen=True)
class Relation:
    """A functional relation: its target kind, how a question names its value, and the document's sentence."""

    target: str
    question: str  # "{x}" is the source's phrase
    fact: str  # "{x}" the source's name, "{y}" the target's


@dataclass(frozen=True)
class Attribute:
    question: str  # "What is {q} of {x}?"-style: the attribute's noun phrase
    fact: str  # "{x}" the entity's name, "{v}" the value


RELATIONS: dict[str, dict[str, Relation]] = {
    "person": {"birthplace": Relation("city", "the city where {x} was born", "{x} was born in {y}."),
               "employer": Relation("company", "the company that {x} works for", "{x} works for {y}.")},
    "company": {"founder": Relation("person", "the founder of {x}", "{x} was founded by {y}."),
                "headquarters": Relation("city", "the city where {x} has its headquarters",
                                         "{x} has its headquarters in {y}.")},
    "city": {"country": Relation("country", "the country that {x} lies in", "{x} is a city in {y}."),
             "mayor": Relation("person", "the mayor of {x}", "The mayor of {x} is {y}.")},
    "country": {"capital": Relation("city", "the capital of {x}", "The capital of {x} is {y}."),
                "leader": Relation("person", "the leader of {x}", "{x} is led by {y}.")},
}
ATTRIBUTES: dict[str, dict[str, Attribute]] = {
    "person": {"birth_year": Attribute("the birth year", "{x} was born in the year {v}."),
               "profession": Attribute("the profession", "{x} works as a {v}.")},
    "company": {"founding_year": Attribute("the founding year", "{x} was founded in the year {v}."),
                "industry": Attribute("the product", "{x} makes {v}.")},
    "city": {"population": Attribute("the population", "{x} has a population of {v}."),
             "river": Attribute("the river", "{x} lies on the river {v}.")},
    "country": {"currency": Attribute("the currency", "The currency of {x} is the {v}."),
                "language": Attribute("the official language", "The official language of {x} is {v}.")},
}


@dataclass
class Entity:
    kind: str
    name: str
    doc_id: str
    relations: dict[str, int] = field(default_factory=dict)  # relation -> entity index
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Document:
    doc_id: str
    title: str
    text: str  # the body, without the title


@dataclass(frozen=True)
class Question:
    text: str
    answer: str
    chain: tuple[int, ...]  # entity indices, start first: the documents the answer needs, in order


@dataclass
class World:
    entities: list[Entity]
    documents: list[Document]
    question: Question

    def doc(self, doc_id: str) -> Document | None:
        return next((d for d in self.documents if d.doc_id == doc_id), None)


# ------------------------------------------------------------------ names


class Namer:
    """Invented names, unique per world; words are reused across names only from difficulty 2 on (look-alikes)."""

    def __init__(self, rng: np.random.Generator, difficulty: int):
        self.rng, self.difficulty = rng, difficulty
        self.used_words: set[str] = set()
        self.used_names: set[str] = set()
        self.first_names: list[str] = []
        self.cities: list[str] = []  # city stems (a look-alike city is a prefix plus a stem)
        self.companies: list[str] = []  # company stems (a look-alike company is a stem plus another suffix)

    def word(self, syllables: int | None = None) -> str:
        for _ in range(10_000):
            n = syllables or int(self.rng.integers(2, 4))
            w = "".join(SYLLABLES[i] for i in self.rng.integers(len(SYLLABLES), size=n)).capitalize()
            if w not in self.used_words:
                self.used_words.add(w)
                return w
        raise RuntimeError("ran out of invented words")

    def name(self, kind: str) -> str:
        for _ in range(10_000):
            candidate = getattr(self, f"_{kind}")()
            if candidate not in self.used_names:
                self.used_names.add(candidate)
                return candidate
        raise RuntimeError(f"ran out of {kind} names")

    def _reuse(self, pool: list[str]) -> bool:
        return self.difficulty >= 2 and len(pool) > 0 and self.rng.random() < 0.5

    def _person(self) -> str:
        first = self.first_names[int(self.rng.integers(len(self.first_names)))] if self._reuse(self.first_names) else None
        if first is None:
            first = self.word(2)
            self.first_names.append(first)
        return f"{first} {self.word()}"

    def _company(self) -> str:
        if self._reuse(self.companies):
            stem = self.companies[int(self.rng.integers(len(self.companies)))]
        else:
            stem = self.word()
            self.companies.append(stem)
        return f"{stem} {COMPANY_SUFFIXES[int(self.rng.integers(len(COMPANY_SUFFIXES)))]}"

    def _city(self) -> str:
        if self._reuse(self.cities):
            prefix = CITY_PREFIXES[int(self.rng.integers(len(CITY_PREFIXES)))]
            return f"{prefix} {self.cities[int(self.rng.integers(len(self.cities)))]}"
        stem = self.word()
        self.cities.append(stem)
        return stem

    def _country(self) -> str:
        return self.word() + ("ia", "land", "or", "ea")[int(self.rng.integers(4))]


# ------------------------------------------------------------------ the world


def new_world(rng: np.random.Generator, corpus_size: int, hops: int, difficulty: int) -> World:
    """A seeded corpus of `corpus_size` documents and one question of `hops` relations."""
    n_news = int(round(corpus_size * NEWS_SHARE[difficulty]))
    entities = _entities(rng, corpus_size - n_news, difficulty)
    question = _question(rng, entities, hops)
    documents = [_entity_doc(rng, e, entities) for e in entities]
    documents += _news_docs(rng, entities, n_news, question.chain if difficulty >= 3 else ())
    order = rng.permutation(len(documents))
    return World(entities=entities, documents=[documents[i] for i in order], question=question)


def _entities(rng: np.random.Generator, n: int, difficulty: int) -> list[Entity]:
    namer = Namer(rng, difficulty)
    counts = {k: max(2, int(n * share)) for k, share in KIND_SHARE.items()}
    counts["person"] += max(0, n - sum(counts.values()))
    entities = []
    ids: set[str] = set()
    for kind in KINDS:
        for _ in range(counts[kind]):
            entities.append(Entity(kind, namer.name(kind), _doc_id(rng, ids), attributes=_attributes(rng, namer, kind)))
    by_kind = {k: [i for i, e in enumerate(entities) if e.kind == k] for k in KINDS}
    for i, e in enumerate(entities):
        for rel, spec in RELATIONS[e.kind].items():
            e.relations[rel] = _other(rng, by_kind[spec.target], i)
    return entities


def _other(rng: np.random.Generator, options: list[int], excluded: int) -> int:
    """A uniform draw from `options` without `excluded` (which is in it at most once)."""
    k = int(rng.integers(len(options) - (excluded in options)))
    return options[k + 1] if excluded in options and options.index(excluded) <= k else options[k]


def _doc_id(rng: np.random.Generator, used: set[str]) -> str:
    while True:
        doc_id = "D" + "".join(f"{x:x}" for x in rng.integers(16, size=6))
        if doc_id not in used:
            used.add(doc_id)
            return doc_id


def _attributes(rng: np.random.Generator, namer: Namer, kind: str) -> dict[str, str]:
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    values = {
        "person": lambda: {"birth_year": str(int(rng.integers(1900, 2000))), "profession": pick(PROFESSIONS)},
        "company": lambda: {"founding_year": str(int(rng.integers(1850, 2020))), "industry": pick(INDUSTRIES)},
        "city": lambda: {"population": str(int(rng.integers(2, 900)) * 1000 + int(rng.integers(1000))),
                         "river": namer.word()},
        "country": lambda: {"currency": namer.word().lower(), "language": namer.word() + "ish"},
    }
    return values[kind]()


def _question(rng: np.random.Generator, entities: list[Entity], hops: int) -> Question:
    """A random walk of `hops` relations over distinct entities, then one attribute of the last one."""
    for _ in range(10_000):
        chain = [int(rng.integers(len(entities)))]
        phrase = entities[chain[0]].name
        for _ in range(hops):
            entity = entities[chain[-1]]
            options = [r for r, j in entity.relations.items() if j not in chain]
            if not options:
                break
            rel = options[int(rng.integers(len(options)))]
            phrase = RELATIONS[entity.kind][rel].question.format(x=phrase)
            chain.append(entity.relations[rel])
        if len(chain) == hops + 1:
            last = entities[chain[-1]]
            attr = sorted(last.attributes)[int(rng.integers(len(last.attributes)))]
            text = f"What is {ATTRIBUTES[last.kind][attr].question} of {phrase}?"
            return Question(text=text, answer=last.attributes[attr], chain=tuple(chain))
    raise RuntimeError(f"could not draw a chain of {hops} hops over distinct entities")


def _entity_doc(rng: np.random.Generator, entity: Entity, entities: list[Entity]) -> Document:
    facts = [RELATIONS[entity.kind][r].fact.format(x=entity.name, y=entities[j].name)
             for r, j in entity.relations.items()]
    facts += [ATTRIBUTES[entity.kind][a].fact.format(x=entity.name, v=v) for a, v in entity.attributes.items()]
    order = rng.permutation(len(facts))
    intro = f"{entity.name} is a {entity.kind}."
    return Document(entity.doc_id, entity.name, " ".join([intro] + [facts[i] for i in order]))


def _news_docs(rng: np.random.Generator, entities: list[Entity], n: int, favoured: tuple[int, ...]) -> list[Document]:
    """Distractors: documents that mention entities (each favoured one at least twice) and state no relation."""
    ids = {e.doc_id for e in entities}
    must = [i for i in favoured for _ in range(2)]
    docs = []
    for k in range(n):
        picks: list[int] = []
        while len(picks) < 3:
            j = int(rng.integers(len(entities)))
            picks += [] if j in picks else [j]
        if k < len(must) and must[k] not in picks:
            picks[0] = must[k]
        a, b, c = (entities[i].name for i in picks)
        text = NEWS_TEMPLATES[int(rng.integers(len(NEWS_TEMPLATES)))].format(a=a, b=b, c=c)
        docs.append(Document(_doc_id(rng, ids), f"News: {a}", text))
    return docs
