"""Errors the repository functions raise for bad requests (the CLI prints them in one line)."""


class StoreError(Exception):
    """A request the store refuses; the text is safe to show to an operator."""


class NotFound(StoreError):
    pass


class Conflict(StoreError):
    pass
