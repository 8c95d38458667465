"""Errors that mean "the user asked for something that cannot be done".

The CLI prints them as one line and exits with code 2, with no traceback.
"""


class UserError(Exception):
    """Bad input: unknown env or model, malformed option, missing package, unwritable path."""


class ConfigError(UserError):
    """A config key that does not exist or holds a bad value; `loc` is the key's path, e.g. ("algorithm", "kl_coef")."""

    def __init__(self, message: str, loc: tuple = ()):
        super().__init__(message)
        self.loc = loc
