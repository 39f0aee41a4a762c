"""Errors the repository functions raise for bad requests (the CLI prints them in one line), and the
store's own failure (StoreUnavailable)."""


class StoreError(Exception):
    """A request the store refuses; the text is safe to show to an operator."""


class NotFound(StoreError):
    pass


class Conflict(StoreError):
    pass


class StoreUnavailable(Exception):
    """The store cannot take a write now (disk full, locked, closed): answer 4xx, lose nothing."""
