"""The journal is private: it holds the first lines of every cell, notebook paths and the
commands of other programs, and cells often hold tokens and passwords.

So, as jupyter_server does for its runtime files: the journal's directory is made 0700, the
journal and its ``-wal``/``-shm`` companions (and any file set aside as corrupt) are 0600. A
journal found with wider modes is tightened, with one warning. A location other users can
write (the directory, or the file itself) is refused: another user could read it, or swap it.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("jupyter_memguard")

COMPANIONS = ("", "-wal", "-shm", "-journal")
FILE_MODE = 0o600
DIR_MODE = 0o700


class UnsafeJournalLocation(ValueError):
    """The journal's place can be written by other users."""


def _mode(path: Path) -> str:
    return stat.filemode(path.stat().st_mode)


def check_location(path: Path) -> None:
    """Refuse a journal that other users could write or swap (raises UnsafeJournalLocation)."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent  # the first directory that exists will hold what we create
    info = parent.stat()
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeJournalLocation(
            f"{path} lies in {parent} ({_mode(parent)}), which other users can write: they "
            "could replace or read the journal, which holds the code of every cell; choose a "
            "private directory"
        )
    if path.exists():
        own = path.stat()
        if own.st_uid != os.geteuid():
            raise UnsafeJournalLocation(f"{path} belongs to another user (uid {own.st_uid})")
        if own.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise UnsafeJournalLocation(f"{path} ({_mode(path)}) can be written by other users")


def make_private_dir(directory: Path) -> None:
    """Create the journal's own directory for this user only (its missing parents as usual);
    a directory that exists already is the user's, and left as it is."""
    if directory.exists():
        return
    directory.parent.mkdir(parents=True, exist_ok=True)
    directory.mkdir(mode=DIR_MODE, exist_ok=True)
    os.chmod(directory, DIR_MODE)  # whatever the umask


def tighten(path: Path) -> None:
    """The journal and its companions readable by this user only; one warning if they were not."""
    loosened = []
    for suffix in COMPANIONS:
        side = Path(str(path) + suffix)
        try:
            mode = stat.S_IMODE(side.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode != FILE_MODE:
            os.chmod(side, FILE_MODE)
            if mode & 0o077:
                loosened.append(f"{side.name} ({stat.filemode(stat.S_IFREG | mode)})")
    if loosened:
        log.warning(
            "memguard: the journal could be read by other users (%s); it holds the code of "
            "your cells: made it private (0600)",
            ", ".join(loosened),
        )


def create_private(path: Path) -> None:
    """Make an empty journal file 0600 before SQLite opens it (SQLite gives its -wal and -shm
    files the journal's own permissions)."""
    if path.exists():
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    os.close(fd)
    os.chmod(path, FILE_MODE)
