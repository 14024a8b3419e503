"""Recognising a partition holder as this host's own dead predecessor from its name."""

from __future__ import annotations

import os
import socket
import subprocess

from emulator.host._host_identity import host_identity, is_dead_predecessor


def _ended_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_only_an_ended_process_on_this_machine_and_port_is_a_dead_predecessor() -> None:
    me = host_identity(7071)
    machine = socket.gethostname()
    ended = _ended_pid()
    assert me == f"{machine}-{os.getpid()}-7071"
    assert is_dead_predecessor(f"{machine}-{ended}-7071", me)
    assert not is_dead_predecessor(me, me)
    assert not is_dead_predecessor(f"{machine}-{os.getppid()}-7071", me)  # still running
    assert not is_dead_predecessor(f"{machine}-{ended}-7072", me)  # another port
    assert not is_dead_predecessor(f"other{machine}-{ended}-7071", me)  # another machine
    assert not is_dead_predecessor("", me)
    assert not is_dead_predecessor(f"{machine}-x-7071", me)
