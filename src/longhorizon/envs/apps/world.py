"""The seeded database behind `longhorizon/Apps-v0` (see `apps.py`), and the state diff its checks use.

The database is plain data: `db[table][key] = record` (dicts of JSON values),
so a snapshot is a deep copy and a diff compares records. Tables: contacts,
emails, events, files (keyed by path), notes, transactions, account ("me").
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np

Db = dict[str, dict[Any, dict[str, Any]]]
TABLES = ("contacts", "emails", "events", "files", "notes", "transactions", "account")
GROUPS = ("family", "friends", "work", "gym")

FIRST_NAMES = ("Alice", "Bruno", "Chloe", "Daniel", "Elena", "Farid", "Grace", "Hiro", "Ingrid", "Jamal", "Keiko",
               "Liam", "Maya", "Nikhil", "Olivia", "Pedro", "Quinn", "Rosa", "Samir", "Tessa", "Umar", "Vera",
               "Wesley", "Ximena", "Yusuf", "Zoe", "Aaron", "Bianca", "Carlos", "Dana")
LAST_NAMES = ("Smith", "Garcia", "Chen", "Okafor", "Novak", "Rossi", "Kim", "Silva", "Müller", "Haddad", "Patel",
              "Nguyen", "Johnson", "Kowalski", "Ibrahim", "Larsen", "Moreau", "Tanaka", "Walsh", "Costa")
RESTAURANTS = ("Luigi's Trattoria", "The Golden Dragon", "Casa Verde", "Blue Fin Sushi", "The Corner Bistro",
               "Spice Route", "Harbor Grill", "Le Petit Jardin")
MEETINGS = ("Project review", "Budget planning", "Design sync", "Quarterly kickoff", "Roadmap discussion",
            "Client prep", "Hiring debrief", "Launch retro")
EVENT_TITLES = ("Dentist", "Yoga class", "Team sync", "Haircut", "Car service", "Piano lesson", "Book club",
                "Gym session")
EMAIL_TOPICS = (("Weekend plans", "Are you free on Saturday? Thinking of a hike."),
                ("Photos", "Here are the photos from last time, finally sorted."),
                ("Quick question", "Do you still have the charger I lent you?"),
                ("Recipe", "The soup recipe you asked for is in my blog post."),
                ("Slides", "I updated the slides; have a look when you can."),
                ("Newsletter", "This month: new park opening, farmers market hours."),
                ("Reminder", "Don't forget to bring the board game."),
                ("Thanks!", "Thanks again for your help with the move."))
PAYMENT_REASONS = ("Movie tickets", "Groceries", "Concert tickets", "Taxi", "Lunch", "Gift share", "Gas money",
                   "Coffee beans", "Museum tickets", "Parking")
FILES = {
    "/documents/resume.txt": "Experienced project manager. Skills: planning, budgeting, communication.",
    "/documents/recipes/pancakes.txt": "2 eggs, 1 cup flour, 1 cup milk, 1 tbsp sugar. Whisk and fry.",
    "/documents/travel/itinerary.txt": "Day 1: arrive, check in. Day 2: old town tour. Day 3: fly home.",
    "/documents/wifi.txt": "Network: HomeNet-5G. Password: blue-otter-42.",
    "/work/meeting_notes.txt": "Action items: finalize budget, send invite, book room.",
    "/work/ideas.txt": "Automate the weekly report. Shorter standups. New onboarding doc.",
}
NOTES = (("Groceries", "milk, eggs, spinach, coffee"), ("Books to read", "Dune; The Overstory; Piranesi"),
         ("Packing list", "passport, charger, adapters, sunscreen"), ("Gift ideas", "scarf, board game, plant"))


@dataclass
class World:
    """One user's apps: `today`, who `me` is, and the database."""

    today: date
    me: dict[str, str]
    db: Db


def day_str(d: date) -> str:
    return d.isoformat()


def long_date(d: date) -> str:
    """E.g. 'Friday, March 14' (for task text)."""
    return f"{d:%A}, {d:%B} {d.day}"


def pick(rng: np.random.Generator, seq: Any, k: int | None = None) -> Any:
    """A seeded choice from a sequence (k items without replacement when k is given)."""
    if k is None:
        return seq[int(rng.integers(len(seq)))]
    return [seq[int(i)] for i in rng.choice(len(seq), size=k, replace=False)]


def next_id(table: dict[Any, Any]) -> int:
    return max(table, default=0) + 1


def new_world(rng: np.random.Generator) -> World:
    """A user with 14 contacts and a few weeks of emails, events, files, notes and payments."""
    today = date(2025, 1, 1) + timedelta(days=int(rng.integers(0, 365)))
    firsts = pick(rng, FIRST_NAMES, 15)
    lasts = [pick(rng, LAST_NAMES) for _ in firsts]
    me = {"name": f"{firsts[0]} {lasts[0]}", "email": _email(firsts[0], lasts[0]), "phone": _phone(rng)}
    db: Db = {t: {} for t in TABLES}
    db["account"]["me"] = {"balance": float(rng.integers(1500, 3000))}
    world = World(today, me, db)
    for i, (first, last) in enumerate(zip(firsts[1:], lasts[1:])):
        add_contact(world, rng, first, last, [GROUPS[i % len(GROUPS)]])
    _background(world, rng)
    return world


def add_contact(world: World, rng: np.random.Generator, first: str, last: str, groups: list[str]) -> dict:
    cid = next_id(world.db["contacts"])
    birthday = f"{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}"
    record = {"contact_id": cid, "first_name": first, "last_name": last, "email": _email(first, last),
              "phone": _phone(rng), "groups": groups, "birthday": birthday}
    world.db["contacts"][cid] = record
    return record


def _email(first: str, last: str) -> str:
    return f"{first.lower()}.{last.lower().replace('ü', 'u')}@mail.com"


def _phone(rng: np.random.Generator) -> str:
    return f"+1-555-{int(rng.integers(100, 1000))}-{int(rng.integers(1000, 10000))}"


def _background(world: World, rng: np.random.Generator) -> None:
    contacts = list(world.db["contacts"].values())
    for _ in range(10):
        subject, body = pick(rng, EMAIL_TOPICS)
        add_email(world, pick(rng, contacts)["email"], [world.me["email"]], subject, body, _past(world, rng, 20))
    for _ in range(8):
        title = pick(rng, EVENT_TITLES)
        when = world.today + timedelta(days=int(rng.integers(-10, 11)))
        add_event(world, title, when, f"{int(rng.integers(8, 18)):02d}:00", 60, [])
    for path, content in FILES.items():
        world.db["files"][path] = {"path": path, "content": content, "modified": day_str(_past(world, rng, 60))}
    for title, body in NOTES:
        add_note(world, title, body, _past(world, rng, 60))
    for _ in range(10):
        direction = "sent" if rng.random() < 0.5 else "received"
        amount = float(rng.integers(5, 120))
        add_transaction(world, direction, pick(rng, contacts)["email"], amount, pick(rng, PAYMENT_REASONS),
                        _past(world, rng, 30))


def _past(world: World, rng: np.random.Generator, days: int) -> date:
    return world.today - timedelta(days=int(rng.integers(1, days + 1)))


def add_email(world: World, sender: str, to: list[str], subject: str, body: str, when: date,
              folder: str = "inbox") -> dict:
    eid = next_id(world.db["emails"])
    record = {"email_id": eid, "folder": folder, "from": sender, "to": list(to), "subject": subject, "body": body,
              "date": day_str(when)}
    world.db["emails"][eid] = record
    return record


def add_event(world: World, title: str, when: date, start: str, minutes: int, attendees: list[str],
              location: str = "") -> dict:
    eid = next_id(world.db["events"])
    record = {"event_id": eid, "title": title, "date": day_str(when), "start_time": start,
              "duration_minutes": minutes, "attendees": list(attendees), "location": location}
    world.db["events"][eid] = record
    return record


def add_note(world: World, title: str, body: str, when: date) -> dict:
    nid = next_id(world.db["notes"])
    record = {"note_id": nid, "title": title, "body": body, "updated": day_str(when)}
    world.db["notes"][nid] = record
    return record


def add_transaction(world: World, direction: str, counterparty: str, amount: float, description: str,
                    when: date) -> dict:
    tid = next_id(world.db["transactions"])
    record = {"transaction_id": tid, "direction": direction, "counterparty": counterparty, "amount": amount,
              "description": description, "date": day_str(when)}
    world.db["transactions"][tid] = record
    return record


# -- diffs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One record that differs between two snapshots."""

    table: str
    key: Any
    kind: str  # "added" | "removed" | "modified"


def snapshot(db: Db) -> Db:
    return copy.deepcopy(db)


def diff(before: Db, after: Db) -> list[Change]:
    """Every record added, removed or modified, table by table."""
    changes = []
    for table in TABLES:
        old, new = before.get(table, {}), after.get(table, {})
        changes += [Change(table, k, "added") for k in new if k not in old]
        changes += [Change(table, k, "removed") for k in old if k not in new]
        changes += [Change(table, k, "modified") for k in new if k in old and new[k] != old[k]]
    return changes


def added(before: Db, after: Db, table: str) -> list[dict]:
    """Records of `table` present after but not before."""
    return [r for k, r in after[table].items() if k not in before[table]]
