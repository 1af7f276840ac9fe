"""The one exception type for errors a user can cause and fix."""


class StudioError(Exception):
    """A problem the user can fix. The message says what went wrong and what to do about it.

    The CLI prints it as one line on stderr and exits with code 2; the UI shows it as a warning.
    """


def cannot_create(
    path: object, error: OSError, advice: str = "choose a folder you can write to"
) -> StudioError:
    """The error for a folder that could not be made (a missing drive, no permission, a file in the way)."""
    return StudioError(f"cannot create {path} ({error.strerror or error}); {advice}")
