"""Owner locks on the folders a command writes: one writer at a time, the second told who.

    with DirLock(run_dir, "python -m koalarization.train"):   # FOLDER/.lock
        ...                                                 # a second one raises safeio.LockedError:
    # "RUN: in use by python -m koalarization.train (pid 4242 on host-a, since 2026-12-07T08:00:00+0000); wait for it to end"

The lock is the kernel's: ``fcntl.flock`` on ``FOLDER/.lock``, held open for the lock's lifetime.
The kernel drops it when the process ends, however it ends (a kill -9, a zombie its parent has not
reaped yet), so the next run takes it with no pid to check; a lock file that a stopped process left
behind is taken over (said through ``warn``). The file holds only the owner's pid, host, start time
and command, written after the lock is taken, for the message.

On NFS, Linux (2.6.12 and later) emulates ``flock`` with POSIX byte-range locks, which go to the
server: the lock works across client machines only when the server supports locking (NFSv4, or
NFSv3 with lockd) and the share is not mounted with ``nolock`` (or ``local_lock=flock``/``all``);
otherwise each machine sees only its own processes' locks, and two machines can write at once.
There a lock left by a crashed client stays until the server's lease or lock recovery frees it.
Pure Python, Linux/macOS (``fcntl``): no TensorFlow.

A folder given as a URL (``gs://``, ``s3://``, ``hdfs://``, ``ram://``: :mod:`koalarization.storage`)
cannot be flocked: there the lock is the object ``FOLDER/.lock``, created only when absent and read
back (check, write, read back). It is advisory: two commands that both check before either writes
can both see their own lock read back, when the first has read its own before the second wrote, a
window of a few requests. A lock object that a stopped process on this host left is taken over
(said through ``warn``); one of another host cannot be told from a running one: the message names
it, to be removed by hand when no such command runs.
"""

import contextlib
import fcntl
import json
import os
import socket
import time

from koalarization import safeio, storage
from koalarization.safeio import LockedError, _alive


class DirLock:
    """``with DirLock(folder, command):`` an exclusive lock on ``folder`` (made if missing), or
    :class:`~koalarization.safeio.LockedError` naming the owner, in one line."""

    NAME = ".lock"

    def __init__(self, folder, command, warn=print, name=None):
        """``name``: the lock file's name (default ``.lock``); writers of disjoint files in one
        folder (the builder's workers) each take their own, e.g. ``.lock-w01``."""
        self.folder, self.command, self.warn = folder, command, warn
        self.path = os.path.join(folder, name or self.NAME)
        self.fd = None

    def acquire(self):
        if storage.is_url(self.folder):
            return self._acquire_object()
        os.makedirs(self.folder, exist_ok=True)
        for _ in range(3):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _owner(fd, wait=True)
                os.close(fd)
                raise LockedError(self._in_use(owner)) from None
            if not _still_named(fd, self.path):  # its holder removed the file as we opened it: again
                os.close(fd)
                continue
            left = _owner(fd)
            if left:
                self.warn(f"{self.folder}: taking over the lock of a stopped process (pid {left.get('pid')})")
            me = self._me()
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
            self.fd = fd
            return self
        raise LockedError(f"{self.folder}: could not take the lock {self.path}")

    def _me(self):
        return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": self.command}

    def _acquire_object(self):
        """The lock of a URL folder: the object ``.lock``, written when absent, then read back (see the module)."""
        storage.makedirs(self.folder)
        left = _owner_object(self.path) if storage.exists(self.path) else None
        if left is not None:
            if not _stopped_here(left):
                raise LockedError(self._in_use(left, url=True))
            self.warn(f"{self.folder}: taking over the lock of a stopped process (pid {left.get('pid')})")
        me = self._me()
        safeio.write_bytes(self.path, json.dumps(me).encode())  # whole, under a temporary name first
        if _owner_object(self.path) != me:  # another command wrote it between our check and our write
            raise LockedError(self._in_use(_owner_object(self.path), url=True))
        self.fd = me
        return self

    def _in_use(self, owner, url=False):
        if owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
            return f"{self.folder}: already in use by this process"
        if not owner:
            return f"{self.folder}: in use by another process (its lock {self.path} names no owner yet); wait for it to end"
        return (
            f"{self.folder}: in use by {owner.get('command', 'another command')} (pid {owner.get('pid')} on "
            f"{owner.get('host')}, since {owner.get('started')}); wait for it to end"
            + (f" (if it is not running, remove {self.path})" if url else "")
        )

    def release(self):
        if isinstance(self.fd, dict):  # a URL folder's lock object, removed while it is still ours
            with contextlib.suppress(OSError):
                if _owner_object(self.path) == self.fd:
                    storage.remove(self.path)
            self.fd = None
        if self.fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)  # still holding the lock: a waiter that opened this file retries
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _owner(fd, wait=False):
    """The owner dict written in the lock file, or {} (``wait``: a holder may be writing it now)."""
    for attempt in range(2 if wait else 1):
        try:
            owner = json.loads(os.pread(fd, 4096, 0) or b"null")
            if isinstance(owner, dict):
                return owner
        except (OSError, ValueError):
            pass
        if attempt == 0 and wait:
            time.sleep(0.2)
    return {}


def _still_named(fd, path):
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _owner_object(path):
    """The owner dict of a URL folder's lock object, {} when it names none (or cannot be read)."""
    try:
        owner = json.loads(storage.read_bytes(path) or b"null")
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _stopped_here(owner):
    """True for the owner of a lock object that is a process of this host that runs no more."""
    pid = owner.get("pid")
    return owner.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid)
