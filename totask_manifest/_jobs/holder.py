"""Who holds a job folder's lease: this process's identity, and whether a recorded holder is gone.

A lease record names its holder by host, pid (with the pid's start time, against pid reuse), a
unique id and the command. Two processes' pids are only comparable on one host, one boot and one
pid namespace (``_host_key``); there a holder whose process is gone (or whose pid was reused) is
gone at once, and anywhere else only once its heartbeat is older than the timeout. Kept apart
from ``lease`` so the rules of liveness read on their own, without the storage race around them.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
import uuid
from dataclasses import dataclass

import orjson


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def _pid_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (``/proc``), or "" where unknown."""
    stat = _read_text(f"/proc/{pid}/stat")
    if not stat:
        return ""
    # the command name may hold spaces and parentheses: fields restart after the last ")"
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


def _host_key() -> str:
    """What makes two processes' pids comparable: the host, its boot, the pid namespace."""
    boot = _read_text("/proc/sys/kernel/random/boot_id")
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pidns = ""
    return f"{socket.gethostname()}|{boot}|{pidns}"


def _now_iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Holder:
    """Who holds (or held) a lease, as recorded in its file."""

    id: str
    host: str
    host_key: str
    pid: int
    pid_start: str
    command: str
    acquired: float
    heartbeat: float
    released: bool = False

    @classmethod
    def me(cls, command: str) -> Holder:
        now = time.time()
        return cls(uuid.uuid4().hex, socket.gethostname(), _host_key(), os.getpid(), _pid_start(os.getpid()),
                   command, now, now)

    def to_json(self) -> bytes:
        data = {**self.__dict__, "acquired_at": _now_iso(self.acquired), "heartbeat_at": _now_iso(self.heartbeat)}
        return orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n"

    @classmethod
    def from_json(cls, raw: bytes) -> Holder | None:
        try:
            data = orjson.loads(raw)
            return cls(str(data["id"]), str(data["host"]), str(data.get("host_key", "")), int(data["pid"]),
                       str(data.get("pid_start", "")), str(data.get("command", "")), float(data["acquired"]),
                       float(data["heartbeat"]), bool(data.get("released", False)))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host} ({self.command}, holder {self.id[:8]})"

    def on_this_host(self) -> bool:
        """Whether this holder's pid is comparable with this process's (same host, boot and pid
        namespace): only then can ``gone_reason`` tell a live process from a gone one at once."""
        return bool(self.host_key) and self.host_key == _host_key()

    def gone_reason(self, timeout: float) -> str | None:
        """Why this holder no longer holds its lease, or None while it is live."""
        if self.released:
            return "released"
        if self.host_key and self.host_key == _host_key():
            if not _pid_alive(self.pid):
                return f"holder pid {self.pid} on host {self.host} is gone"
            if self.pid_start and _pid_start(self.pid) not in ("", self.pid_start):
                return f"holder pid {self.pid} on host {self.host} is gone (the pid was reused)"
        age = time.time() - self.heartbeat
        if age > timeout:
            return f"holder {self.describe()} sent no heartbeat for {age:.0f} s"
        return None


def _pid_alive(pid: int) -> bool:
    """Whether the process runs (a zombie, killed but not yet reaped by its parent, does not)."""
    stat = _read_text(f"/proc/{pid}/stat")
    if stat and stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except OSError:
        return False
    return True
