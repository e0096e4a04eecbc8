"""The exception vsum raises for user errors (torch-free, imported by every module that needs it)."""


class VsumError(Exception):
    """A user-facing error: the message is printed as one line by the CLI (``vsum: error: ...``)."""
