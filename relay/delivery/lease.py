"""Delivery leases: who holds a queue row in 'sending', until when, and under which fencing token.

Reads: delivery.lease_seconds (through the worker). A claim sets lease_until = now + lease and
raises lease_token; the holder renews every lease/3 while the SMTP conversation runs, and every
result is written only where the token still matches (relay/store/queue.py). A sweeper in every
process returns rows whose lease ran out (a frozen or killed holder on any host) to the queue.
The owner of a claim is host:pid:nonce: a PID alone is reused, and says nothing across hosts.
"""

from __future__ import annotations

import os
import secrets
import socket


def new_owner() -> str:
    """This process's claim owner: host, pid and a random nonce (a reused PID is another owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(6)}"


def process_prefix(pid: int) -> str:
    """What every owner of process `pid` on this host starts with (its nonce unknown)."""
    return f"{socket.gethostname()}:{pid}:"


def process_alive(pid: int) -> bool:
    """Whether process `pid` of this host exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
