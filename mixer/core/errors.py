"""The one exception type a user should ever see from mixer.

Library functions raise `MixerError` for bad input with a single line that names the culprit
(file, field or domain) and what would fix it; the CLI turns it into that line on stderr and
exit code 2, without a traceback. Anything else escaping is a bug in mixer.
"""
from __future__ import annotations


class MixerError(Exception):
    """Bad input or state that the user can fix; the message is one line and says how."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        if "\n" in message:
            message = " ".join(message.split())
        super().__init__(message)
