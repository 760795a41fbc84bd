"""User-facing errors of the engine.

An :class:`InputError` is an *expected* problem with what the user gave us (a file, a column, a
flag). The CLI prints its message as a single line, without a traceback, and exits with status 2.
Every message names the file, row or column concerned and says what to do about it.
"""


class InputError(ValueError):
    """Bad input that the user can fix; the message is one line that says how."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
