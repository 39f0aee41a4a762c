"""Errors and exit statuses the daemon and the CLI share; stdlib only, so that `relay --help` and
a usage error never import the configuration schema (pydantic) to report them."""

from __future__ import annotations

import os

EX_USAGE = 64  # sysexits.h: the command was used incorrectly (argparse errors)
EX_CONFIG = 78  # sysexits.h: a configuration problem; systemd's unit does not restart on it
EX_PIPE = 141  # 128 + SIGPIPE: the reader of our output went away (as a shell reports `yes | head -1`)


class ConfigError(Exception):
    """A configuration problem; its text names the key and what is wrong."""


class ListenError(Exception):
    """A listen address of the configuration could not be bound (in use, not ours, no permission).

    Its text is the one line the daemon prints before exiting 1: `smtp.listen 127.0.0.1:2525:
    address already in use`.
    """

    def __init__(self, key: str, address: str, error: OSError) -> None:
        # asyncio re-raises bind errors with its own long text; the errno's own words are enough.
        reason = (os.strerror(error.errno) if error.errno else str(error)).lower()
        super().__init__(f"{key} {address}: {reason}")
        self.key, self.address = key, address
