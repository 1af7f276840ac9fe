"""The one exception type for errors a user can cause and fix."""


class StudioError(Exception):
    """A problem the user can fix. The message says what went wrong and what to do about it.

    The CLI prints it as one line on stderr and exits with code 2; the UI shows it as a warning.
    """
