"""Domain errors raised by the service functions.

The front ends map them in one place each: the CLI to an exit code and one line on
stderr, the REST API to an HTTP status with the field named.

    NotifyError          base of everything below
    ├── InvalidInput     bad value of a named field              CLI exit 2, HTTP 422
    ├── NotFound         unknown id                              CLI exit 3, HTTP 404
    ├── Conflict         clashes with the stored state           CLI exit 4, HTTP 409
    ├── StorageError     the database is unreachable or unusable CLI exit 5, HTTP 503
    │   └── DataRefused  the database refused a value as data    CLI exit 2, HTTP 422
    └── Unavailable      another outside service failed (SMTP)   CLI exit 6, HTTP 502

A StorageError's message names the database (its URL without the password) for the
operator, on the command line and in the log; the REST API and the admin UI answer with
a generic message instead and log the detail under the request id.
"""

#: Characters of a caller's value an error message quotes; the rest is cut. An import of
#: 380 rows of 130 KB phones once made a 198 MB error page.
QUOTED_CHARS = 40


def quoted(value: object) -> str:
    """``value``'s repr for an error message, cut to ``QUOTED_CHARS`` characters."""
    text = str(value)
    if len(text) <= QUOTED_CHARS:
        return repr(text)
    return f"{text[:QUOTED_CHARS]!r}… ({len(text):,} characters)"


class NotifyError(Exception):
    """Base of every error a user can cause or fix."""

    exit_code = 1

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidInput(NotifyError):
    """A value that can never be accepted, such as a malformed phone."""

    exit_code = 2


class NotFound(NotifyError):
    """An id that names nothing stored."""

    exit_code = 3


class Conflict(NotifyError):
    """A valid request that clashes with what is stored (duplicate phone, ended mailing)."""

    exit_code = 4


class StorageError(NotifyError):
    """The database cannot be reached or has the wrong schema."""

    exit_code = 5


class DataRefused(StorageError):
    """A value the database would not store (a NUL in text on PostgreSQL, a number out of
    its range) that no field check caught: the caller's input, not the database's state."""

    exit_code = 2


class Unavailable(NotifyError):
    """A service outside ours (the SMTP server) failed, after retries."""

    exit_code = 6
