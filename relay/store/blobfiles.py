"""Large message contents as files beside the database (<db>-blobs/ab/<sha256>), not inside it.

Reads no config (the directory follows the database file). A content inside SQLite is written
twice — to the WAL, then by the checkpoint into the database — in 4 KiB pages, each with a frame
header and checksum: two 10 MB contents cost ~84 ms of CPU per message, more than its checks.
A file is written once. Its row stays in `blobs` (sha256, size, clearing) with an empty `data`
and in_file = 1, so "is this content still here" (data IS NOT NULL) reads as before.
Durability: the file and its directory are fsynced before the transaction adding the row commits;
a file whose row never committed is an orphan (content-addressed: the next put rewrites it), never
a loss. Clearing (retention, erasure) overwrites the file with zeros before removing it.
Writing ahead: the DATA path writes a message's large contents (write_ahead) before it queues the
transaction, so that 2 x 10 MB and their fsyncs are not done under the write lock every relay
process waits on; put_blob then only checks (written_ahead) that the file is still the one
written — not cleared or rewritten meanwhile by another transaction — and writes it otherwise.
Errors: OSError from the file system propagates (the write fails as a whole: 451/452).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from pathlib import Path

#: Contents from this size on are stored as files.
FILE_BYTES = 256 * 1024
_PIECE = 1024 * 1024


def directory(conn: sqlite3.Connection) -> Path | None:
    """<database file>-blobs, or None for a database without a file (":memory:")."""
    for _seq, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return directory_of(file) if file else None
    return None


def directory_of(db_path: Path | str) -> Path | None:
    """directory() from the database's path."""
    return None if str(db_path) == ":memory:" else Path(f"{db_path}-blobs")


def path_of(where: Path, digest: str) -> Path:
    return where / digest[:2] / digest


#: digest → (inode, mtime in ns, size) of a file this process wrote ahead of its row
_ahead: dict[str, tuple[int, int, int]] = {}


def write_ahead(where: Path, digest: str, data: bytes) -> None:
    """write(), outside any transaction; remember which file it made for written_ahead()."""
    write(where, digest, data)
    _remember_ahead(where, digest)


def link_ahead(where: Path, digest: str, source: Path, size: int) -> bool:
    """write_ahead() for a content that already is a file of `size` bytes (a spool file on the same
    file system, not written to any more): fsynced and linked in place of a copy — under 50
    concurrent 10 MB messages, a third of the workers' CPU went to copying into the page cache.
    False (nothing done) when it cannot be linked: write it instead."""
    sub = _directory_for(where, digest)
    tmp = sub / f".{digest}.{os.getpid()}.tmp"
    try:
        fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if st.st_size != size or st.st_mode & 0o077:  # contents are the owner's only
                return False
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        os.link(source, tmp)
    except OSError:  # another file system, no hard links here, the file gone: write a copy
        return False
    os.replace(tmp, sub / digest)
    _fsync_dir(sub)
    _remember_ahead(where, digest)
    return True


def _remember_ahead(where: Path, digest: str) -> None:
    st = path_of(where, digest).stat()
    _ahead[digest] = (st.st_ino, st.st_mtime_ns, st.st_size)


def written_ahead(where: Path, digest: str) -> bool:
    """Is the file write_ahead() made for this content still there, untouched? (Inside the
    transaction: a clearing that removed or zeroed it since shows as a missing file or another
    inode or mtime, and the content is written again.) Forgets the entry."""
    entry = _ahead.pop(digest, None)
    if entry is None:
        return False
    try:
        st = path_of(where, digest).stat()
    except FileNotFoundError:
        return False
    return (st.st_ino, st.st_mtime_ns, st.st_size) == entry


def forget_ahead(digests: list[str]) -> None:
    """Drop what write_ahead() remembered for contents whose transaction did not use it."""
    for digest in digests:
        _ahead.pop(digest, None)


def write(where: Path, digest: str, data: bytes) -> None:
    """Write atomically and durably: a temporary file, fsync, rename, fsync of the directory."""
    sub = _directory_for(where, digest)
    tmp = sub / f".{digest}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        with memoryview(data) as view:
            for start in range(0, len(view), _PIECE):
                chunk = view[start : start + _PIECE]
                while chunk:
                    chunk = chunk[os.write(fd, chunk):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, sub / digest)
    _fsync_dir(sub)


def _directory_for(where: Path, digest: str) -> Path:
    sub = where / digest[:2]
    if not sub.is_dir():
        where.mkdir(mode=0o700, exist_ok=True)
        sub.mkdir(mode=0o700, exist_ok=True)
        _fsync_dir(where)
    return sub


def read(where: Path, digest: str) -> bytes | None:
    try:
        return path_of(where, digest).read_bytes()
    except FileNotFoundError:
        return None


def set_aside(where: Path, digest: str) -> None:
    """Inside the clearing transaction: move the file out of the contents' sight (one rename, no
    data written); wipe_cleared() zeroes and removes it once the transaction has committed, so
    that the writer lock every relay process waits on is never held for a file's worth of zeros.
    A content arriving again meanwhile is written anew under its name (written_ahead sees no file)."""
    aside = where / "cleared"
    aside.mkdir(mode=0o700, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.rename(path_of(where, digest), aside / f"{digest}.{secrets.token_hex(4)}")


def wipe_cleared(where: Path | None) -> int:
    """Zero and remove the files set aside by committed clearings (and any a crash left); how many."""
    if where is None:
        return 0
    aside = where / "cleared"
    try:
        names = os.listdir(aside)
    except FileNotFoundError:
        return 0
    for name in names:
        _wipe(aside / name)
    if names:
        _fsync_dir(aside)
    return len(names)


def remove(where: Path, digest: str) -> None:
    """Overwrite with zeros (as SQLite's secure_delete does for pages), then unlink."""
    _wipe(path_of(where, digest))


def _wipe(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            zeros = bytes(min(size, _PIECE))
            done = 0
            while done < size:
                done += os.write(fd, zeros[: size - done])
            os.fsync(fd)
        finally:
            os.close(fd)
        path.unlink()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
