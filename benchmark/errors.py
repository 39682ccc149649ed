"""The one exception type that means "the user gave us something wrong".

The CLI turns it into a single line on stderr and exit code 2; anything else is a bug and keeps its
traceback. Messages name the file, row or task and say what to do.
"""


class UserError(Exception):
    """Bad input or a missing prerequisite, reported as one line without a traceback."""
