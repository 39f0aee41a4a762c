"""Delivery leases: who holds a queue row in 'sending', until when, and under which fencing token.

Reads: delivery.lease_seconds (through the worker). A claim sets lease_until = now + lease and
raises lease_token; the holder renews every lease/3 while the SMTP conversation runs, and every
result is written only where the token still matches (relay/store/queue.py). A sweeper in every
process returns rows whose lease ran out (a frozen or killed holder on any host) to the queue.
The owner of a claim is node:pid:nonce, node being relay.node (default: the host name), so a
lease and the log lines about it say which node holds it: a PID alone is reused, and says nothing
across nodes. Whether a PID is alive is only asked of owners with this process's own relay.node
(one node per host: see relay.node), never of another node's.
"""

from __future__ import annotations

import os
import secrets


def new_owner(node: str) -> str:
    """This process's claim owner on node `node` (relay.node): node, pid and a random nonce (a
    reused PID is another owner)."""
    return f"{node}:{os.getpid()}:{secrets.token_hex(6)}"


def process_prefix(node: str, pid: int) -> str:
    """What every owner of process `pid` on node `node` starts with (its nonce unknown)."""
    return f"{node}:{pid}:"


def process_alive(pid: int) -> bool:
    """Whether process `pid` of this node (this host) exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
