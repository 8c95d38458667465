"""Errors that mean "the user asked for something that cannot be done".

The CLI prints them as one line and exits with code 2, with no traceback.
"""


class UserError(Exception):
    """Bad input: unknown env or model, malformed option, missing package, unwritable path."""
