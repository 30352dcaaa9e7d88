"""The one exception type a user should ever see from mixer.

Library functions raise `MixerError` for bad input with a single line that names the culprit
(file, field or domain) and what would fix it; the CLI turns it into that line on stderr and
exit code 2, without a traceback. Anything else escaping is a bug in mixer.
"""
from __future__ import annotations

from collections.abc import Iterable


class MixerError(Exception):
    """Bad input or state that the user can fix; the message is one line and says how."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        message = _from_worker(message)
        if "\n" in message:
            message = " ".join(message.split())
        super().__init__(message)


def listed(names: Iterable[str], *, at_most: int = 12) -> str:
    """`names` joined for a one-line message, cut after `at_most` with how many there are in all:
    an error about one domain of 10,000 must not print the other 9,999 names."""
    names = list(names)
    if len(names) <= at_most:
        return ", ".join(names)
    return f"{', '.join(names[:at_most])}, ... ({len(names):,} in all)"


class MixerNote(UserWarning):
    """Something the user should see that is not an error (a choice mixer made for them: domains
    left out of a weight map get 0, rounded weights normalised, the one split of a saved
    DatasetDict read); the CLI prints it as one `note:` line."""


def _from_worker(message: str) -> str:
    """torch's DataLoader re-raises a worker's exception as ``type(exc)("Caught X in DataLoader
    worker process N.\nOriginal Traceback ...\nmixer...MixerError: the line")``: keep the one
    line a user needs, and say which worker raised it."""
    head, sep, rest = message.partition("\nOriginal Traceback")
    if not sep or not head.startswith("Caught MixerError"):
        return message
    marker = "MixerError: "
    last = rest.rstrip().rsplit(marker, 1)
    if len(last) != 2:
        return message
    where = head.removeprefix("Caught MixerError").strip().rstrip(".")
    return f"{last[1].strip()} ({where})" if where else last[1].strip()
