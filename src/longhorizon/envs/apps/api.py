"""The app APIs of `longhorizon/Apps-v0` (see `apps.py`): email, calendar, contacts, files, notes, payments.

Each API is a function `fn(world, **arguments) -> JSON value` registered with
`@api(app)` under `APIS[app][name]`, with an OpenAI-style function schema
generated from its signature and docstring (`core.tools.tool_schema`). The env validates the
arguments against the schema (the shared `tools` validator) before the call; a
call that is not allowed in the current state (an unknown id, a bad date, too
little money) raises `ToolError`, which the agent sees as an error result.
Reads never change the database.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, get_args

from longhorizon.envs.apps.world import World, add_email, add_event, add_note, add_transaction, day_str
from longhorizon.envs.core.tools import ToolError, tool_schema

App = Literal["email", "calendar", "contacts", "files", "notes", "payments"]
APPS: tuple[str, ...] = get_args(App)
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
TIME_RE = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
MAX_CHARS = 5000  # every string argument (and list item) is at most this long


@dataclass(frozen=True)
class Api:
    app: str
    schema: dict[str, Any]  # OpenAI function schema
    fn: Callable[..., Any]


APIS: dict[str, dict[str, Api]] = {app: {} for app in APPS}


def api(app: str, limits: dict[str, dict[str, Any]] | None = None):
    """Register the decorated function as `app`'s API of the same name; its schema comes from the signature and
    docstring (`tool_schema`; the `world` argument is not the caller's). Every string is at most `MAX_CHARS` long
    and every `*_id` is >= 1; `limits` adds other bounds (minimum, maximum) per argument."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        schema = tool_schema(fn, limits, bound=("world",))
        for arg, prop in schema["function"]["parameters"]["properties"].items():
            _bound(prop, arg)
        APIS[app][fn.__name__] = Api(app, schema, fn)
        return fn

    return register


def _bound(prop: dict[str, Any], arg: str) -> None:
    """The bounds every API shares: strings (and string list items) <= MAX_CHARS, ids >= 1."""
    for schema in (prop, prop.get("items", {})):
        if schema.get("type") == "string":
            schema["maxLength"] = MAX_CHARS
    if prop.get("type") == "integer" and arg.endswith("_id"):
        prop["minimum"] = 1


def _get(world: World, table: str, key: Any, what: str) -> dict:
    record = world.db[table].get(key)
    if record is None:
        raise ToolError(f"no {what} {key!r}")
    return record


def _check_date(value: str) -> str:
    try:
        if DATE_RE.fullmatch(value):
            return day_str(date.fromisoformat(value))
    except ValueError:
        pass
    raise ToolError(f"dates are YYYY-MM-DD, got {value[:40]!r}")


def _check_emails(addresses: list[str]) -> list[str]:
    if not addresses:
        raise ToolError("give at least one recipient address")
    bad = [a for a in addresses if "@" not in a]
    if bad:
        raise ToolError(f"not an email address: {bad[0][:60]!r}")
    return [a.strip().lower() for a in addresses]


def _check_attendees(addresses: list[str]) -> list[str]:
    """Attendee addresses (an empty list is fine: an event just for you)."""
    return _check_emails(addresses) if addresses else []


def _maybe(check: Callable[[Any], Any], value: Any) -> Any:
    """`check(value)`, or None for an omitted (None) optional field."""
    return None if value is None else check(value)


def _matches(query: str, *fields: str) -> bool:
    return query.lower() in " ".join(fields).lower()


# -- contacts ----------------------------------------------------------------------------------


@api("contacts")
def search_contacts(world: World, query: str = "", group: str = "") -> list[dict]:
    """Search contacts by name or email (substring) and/or group. Returns full contact records.

    Args:
        query: text to look for ('' = all)
        group: only contacts in this group ('' = any)
    """
    return [c for c in world.db["contacts"].values() if (not group or group in c["groups"])
            and _matches(query, c["first_name"] + " " + c["last_name"], c["email"])]


@api("contacts")
def show_contact(world: World, contact_id: int) -> dict:
    """Show one contact.

    Args:
        contact_id: the contact's id
    """
    return _get(world, "contacts", contact_id, "contact with id")


@api("contacts")
def update_contact(world: World, contact_id: int, phone: str | None = None, email: str | None = None,
                   groups: list[str] | None = None) -> dict:
    """Change a contact's phone, email or groups (omitted fields stay).

    Args:
        contact_id: the contact's id
        phone: new phone
        email: new email
        groups: new list of groups
    """
    record = _get(world, "contacts", contact_id, "contact with id")
    new_email = _maybe(_check_emails, None if email is None else [email])
    updates = {"phone": phone, "email": new_email and new_email[0], "groups": groups}
    record.update({k: v for k, v in updates.items() if v is not None})
    return record


# -- email -------------------------------------------------------------------------------------


@api("email")
def search_emails(world: World, query: str = "", sender: str = "",
                  folder: Literal["inbox", "sent", "all"] = "all") -> list[dict]:
    """Search emails by text in subject/body/sender. Returns summaries (use show_email for the body).

    Args:
        query: text to look for ('' = all)
        sender: only emails from this address ('' = any)
        folder: which folder
    """
    found = [e for e in world.db["emails"].values()
             if _matches(query, e["subject"], e["body"], e["from"]) and sender.lower() in e["from"]
             and folder in ("all", e["folder"])]
    return [{k: e[k] for k in ("email_id", "folder", "from", "to", "subject", "date")}
            for e in sorted(found, key=lambda e: e["date"], reverse=True)]


@api("email")
def show_email(world: World, email_id: int) -> dict:
    """Show one email with its body.

    Args:
        email_id: the email's id
    """
    return _get(world, "emails", email_id, "email with id")


@api("email")
def send_email(world: World, to: list[str], subject: str, body: str) -> dict:
    """Send an email from your address.

    Args:
        to: recipient addresses
        subject: subject line
        body: message text
    """
    record = add_email(world, world.me["email"], _check_emails(to), subject, body, world.today, folder="sent")
    return {"email_id": record["email_id"], "status": "sent"}


@api("email")
def delete_email(world: World, email_id: int) -> dict:
    """Delete an email.

    Args:
        email_id: the email's id
    """
    _get(world, "emails", email_id, "email with id")
    del world.db["emails"][email_id]
    return {"deleted": email_id}


# -- calendar ----------------------------------------------------------------------------------


@api("calendar")
def search_events(world: World, query: str = "", date: str = "", attendee: str = "") -> list[dict]:
    """Search events by title text, date (YYYY-MM-DD) and/or attendee address.

    Args:
        query: text in the title ('' = any)
        date: only this day, YYYY-MM-DD ('' = any)
        attendee: only events with this attendee address ('' = any)
    """
    day = _check_date(date) if date else ""
    found = [e for e in world.db["events"].values() if _matches(query, e["title"]) and day in ("", e["date"])
             and (not attendee or attendee.lower() in e["attendees"])]
    return sorted(found, key=lambda e: (e["date"], e["start_time"]))


@api("calendar")
def show_event(world: World, event_id: int) -> dict:
    """Show one event.

    Args:
        event_id: the event's id
    """
    return _get(world, "events", event_id, "event with id")


@api("calendar", {"duration_minutes": {"minimum": 1, "maximum": 1440}})
def create_event(world: World, title: str, date: str, start_time: str, duration_minutes: int = 60,
                 attendees: list[str] | None = None, location: str = "") -> dict:
    """Create an event.

    Args:
        title: title
        date: YYYY-MM-DD
        start_time: HH:MM, 24-hour
        duration_minutes: length in minutes
        attendees: attendee addresses (not you)
        location: where
    """
    people = _check_attendees(attendees or [])
    record = add_event(world, title, _as_date(date), _check_time(start_time), duration_minutes, people, location)
    return {"event_id": record["event_id"], "status": "created"}


@api("calendar", {"duration_minutes": {"minimum": 1, "maximum": 1440}})
def update_event(world: World, event_id: int, title: str | None = None, date: str | None = None,
                 start_time: str | None = None, duration_minutes: int | None = None,
                 attendees: list[str] | None = None, location: str | None = None) -> dict:
    """Change an event's fields (omitted fields stay).

    Args:
        event_id: the event's id
        title: title
        date: YYYY-MM-DD
        start_time: HH:MM, 24-hour
        duration_minutes: length in minutes
        attendees: attendee addresses (not you)
        location: where
    """
    record = _get(world, "events", event_id, "event with id")
    updates = {"title": title, "date": _maybe(_check_date, date), "start_time": _maybe(_check_time, start_time),
               "duration_minutes": duration_minutes, "attendees": _maybe(_check_attendees, attendees),
               "location": location}
    record.update({k: v for k, v in updates.items() if v is not None})
    return record


@api("calendar")
def delete_event(world: World, event_id: int) -> dict:
    """Delete an event.

    Args:
        event_id: the event's id
    """
    _get(world, "events", event_id, "event with id")
    del world.db["events"][event_id]
    return {"deleted": event_id}


def _as_date(value: str) -> date:
    return date.fromisoformat(_check_date(value))


def _check_time(value: str) -> str:
    if not TIME_RE.fullmatch(value):
        raise ToolError(f"times are HH:MM (24-hour), got {value[:40]!r}")
    return value


# -- files -------------------------------------------------------------------------------------


@api("files")
def list_files(world: World, directory: str = "/") -> list[str]:
    """List file paths under a directory.

    Args:
        directory: e.g. '/documents' ('' or '/' = all)
    """
    prefix = directory.rstrip("/") + "/"
    return sorted(p for p in world.db["files"] if p.startswith(prefix))


@api("files")
def read_file(world: World, path: str) -> dict:
    """Read a file.

    Args:
        path: absolute path
    """
    return _get(world, "files", path, "file at")


@api("files")
def write_file(world: World, path: str, content: str) -> dict:
    """Create or overwrite a file.

    Args:
        path: absolute path
        content: file text
    """
    if not path.startswith("/") or path.endswith("/"):
        raise ToolError(f"a file path starts with '/' and does not end with '/', got {path[:60]!r}")
    world.db["files"][path] = {"path": path, "content": content, "modified": day_str(world.today)}
    return {"path": path, "status": "written"}


@api("files")
def delete_file(world: World, path: str) -> dict:
    """Delete a file.

    Args:
        path: absolute path
    """
    _get(world, "files", path, "file at")
    del world.db["files"][path]
    return {"deleted": path}


# -- notes -------------------------------------------------------------------------------------


@api("notes")
def search_notes(world: World, query: str = "") -> list[dict]:
    """Search notes by text in title or body. Returns ids and titles.

    Args:
        query: text ('' = all)
    """
    return [{"note_id": n["note_id"], "title": n["title"]} for n in world.db["notes"].values()
            if _matches(query, n["title"], n["body"])]


@api("notes")
def show_note(world: World, note_id: int) -> dict:
    """Show one note.

    Args:
        note_id: the note's id
    """
    return _get(world, "notes", note_id, "note with id")


@api("notes")
def create_note(world: World, title: str, body: str) -> dict:
    """Create a note.

    Args:
        title: title
        body: text
    """
    return {"note_id": add_note(world, title, body, world.today)["note_id"], "status": "created"}


@api("notes")
def update_note(world: World, note_id: int, title: str | None = None, body: str | None = None) -> dict:
    """Change a note's title or body (omitted fields stay).

    Args:
        note_id: the note's id
        title: new title
        body: new text
    """
    record = _get(world, "notes", note_id, "note with id")
    record.update({k: v for k, v in {"title": title, "body": body}.items() if v is not None})
    record["updated"] = day_str(world.today)
    return record


@api("notes")
def delete_note(world: World, note_id: int) -> dict:
    """Delete a note.

    Args:
        note_id: the note's id
    """
    _get(world, "notes", note_id, "note with id")
    del world.db["notes"][note_id]
    return {"deleted": note_id}


# -- payments ----------------------------------------------------------------------------------


@api("payments")
def show_balance(world: World) -> dict:
    """Your account balance in dollars."""
    return {"balance": world.db["account"]["me"]["balance"]}


@api("payments")
def search_transactions(world: World, query: str = "", direction: Literal["sent", "received", "all"] = "all",
                        counterparty: str = "") -> list[dict]:
    """Search your payments (newest first) by description text, direction and/or counterparty address.

    Args:
        query: text in the description ('' = any)
        direction: sent = you paid, received = you were paid
        counterparty: the other person's address ('' = anyone)
    """
    found = [t for t in world.db["transactions"].values() if _matches(query, t["description"])
             and direction in ("all", t["direction"]) and counterparty.lower() in t["counterparty"]]
    return sorted(found, key=lambda t: t["date"], reverse=True)


@api("payments", {"amount": {"minimum": 0.01, "maximum": 100000}})
def send_payment(world: World, to_email: str, amount: float, description: str) -> dict:
    """Send money to someone's email address.

    Args:
        to_email: recipient address
        amount: dollars, at most 2 decimals
        description: what it is for
    """
    cents = round(amount * 100)
    if abs(cents - amount * 100) > 1e-6:
        raise ToolError(f"amounts have at most 2 decimals, got {amount}")
    to_email = _check_emails([to_email])[0]
    account = world.db["account"]["me"]
    if cents > round(account["balance"] * 100):
        raise ToolError(f"insufficient balance: you have ${account['balance']:.2f}")
    account["balance"] = (round(account["balance"] * 100) - cents) / 100
    record = add_transaction(world, "sent", to_email, cents / 100, description, world.today)
    return {"transaction_id": record["transaction_id"], "status": "sent"}


def api_index(app: str) -> list[dict]:
    """The function schemas of one app (what the validator and `api_docs` read)."""
    return [a.schema for a in APIS[app].values()]
