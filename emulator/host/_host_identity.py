"""Who owns a partition: a host's name in the Partitions table, and recognising one's own dead
predecessor by it.

A host is named ``{machine}-{process id}-{port}``. A host restarted after a crash on the same
machine and port finds its partitions still held by the dead process until their lease runs
out (30 s). When the holder is named after this machine and this port, and its process no
longer exists, nobody can renew that lease: the new host may take the partitions over at once.
"""

from __future__ import annotations

import os
import socket


def host_identity(port: int) -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{port}"


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def is_dead_predecessor(owner: str, me: str) -> bool:
    """True when ``owner`` was a host on this machine and port whose process has ended."""
    theirs, mine = owner.rsplit("-", 2), me.rsplit("-", 2)
    if len(theirs) != 3 or len(mine) != 3 or owner == me:
        return False
    (machine, pid, port), (my_machine, _, my_port) = theirs, mine
    if (machine, port) != (my_machine, my_port) or not pid.isdigit():
        return False
    return not process_exists(int(pid))
