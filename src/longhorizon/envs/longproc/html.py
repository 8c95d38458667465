"""`longhorizon/HtmlToTsv-v0`: extract records from a web page into a TSV table.

LongProc's html_to_tsv task (Ye et al., arXiv 2501.05414). The agent gets one
HTML page and must extract the listed records' requested fields, in page
order, as TSV with a given header, inside a ```tsv fenced block. The paper
uses real web pages; here pages are generated: a listing of products, staff,
events or books, rendered with one of three layouts (div cards with classed
paragraphs and bold labels, an HTML table with its own column order, or a list
of definition lists), surrounded by distractors (navigation, search form,
sidebar, footer, scripts, comments, hidden inputs) and interleaved
"Sponsored" records that the task's filtering instruction says to skip (as
the paper's filtering instructions do). Values keep their displayed text
(e.g. "$12.99"); `&` and friends are HTML-escaped in the page.

Size: records are added while the reference TSV stays within the level's
token target (see `longproc`), so the page grows with the level: it is about
4-13x the output's length, so at 8k the prompt averages ~40k tokens (chars/4)
and reaches ~105k for a 3-field card layout.

Metric (paper `evaluate_html_to_csv_compute_metrics`): the first line of the
block must be the header; every other non-empty line is a row. A predicted
row counts when all its fields equal a reference row's fields after
whitespace normalisation. precision = matched / predicted rows, recall =
matched / reference rows, F1 their harmonic mean. Success iff F1 == 1.
Reward = F1.

Departures from the paper:
- fields are compared after whitespace normalisation only; the paper also
  lower-cases and strips punctuation and articles;
- rows are matched as a multiset (a duplicated row counts once); the paper
  counts every predicted row found anywhere in the reference;
- a missing or wrong header line rejects the output (all metrics 0) instead of
  silently dropping the first row; the paper's dropping of an incomplete last
  line is not copied;
- the block is the last ```tsv fence (or, with no fence, the whole output, as
  in the paper).
"""

from __future__ import annotations

import html
import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np
from pydantic import Field

from longhorizon.envs.core.knobs import Real
from longhorizon.envs.longproc.common import CHARS_PER_TOKEN, LongProcEnv, LongProcKnobs, pick

Record = dict[str, str]
FENCE_RE = re.compile(r"```tsv[^\n]*\n(.*?)```", re.DOTALL)

_FIRST = "Ada Ben Cleo Dev Emil Fay Gus Hana Ivo Jade Kofi Lena Milo Nia Omar Pia Raj Sana Teo Uma Vera Wes".split()
_LAST = "Abbott Baker Chen Diaz Evans Fischer Garcia Haas Ito Jensen Khan Lopez Moreau Novak Okafor Patel Rossi".split()
_ADJ = "Aurora Cedar Nimbus Vertex Harbor Summit Lumen Quartz Ember Willow Cobalt Drift Atlas Orbit Tidal".split()
_NOUNS = ("Desk Lamp", "Kettle", "Backpack", "Headphones", "Blender", "Notebook", "Water Bottle", "Office Chair",
          "Toaster", "Umbrella", "Speaker", "Mug Set")
_BRANDS = ("Northwind", "Smith & Co", "Acme", "Blue Fern", "Kestrel", "Orchard & Vine", "Pioneer", "Halcyon")
_TITLES = ("Data Analyst", "Senior Engineer", "Product Manager", "Recruiter", "Designer", "Accountant", "Chemist")
_DEPTS = ("Research", "Finance", "Marketing", "Operations", "Legal", "Customer Success", "R&D")
_EVENT_KINDS = ("Jazz Night", "Book Fair", "Startup Pitch", "Film Screening", "Food Market", "Chess Open", "Poetry")
_VENUES = ("Riverside Hall", "The Old Mill", "Civic Center", "Harbor Pavilion", "Lantern Club", "Grand Arena")
_CITIES = ("Lisbon", "Osaka", "Denver", "Tallinn", "Cork", "Nairobi", "Quebec City", "Perth", "Bergen")
_BOOK_WORDS = "River Glass Winter Silent Garden Iron Paper Hollow Distant Salt Crimson Stars Orchard Tide".split()
_PUBLISHERS = ("Penrose Books", "Harbor & Hale", "Lighthouse Press", "Quill House", "Northgate")


@dataclass(frozen=True)
class Topic:
    """A kind of listing: its fields (display order) and how to draw one record."""

    name: str
    noun: str  # what one record is, for the instruction
    fields: tuple[str, ...]
    draw: Callable[[np.random.Generator], Record]


def _person(rng: np.random.Generator) -> str:
    return f"{pick(rng, _FIRST)} {pick(rng, _LAST)}"


def _draw_product(rng: np.random.Generator) -> Record:
    cents = int(rng.integers(199, 49999))
    return {
        "name": f"{pick(rng, _ADJ)} {pick(rng, _NOUNS)} {pick(rng, 'SMLX')}{int(rng.integers(10, 999))}",
        "brand": pick(rng, _BRANDS), "price": f"${cents // 100}.{cents % 100:02d}",
        "rating": f"{rng.integers(10, 51) / 10:.1f}", "stock": f"{int(rng.integers(0, 500))} left",
    }


def _draw_person(rng: np.random.Generator) -> Record:
    name = _person(rng)
    user = name.lower().replace(" ", ".") + str(int(rng.integers(1, 99)))
    return {
        "name": name, "title": pick(rng, _TITLES), "department": pick(rng, _DEPTS),
        "email": f"{user}@example.org", "phone": f"+1-555-{int(rng.integers(1000, 10000))}",
    }


def _draw_event(rng: np.random.Generator) -> Record:
    return {
        "title": f"{pick(rng, _ADJ)} {pick(rng, _EVENT_KINDS)} #{int(rng.integers(1, 999))}",
        "date": f"2025-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}",
        "venue": pick(rng, _VENUES), "city": pick(rng, _CITIES), "price": f"${int(rng.integers(0, 120))}",
    }


def _draw_book(rng: np.random.Generator) -> Record:
    words = rng.choice(_BOOK_WORDS, size=int(rng.integers(2, 4)), replace=False)
    return {
        "title": "The " + " ".join(str(w) for w in words), "author": _person(rng),
        "year": str(int(rng.integers(1950, 2025))), "publisher": pick(rng, _PUBLISHERS),
        "pages": str(int(rng.integers(90, 900))),
    }


TOPICS = (
    Topic("products", "product", ("name", "brand", "price", "rating", "stock"), _draw_product),
    Topic("staff", "staff member", ("name", "title", "department", "email", "phone"), _draw_person),
    Topic("events", "event", ("title", "date", "venue", "city", "price"), _draw_event),
    Topic("books", "book", ("title", "author", "year", "publisher", "pages"), _draw_book),
)

PROMPT = """[TASK]
Below is the HTML source of a web page that lists {plural}. Extract the requested information of every {noun} listed on the page into a TSV (tab-separated values) table.

[INSTRUCTIONS]
- Extract these fields, in this order: {fields}.
- Copy each value exactly as it is displayed on the page (decode HTML entities such as &amp;).
- List the {plural} in the order they appear on the page, one {noun} per line.
- {filtering}
- The first line of the table must be the header line below, and the values on each line are separated by a single tab character.
- Mark the table with ```tsv and ```, like this:
```tsv
{header}
...
```

[HTML]
{page}"""


PAGE = """<!DOCTYPE html>
<html>
<head>
  <title>{site}</title>
  <meta charset="utf-8">
  <script>window.dataLayer = [{{"page": "{topic}", "count": {count}}}];</script>
</head>
<body>
<header class="top">
  <nav><ul class="menu">{links}</ul></nav>
  <form class="search"><input type="text" name="q" placeholder="Search {topic}">
    <input type="hidden" name="sid" value="{sid}"></form>
</header>
<div class="page">
<aside class="sidebar"><h4>Recently viewed</h4><ul>{recent}</ul></aside>
<main>
<h1>All {topic}</h1>
<!-- listing starts -->
{listing}
<!-- listing ends -->
</main>
</div>
<footer><p>&copy; 2025 {site}. All rights reserved.</p><a href="/privacy">Privacy</a></footer>
</body>
</html>"""


# -- page rendering ----------------------------------------------------------------------
def _esc(value: str) -> str:
    return html.escape(value, quote=True)


def _card(topic: Topic, rec: Record, sponsored: bool, uid: int) -> str:
    first, rest = topic.fields[0], topic.fields[1:]
    badge = ' <span class="badge">Sponsored</span>' if sponsored else ""
    meta = "".join(f'\n    <p class="{f}"><b>{f.title()}:</b> {_esc(rec[f])}</p>' for f in rest)
    cls = "card sponsored" if sponsored else "card"
    title = f'<h3 class="{first}"><a href="/item/{uid}">\n      {_esc(rec[first])}\n    </a></h3>'
    return f'  <div class="{cls}">{badge}\n    {title}{meta}\n  </div>'


def _list_item(topic: Topic, rec: Record, sponsored: bool, uid: int) -> str:
    first, rest = topic.fields[0], topic.fields[1:]
    badge = " <em>(Sponsored)</em>" if sponsored else ""
    pairs = "".join(f"<dt>{f.title()}</dt><dd>{_esc(rec[f])}</dd>" for f in rest)
    head = f"<p><strong>{_esc(rec[first])}</strong>{badge}</p>"
    return f'  <li class="result" id="r{uid}">\n    {head}\n    <dl>{pairs}</dl>\n  </li>'


def _table_row(order: list[str], rec: Record, sponsored: bool, uid: int) -> str:
    cells = "".join(f'<td class="col-{f}">{_esc(rec[f])}</td>' for f in order)
    marker = '<td class="tag">Sponsored</td>' if sponsored else '<td class="tag"></td>'
    return f'    <tr data-row="{uid}">{cells}{marker}</tr>'


def render_listing(rng: np.random.Generator, topic: Topic, items: list[tuple[Record, bool]]) -> str:
    """The records (each with its sponsored flag) in one of three layouts."""
    layout = int(rng.integers(3))
    if layout == 0:
        body = "\n".join(_card(topic, r, s, 100 + k) for k, (r, s) in enumerate(items))
        return f'<div class="grid listing">\n{body}\n</div>'
    if layout == 1:
        body = "\n".join(_list_item(topic, r, s, 100 + k) for k, (r, s) in enumerate(items))
        return f'<ul class="results">\n{body}\n</ul>'
    order = [str(f) for f in rng.permutation(topic.fields)]
    head = "".join(f"<th>{f.title()}</th>" for f in order) + "<th></th>"
    body = "\n".join(_table_row(order, r, s, 100 + k) for k, (r, s) in enumerate(items))
    return f'<table class="listing">\n  <thead><tr>{head}</tr></thead>\n  <tbody>\n{body}\n  </tbody>\n</table>'


def render_page(rng: np.random.Generator, topic: Topic, listing: str) -> str:
    """Wrap the listing in a page with navigation, sidebar, scripts and footer as distractors."""
    links = "".join(f'<li><a href="/{w.lower()}">{w}</a></li>' for w in ("Home", "Deals", "About", "Contact"))
    return PAGE.format(
        site=f"{pick(rng, _ADJ)} {topic.name.title()}", topic=topic.name, count=int(rng.integers(10, 99)),
        sid=int(rng.integers(100_000, 1_000_000)), links=links, listing=listing,
        recent="".join(f"<li>{pick(rng, _ADJ)} picks</li>" for _ in range(3)),
    )


# -- TSV parsing and the metric ---------------------------------------------------------------
def normalize_row(line: str) -> tuple[str, ...]:
    """Split a TSV line on tabs and normalise whitespace inside each field."""
    return tuple(" ".join(cell.split()) for cell in line.split("\t"))


def tsv_block(text: str) -> str:
    """The last ```tsv fenced block; an unclosed fence's remainder; or the whole text (as in the paper)."""
    blocks = FENCE_RE.findall(text)
    if blocks:
        return blocks[-1]
    if "```tsv" in text:
        return text.rsplit("```tsv", 1)[1].split("\n", 1)[-1]
    return text


def parse_tsv(text: str, header: tuple[str, ...]) -> tuple[list[tuple[str, ...]] | None, str | None]:
    """Normalised data rows of the agent's table, or (None, reason) if the header line is wrong."""
    lines = [line for line in tsv_block(text).splitlines() if line.strip()]
    if not lines:
        return None, "no TSV table found (mark it with ```tsv and ```)"
    if normalize_row(lines[0]) != header:
        return None, "the first line of the table must be the header " + repr("\t".join(header))
    return [normalize_row(line) for line in lines[1:]], None


def row_f1(predicted: list[tuple[str, ...]], reference: list[tuple[str, ...]]) -> dict[str, float]:
    """Row-level precision, recall and F1 with multiset matching (LongProc html_to_tsv metric)."""
    matched = sum((Counter(predicted) & Counter(reference)).values())
    precision = matched / len(predicted) if predicted else 0.0
    recall = matched / len(reference) if reference else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "precision": precision, "recall": recall}


def format_tsv(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    return "```tsv\n" + "\n".join("\t".join(r) for r in [header, *rows]) + "\n```"


class HtmlToTsvKnobs(LongProcKnobs):
    """HtmlToTsv's knobs."""

    sponsored_rate: Real = Field(0.1, ge=0.0, lt=1.0, description="fraction of extra 'Sponsored' records the agent "
                                 "must skip (0 disables filtering)")


class HtmlToTsvEnv(LongProcEnv):
    """LongProc HTML to TSV: extract the listed records' fields from a generated web page (arXiv 2501.05414).

    Knobs `level` (0.5k/2k/8k output tokens) and `sponsored_rate`; metric: row-level precision/recall/F1.
    """

    REWARD: ClassVar[str] = "row-level F1 of the one answer: 0 to 1"

    SUCCESS_METRIC: ClassVar[str] = "f1"
    REWARD_METRIC: ClassVar[str] = "f1"
    Knobs = HtmlToTsvKnobs

    def _generate(self) -> None:
        rng = self.np_random
        self.topic = TOPICS[int(rng.integers(len(TOPICS)))]
        n_fields = int(rng.integers(3, len(self.topic.fields) + 1))
        chosen = rng.choice(len(self.topic.fields), size=n_fields, replace=False)
        self.header = tuple(self.topic.fields[i] for i in sorted(int(k) for k in chosen))
        items = self._draw_items(self._target_tokens())
        self.rows = [tuple(rec[f] for f in self.header) for rec, sponsored in items if not sponsored]
        self.page = render_page(rng, self.topic, render_listing(rng, self.topic, items))
        self.reference = format_tsv(self.header, self.rows)

    def _draw_items(self, target: float) -> list[tuple[Record, bool]]:
        """Records (with a sponsored flag) while the reference TSV stays within `target` tokens."""
        rng, seen, items = self.np_random, set(), []
        chars = len(format_tsv(self.header, []))
        while True:
            rec = self.topic.draw(rng)
            row = tuple(rec[f] for f in self.header)
            if row in seen:
                continue
            sponsored = bool(rng.random() < self.sponsored_rate)
            too_long = (chars + len("\t".join(row)) + 1) / CHARS_PER_TOKEN > target
            if not sponsored and too_long and chars > len(format_tsv(self.header, [])):
                return items
            seen.add(row)
            chars += 0 if sponsored else len("\t".join(row)) + 1
            items.append((rec, sponsored))

    def _prompt(self) -> str:
        filtering = (
            "Skip the entries marked as Sponsored: they are advertisements, not part of the listing."
            if self.sponsored_rate > 0
            else "Include every entry of the listing."
        )
        plural = self.topic.name if self.topic.name != "staff" else "staff members"
        return PROMPT.format(
            plural=plural, noun=self.topic.noun, fields=", ".join(self.header), filtering=filtering,
            header="\t".join(self.header), page=self.page,
        )

    def _score(self, text: str) -> tuple[dict[str, float], str | None]:
        rows, error = parse_tsv(text, self.header)
        if rows is None:
            return {"f1": 0.0, "precision": 0.0, "recall": 0.0}, error
        return row_f1(rows, self.rows), None

    def wrong_action(self, rng: np.random.Generator) -> str:
        """The reference table without its last row."""
        return format_tsv(self.header, self.rows[:-1])
