"""Run folders that survive crashes, signals, full disks and a second writer.

    lock_run(run_dir)       one training per run folder: an exclusive lock on
                            RUN/.lock held while the run trains; a second
                            training on the same folder refuses at once
    check_writable(folder)  --out must be a folder we can write (read-only file
                            systems, permissions): one clear error before any work
    recover(folder)         a checkpoint swap cut short by kill -9 (between the two
                            renames of checkpoint.atomic_folder_write) is finished
                            from what it left, and stale temporary folders removed
    uninterruptible()       Ctrl-C and SIGTERM wait until the block ends (one
                            training step, one checkpoint write), so an interrupt
                            never lands between the weights' update and the step count
    write_error(path, exc)  a failed write (disk full, file too large, read-only) as
                            one CheckpointError naming the folder and the cause

An interrupt is a KeyboardInterrupt raised by `interrupt_handler`, which the
command line installs for SIGINT and SIGTERM (cli/app.py).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from seqtool.errors import CheckpointError, TrainingError

LOCK_FILE = ".lock"
_held: dict[str, int] = {}  # run folder -> the lock file's descriptor, in this process


@contextlib.contextmanager
def lock_run(run_dir: Path) -> Iterator[None]:
    """Hold RUN/.lock (flock, released by the kernel when the process dies, even on
    kill -9). A folder another training holds raises TrainingError at once."""
    import fcntl

    run_dir = Path(run_dir)
    check_writable(run_dir)
    key = str(run_dir.resolve())
    if key in _held:  # the same process (the Python API calling train in a loop)
        raise TrainingError(f"{run_dir} is already being trained by this process",
                            "wait for that training to finish, or choose another --out")
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        raise _busy(run_dir, owner) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _held[key] = fd
    try:
        yield
    finally:
        del _held[key]
        os.close(fd)  # releases the lock


def check_free(run_dir: Path) -> None:
    """A TrainingError when another process holds the run folder's lock (before a
    --resume reads anything; lock_run then takes it)."""
    import fcntl

    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # never locked (or unreadable: lock_run reports it)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        raise _busy(Path(run_dir), owner) from None
    finally:
        os.close(fd)


def _busy(run_dir: Path, owner: str) -> TrainingError:
    return TrainingError(f"{run_dir} is being trained by another process"
                         + (f" (pid {owner})" if owner.isdigit() else ""),
                         "wait for it to finish (then --resume it), or choose another --out")


def check_writable(folder: Path) -> None:
    """Create `folder` (and its parents) and check that a file can be written in it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise TrainingError(f"cannot write to {folder}: {exc.strerror or exc}",
                            "choose an --out folder on a writable disk") from None


def recover(folder: Path) -> None:
    """Finish or undo what a killed atomic_folder_write left next to `folder`:
    `.NAME.old-PID` is the previous checkpoint, `.NAME.tmp-PID` a half-written one.
    Without `folder`, the newest complete leftover (the new one if it was complete,
    else the old one) becomes `folder`; every other leftover is removed."""
    folder = Path(folder)
    parent = folder.parent
    if not parent.is_dir():
        return
    leftovers = [p for p in parent.glob(f".{folder.name}.*-*")
                 if p.is_dir() and (".tmp-" in p.name or ".old-" in p.name)
                 and _owner_gone(p.name.rsplit("-", 1)[-1])]
    if not leftovers:
        return
    if not folder.exists():
        # killed between the two renames: .old-PID exists, and the .tmp-PID beside it
        # is complete (the old one is moved away only after the new one is synced)
        for old in (p for p in leftovers if ".old-" in p.name):
            new = parent / old.name.replace(".old-", ".tmp-")
            with contextlib.suppress(OSError):
                os.replace(new if new.is_dir() else old, folder)
                break
    for p in leftovers:
        if p.exists():
            shutil.rmtree(p, ignore_errors=True)


def _owner_gone(pid: str) -> bool:
    """True when the process that wrote a leftover folder no longer runs."""
    if not pid.isdigit():
        return True
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def write_error(folder: Path, exc: OSError, what: str = "the checkpoint") -> CheckpointError:
    """The CheckpointError for a write of `folder` (a checkpoint, or a log) that failed
    with `exc`; the checkpoints written before are intact."""
    why = {errno.ENOSPC: "the disk is full", errno.EFBIG: "a file grew past the size limit",
           errno.EDQUOT: "the disk quota is exceeded", errno.EROFS: "the disk is read-only",
           errno.EACCES: "permission denied"}.get(exc.errno or 0, exc.strerror or str(exc))
    return CheckpointError(f"could not write {what} {folder}: {why}; the previous "
                           f"checkpoint is intact", "free space (or choose another --out) and "
                           "resume from the run's last/ with --resume")


# --- interrupts that wait for the end of a step or a write ------------------------
_depth = 0
_pending = False


def interrupt_handler(signum: int, frame: Any) -> None:
    """The SIGINT / SIGTERM handler: a KeyboardInterrupt now, or at the end of the
    uninterruptible block in progress."""
    global _pending
    if _depth:
        _pending = True
        return
    raise KeyboardInterrupt


@contextlib.contextmanager
def uninterruptible() -> Iterator[None]:
    global _depth, _pending
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
    if not _depth and _pending:
        _pending = False
        raise KeyboardInterrupt
