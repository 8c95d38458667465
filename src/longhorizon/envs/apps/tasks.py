"""Task templates of `longhorizon/Apps-v0` (see `apps.py`), by difficulty.

A template adds its own data to a fresh world (the people, emails and events
the task is about, plus distractors), then returns a `Task`: the instruction,
a scripted solution (tool calls, played by the oracle one per step) and
`check(before, after, answer) -> (named checks, explained changes)`. The env
adds one more named check, `no_other_changes`: every record that differs
between the two snapshots must be one the task explains (AppWorld's
"nothing else changed" collateral-damage tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np

from longhorizon.envs.apps.world import (
    FILES, GROUPS, MEETINGS, PAYMENT_REASONS, RESTAURANTS, Db, World, add_email, add_event, add_transaction, added,
    day_str, long_date, pick,
)
from longhorizon.envs.core.tools import ToolCall

Checks = dict[str, bool]
Explained = set[tuple[str, Any]]


@dataclass
class Task:
    template: str
    instruction: str
    solution: list[ToolCall]
    check: Callable[[Db, Db, str | None], tuple[Checks, Explained]]


# -- helpers -----------------------------------------------------------------------------------


def docs(app: str) -> ToolCall:
    return ToolCall("api_docs", {"app": app})


def call(app: str, api: str, **arguments: Any) -> ToolCall:
    return ToolCall("call_api", {"app": app, "api": api, "arguments": arguments})


def finish(answer: str | None = None) -> ToolCall:
    return ToolCall("complete_task", {} if answer is None else {"answer": answer})


def full(person: dict) -> str:
    return f"{person['first_name']} {person['last_name']}"


def key(person: dict) -> str:
    """A check-name fragment for a person."""
    return person["first_name"].lower()


def cents(amount: float) -> int:
    return round(amount * 100)


def contacts(world: World) -> list[dict]:
    return list(world.db["contacts"].values())


def sent_emails(before: Db, after: Db) -> list[dict]:
    return [e for e in added(before, after, "emails") if e["folder"] == "sent"]


def payments(before: Db, after: Db) -> list[dict]:
    return [t for t in added(before, after, "transactions") if t["direction"] == "sent"]


def balance_dropped_by(before: Db, after: Db, amount: float) -> bool:
    return cents(before["account"]["me"]["balance"]) - cents(after["account"]["me"]["balance"]) == cents(amount)


def ids(table: str, records: list[dict], id_field: str) -> Explained:
    return {(table, r[id_field]) for r in records}


def paid_once(pays: list[dict], email: str, amount: float) -> bool:
    """Exactly one new payment to `email`, of `amount`."""
    to_them = [t for t in pays if t["counterparty"] == email]
    return len(to_them) == 1 and cents(to_them[0]["amount"]) == cents(amount)


def price(rng: np.random.Generator, low: int, high: int) -> float:
    return float(rng.integers(low, high)) + float(pick(rng, (0.0, 0.5, 0.25, 0.75)))


# -- difficulty 1: one app changed, one or two looked up -----------------------------------------


def pay_contact(world: World, rng: np.random.Generator) -> Task:
    person, amount, reason = pick(rng, contacts(world)), price(rng, 10, 200), pick(rng, PAYMENT_REASONS)
    solution = [docs("payments"), call("contacts", "search_contacts", query=full(person)),
                call("payments", "send_payment", to_email=person["email"], amount=amount, description=reason),
                finish()]

    def check(before: Db, after: Db, answer: str | None) -> tuple[Checks, Explained]:
        pays = [t for t in payments(before, after) if t["counterparty"] == person["email"]]
        checks = {"paid_recipient_once": len(pays) == 1, "amount_correct": paid_once(pays, person["email"], amount),
                  "balance_updated": balance_dropped_by(before, after, amount)}
        return checks, ids("transactions", pays, "transaction_id") | {("account", "me")}

    return Task("pay_contact", f"Send ${amount:.2f} to {full(person)} for {reason.lower()}.", solution, check)


def delete_event(world: World, rng: np.random.Generator) -> Task:
    title = pick(rng, MEETINGS)
    when, other = (world.today + timedelta(days=int(d)) for d in rng.choice(np.arange(1, 12), 2, replace=False))
    event = add_event(world, title, when, "10:00", 60, [])
    add_event(world, title, other, "10:00", 60, [])  # same title, another day: must stay
    solution = [docs("calendar"), call("calendar", "search_events", query=title),
                call("calendar", "delete_event", event_id=event["event_id"]), finish()]

    def check(before: Db, after: Db, answer: str | None) -> tuple[Checks, Explained]:
        return {"event_deleted": event["event_id"] not in after["events"]}, {("events", event["event_id"])}

    return Task("delete_event", f"Delete the '{title}' event on {long_date(when)} from my calendar.", solution, check)


NOTE_TEXTS = (("Call the plumber", "Kitchen sink leaks; call before Friday."),
              ("Trip budget", "Flights 420, hotel 380, food 200."),
              ("Gift for mom", "She liked the blue teapot at the market."),
              ("Car", "Oil change due at 45,000 miles."))


def create_note(world: World, rng: np.random.Generator) -> Task:
    title, body = pick(rng, NOTE_TEXTS)
    solution = [docs("notes"), call("notes", "create_note", title=title, body=body), finish()]

    def check(before: Db, after: Db, answer: str | None) -> tuple[Checks, Explained]:
        notes = [n for n in added(before, after, "notes") if n["title"].strip().lower() == title.lower()]
        checks = {"note_created_once": len(notes) == 1,
                  "note_text": len(notes) == 1 and notes[0]["body"].strip() == body}
        return checks, ids("notes", notes, "note_id")

    return Task("create_note", f"Create a note titled '{title}' with the text: {body}", solution, check)


def phone_lookup(world: World, rng: np.random.Generator) -> Task:
    person = pick(rng, contacts(world))
    solution = [docs("contacts"), call("contacts", "search_contacts", query=person["first_name"]),
                finish(person["phone"])]

    def check(before: Db, after: Db, answer: str | None) -> tuple[Checks, Explained]:
        return {"answer_correct": _digits(answer or "") == _digits(person["phone"])}, set()

    text = f"What is {full(person)}'s phone number? Answer with the number only."
    return Task("phone_lookup", text, solution, check)


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


# -- difficulty 2: two or three apps -----------------------------------------------------------


def group_phones_note(world: World, rng: np.random.Generator) -> Task:
    group = pick(rng, GROUPS)
    members = [c for c in contacts(world) if group in c["groups"]]
    title = f"{group.capitalize()} phone numbers"
    body = "\n".join(f"{full(c)}: {c['phone']}" for c in members)
    solution = [docs("contacts"), call("contacts", "search_contacts", group=group), docs("notes"),
                call("notes", "create_note", title=title, body=body), finish()]

    def check(before: Db, after: Db, answer: str | None) -> tuple[Checks, Explained]:
        notes = [n for n in added(before, after, "notes") if n["title"].strip().lower() == title.lower()]
        text = notes[0]["body"] if len(notes) == 1 else ""
        others = [c for c in before["contacts"].values() if group not in c["groups"]]
        checks = {"note_created_once": len(notes) == 1,
                  "every_member_listed": bool(text) and all(c["phone"] in text for c in members),
                  "no_one_else_listed": bool(text) and not any(c["phone"] in text for c in others)}
        return checks, ids("notes", notes, "note_id")

    text = (f"Save the phone numbers of everyone in my '{group}' contact group to a new note titled '{title}', "
            "one line per person as 'First Last: phone'.")
    return Task("group_phones_note", text, solution, check)


def reschedule_meeting(world: World, rng: np.random.Generator) -> Task:
    people = pick(rng, contacts(world), 5)
    title, when = pick(rng, MEETINGS), world.today + timedelta(days=int(rng.integers(1, 7)))
    new = when + timedelta(days=int(rng.integers(1, 5)))
    attendees = [p["email"] for p in people[: int(rng.integers(2, 4))]]
    event = add_event(world, title, when, f"{int(rng.integers(9, 17)):02d}:30", 45, attendees, "Room 2")
    add_event(world, title, when + timedelta(days=7), "09:00", 45, [people[-1]["email"]], "Room 1")  # distractor
    subject = f"{title} moved to {long_date(new)}"
    body = f"Hi all, I moved '{title}' from {long_date(when)} to {long_date(new)}, same time. See you then!"
    solution = [docs("calendar"), call("calendar", "search_events", query=title, attendee=people[0]["email"]),
                call("calendar", "update_event", event_id=event["event_id"], date=day_str(new)), docs("email"),
                call("email", "send_email", to=attendees, subject=subject, body=body), finish()]

    def check(before: Db, after: Db, answer: str | None) -> tuple[Checks, Explained]:
        moved = after["events"].get(event["event_id"], {})
        rest = {k: v for k, v in moved.items() if k != "date"}
        mails = [e for e in sent_emails(before, after) if set(e["to"]) <= set(attendees)]
        notified = set().union(*(e["to"] for e in mails)) if mails else set()
        checks = {"event_moved": moved.get("date") == day_str(new),
                  "rest_of_event_unchanged": rest == {k: v for k, v in event.items() if k != "date"},
                  "attendees_notified": notified == set(attendees)}
        return checks, {("events", event["event_id"])} | ids("emails", mails, "email_id")

    text = (f"Move my '{title}' meeting with {full(people[0])} from {long_date(when)} to {long_date(new)}, at the same "
            "time, and email all of its attendees to let them know.")
    return Task("reschedule_meeting", text, solution, check)


def file_to_contact(world: World, rng: np.random.Generator) -> Task:
    path, person = pick(rng, sorted(FILES)), pick(rng, contacts(world))
    subject = f"The file {path.rsplit('/', 1)[1]}"
    content = world.db["files"][path]["content"]
    solution = [docs("files"), call("files", "read_file", path=path), docs("contacts"),
                call("contacts", "search_contacts", query=full(person)), docs("email"),
                call("email", "send_email", to=[person["email"]], subject=subject, body=content), finish()]

    def check(before: Db, after: Db, answer: str | None) -> tuple[Checks, Explained]:
        mails = [e for e in sent_emails(before, after) if e["to"] == [person["email"]]]
        one = mails[0] if len(mails) == 1 else {"subject": None, "body": ""}
        checks = {"emailed_once": len(mails) == 1, "subject_correct": one["subject"] == subject,
                  "body_has_file": content in one["body"]}
        return checks, ids("emails", mails, "email_id")

    text = f"Email the contents of my file {path} to {full(person)} with the subject '{subject}'."
    return Task("file_to_contact", text, solution, check)


# -- difficulty 3: several apps and several people -----------------------------------------------


def repay_dinner(world: World, rng: np.random.Generator) -> Task:
    people = pick(rng, contacts(world), 5)
    restaurant, other = pick(rng, RESTAURANTS, 2)
    when = world.today - timedelta(days=int(rng.integers(2, 7)))
    diners, payers = people[:4], people[: int(rng.integers(2, 4))]
    add_event(world, f"Dinner at {restaurant}", when, "19:00", 120, [p["email"] for p in diners], restaurant)
    amounts = {p["email"]: price(rng, 20, 60) for p in payers}
    me = world.me["name"].split()[0]
    for p in payers:
        body = f"Hi {me}! I covered your share at {restaurant} on {when:%A}. It came to ${amounts[p['email']]:.2f}."
        add_email(world, p["email"], [world.me["email"]], f"Dinner at {restaurant}", body, when + timedelta(days=1))
    add_email(world, diners[-1]["email"], [world.me["email"]], "Great evening",
              f"Thanks for organising dinner at {restaurant}, let's do it again!", when + timedelta(days=1))
    _old_debt(world, people[4], other)
    solution = _repay_solution(world, restaurant, payers, amounts)

    def check(before: Db, after: Db, answer: str | None) -> tuple[Checks, Explained]:
        pays, mails = payments(before, after), sent_emails(before, after)
        checks = {f"repaid_{key(p)}": paid_once(pays, p["email"], amounts[p["email"]]) for p in payers}
        checks |= {f"replied_{key(p)}": any(p["email"] in e["to"] for e in mails) for p in payers}
        checks["no_payment_to_others"] = all(t["counterparty"] in amounts for t in pays)
        checks["balance_updated"] = balance_dropped_by(before, after, sum(amounts.values()))
        mine = [e for e in mails if set(e["to"]) <= set(amounts)]
        explained = ids("transactions", [t for t in pays if t["counterparty"] in amounts], "transaction_id")
        return checks, explained | ids("emails", mine, "email_id") | {("account", "me")}

    text = (f"Some friends paid for my share of dinner at {restaurant} last {when:%A}. Pay each of them back the "
            f"amount they told me by email (description 'Dinner at {restaurant}'), and reply to each of them to say I paid.")
    return Task("repay_dinner", text, solution, check)


def _old_debt(world: World, person: dict, restaurant: str) -> None:
    """A distractor: an older meal someone paid for, already paid back."""
    when = world.today - timedelta(days=25)
    add_email(world, person["email"], [world.me["email"]], f"Lunch at {restaurant}",
              f"I covered lunch at {restaurant}, you owe me $18.00.", when)
    add_transaction(world, "sent", person["email"], 18.0, f"Lunch at {restaurant}", when + timedelta(days=1))


def _repay_solution(world: World, restaurant: str, payers: list[dict], amounts: dict[str, float]) -> list[ToolCall]:
    found = [e for e in world.db["emails"].values() if restaurant in e["subject"] + e["body"]]
    calls = [docs("email"), call("email", "search_emails", query=restaurant)]
    calls += [call("email", "show_email", email_id=e["email_id"]) for e in found]
    calls.append(docs("payments"))
    for p in payers:
        calls.append(call("payments", "send_payment", to_email=p["email"], amount=amounts[p["email"]],
                          description=f"Dinner at {restaurant}"))
        calls.append(call("email", "send_email", to=[p["email"]], subject=f"Re: Dinner at {restaurant}",
                          body=f"Thanks {p['first_name']}! I just sent you ${amounts[p['email']]:.2f}."))
    return calls + [finish()]


def birthday_gifts(world: World, rng: np.random.Generator) -> Task:
    group = pick(rng, GROUPS)
    members = [c for c in contacts(world) if group in c["groups"]]
    month = int(rng.integers(1, 13))
    celebrants = _set_birthdays(rng, world, members, month)
    amount = float(rng.integers(2, 6) * 10)
    birthdays = {c["email"]: day_str(date(world.today.year, month, int(c["birthday"][3:]))) for c in celebrants}
    solution = [docs("contacts"), call("contacts", "search_contacts", group=group), docs("payments")]
    solution += [call("payments", "send_payment", to_email=c["email"], amount=amount, description="Happy birthday!")
                 for c in celebrants]
    solution += [docs("calendar")] + [call("calendar", "create_event", title=f"Birthday: {full(c)}",
                                           date=birthdays[c["email"]], start_time="09:00", duration_minutes=30)
                                      for c in celebrants]

    def check(before: Db, after: Db, answer: str | None) -> tuple[Checks, Explained]:
        pays = payments(before, after)
        events = {e["title"].strip().lower(): e for e in added(before, after, "events")}
        checks = {f"gift_{key(c)}": paid_once(pays, c["email"], amount) for c in celebrants}
        checks |= {f"event_{key(c)}": _birthday_event_ok(events.get(f"birthday: {full(c)}".lower()),
                                                        birthdays[c["email"]]) for c in celebrants}
        checks["no_gifts_to_others"] = all(t["counterparty"] in birthdays for t in pays)
        checks["balance_updated"] = balance_dropped_by(before, after, amount * len(celebrants))
        mine = [e for t, e in events.items() if t in {f"birthday: {full(c)}".lower() for c in celebrants}]
        explained = ids("transactions", [t for t in pays if t["counterparty"] in birthdays], "transaction_id")
        return checks, explained | ids("events", mine, "event_id") | {("account", "me")}

    text = (f"For everyone in my '{group}' contact group whose birthday is in {date(2025, month, 1):%B}, send them "
            f"${amount:.2f} with the description 'Happy birthday!' and add a calendar event titled "
            f"'Birthday: First Last' on their birthday in {world.today.year}, at 09:00 for 30 minutes.")
    return Task("birthday_gifts", text, solution + [finish()], check)


def _set_birthdays(rng: np.random.Generator, world: World, members: list[dict], month: int) -> list[dict]:
    """1-2 members born in `month`, the others not; one non-member born in `month` too (a distractor)."""
    celebrants = pick(rng, members, int(rng.integers(1, 3)))
    others = [c for c in contacts(world) if c not in members]
    for c in contacts(world):
        born_then = c in celebrants or c is others[0]
        birth_month = month if born_then else (month + int(rng.integers(1, 12)) - 1) % 12 + 1
        c["birthday"] = f"{birth_month:02d}-{c['birthday'][3:]}"
    return celebrants


def _birthday_event_ok(event: dict | None, day: str) -> bool:
    return event is not None and event["date"] == day and event["start_time"] == "09:00" \
        and event["duration_minutes"] == 30


def cancel_day(world: World, rng: np.random.Generator) -> Task:
    day = world.today + timedelta(days=int(rng.integers(1, 6)))
    _clear_day(world, day)
    people = contacts(world)
    events = [add_event(world, title, day, f"{9 + 2 * i:02d}:00", 60,
                        [p["email"] for p in pick(rng, people, int(rng.integers(1, 4)))])
              for i, title in enumerate(pick(rng, MEETINGS, int(rng.integers(2, 4))))]
    events.append(add_event(world, "Gym session", day, "18:00", 60, []))  # no one to email
    add_event(world, pick(rng, MEETINGS), day + timedelta(days=1), "10:00", 60, [people[0]["email"]])  # stays
    attendees = set().union(*(e["attendees"] for e in events))
    titles = "\n".join(e["title"] for e in events)
    solution = [docs("calendar"), call("calendar", "search_events", date=day_str(day))]
    solution += [call("calendar", "delete_event", event_id=e["event_id"]) for e in events] + [docs("email")]
    solution += [call("email", "send_email", to=e["attendees"], subject=f"Cancelled: {e['title']}",
                      body=f"Sorry, I have to cancel '{e['title']}' on {long_date(day)}.")
                 for e in events if e["attendees"]]
    solution += [docs("notes"), call("notes", "create_note", title="To reschedule", body=titles), finish()]

    def check(before: Db, after: Db, answer: str | None) -> tuple[Checks, Explained]:
        mails = [e for e in sent_emails(before, after) if set(e["to"]) <= attendees]
        notified = set().union(*(e["to"] for e in mails)) if mails else set()
        notes = [n for n in added(before, after, "notes") if n["title"].strip().lower() == "to reschedule"]
        checks = {f"cancelled_{e['title'].lower().replace(' ', '_')}": e["event_id"] not in after["events"]
                  for e in events}
        checks |= {"attendees_notified": notified == attendees, "note_created_once": len(notes) == 1,
                   "note_lists_events": len(notes) == 1 and all(e["title"] in notes[0]["body"] for e in events)}
        explained = {("events", e["event_id"]) for e in events} | ids("emails", mails, "email_id")
        return checks, explained | ids("notes", notes, "note_id")

    text = (f"I'll be away on {long_date(day)}. Cancel all my events that day, email the attendees of each cancelled "
            "event that it is cancelled, and save a note titled 'To reschedule' listing the cancelled event titles, "
            "one per line.")
    return Task("cancel_day", text, solution, check)


def _clear_day(world: World, day: date) -> None:
    """Move background events off `day`, so the task's events are the whole day."""
    for event in world.db["events"].values():
        if event["date"] == day_str(day):
            event["date"] = day_str(day - timedelta(days=1))


TEMPLATES: dict[int, dict[str, Callable[[World, np.random.Generator], Task]]] = {
    1: {"pay_contact": pay_contact, "delete_event": delete_event, "create_note": create_note,
        "phone_lookup": phone_lookup},
    2: {"group_phones_note": group_phones_note, "reschedule_meeting": reschedule_meeting,
        "file_to_contact": file_to_contact},
    3: {"repay_dinner": repay_dinner, "birthday_gifts": birthday_gifts, "cancel_day": cancel_day},
}
