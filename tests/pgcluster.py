"""A throwaway PostgreSQL cluster for tests and benchmarks: initdb into a temporary directory,
postgres on 127.0.0.1 and a free port (its Unix socket in that directory, never /var/run), trust
authentication for loopback only, removed at the end. Never Docker, never the system's cluster.

The binaries are found on PATH (symlinks resolved) or in /usr/lib/postgresql/<version>/bin
(Debian's layout; scripts/test installs the `postgresql` package). initdb and postgres refuse to
run as root: as root, the cluster runs as an unprivileged user (`nobody`) that owns the directory.

Used by tests/conftest.py (fixtures pg_cluster, pg_url) and bench/pg_drivers.py.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

_REQUIRED = ("initdb", "pg_ctl", "postgres", "psql")


class PgUnavailable(RuntimeError):
    """No PostgreSQL binaries here, or the cluster would not start: the message says what to do."""


def find_bindir() -> Path:
    """The directory holding initdb, pg_ctl, postgres and psql (the newest version if several)."""
    candidates: list[Path] = []
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(os.path.realpath(found)).parent)

    def version(p: str) -> tuple[int, ...]:
        m = re.search(r"/postgresql/(\d+)(?:\.(\d+))?/", p)
        return tuple(int(x) for x in m.groups() if x) if m else (0,)

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin/"), key=version, reverse=True)]
    for d in candidates:
        if all((d / tool).exists() for tool in _REQUIRED):
            return d
    raise PgUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres, psql) not found on PATH nor in"
        " /usr/lib/postgresql/*/bin: install the Debian package `postgresql` (scripts/test does)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgCluster:
    """One temporary cluster. start() → url(dbname) → create_database() … → stop()."""

    user: str = "relay"
    bindir: Path = field(default_factory=find_bindir)
    root: Path | None = None
    port: int = 0
    _run_as: tuple[int, int] | None = None
    _started: bool = False

    # --- life cycle ------------------------------------------------------------------------------

    def start(self, *, timeout: float = 60.0) -> PgCluster:
        root = os.geteuid() == 0
        # As root the server runs as `nobody`, which must be able to reach the directory: $TMPDIR
        # may be a private one (0700); /tmp is not.
        parent = tempfile.gettempdir()
        if root and not os.stat(parent).st_mode & 0o001:
            parent = "/tmp"
        self.root = Path(tempfile.mkdtemp(prefix="relay-pg-", dir=parent))
        if root:
            # initdb: "cannot be run as root". The directory goes to an unprivileged user; /tmp is
            # world-traversable, and mkdtemp's 0700 directory becomes that user's.
            try:
                pw = pwd.getpwnam("nobody")
            except KeyError as exc:
                raise PgUnavailable("running as root and there is no user `nobody` to run PostgreSQL as") from exc
            self._run_as = (pw.pw_uid, pw.pw_gid)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        data = self.root / "data"
        self._run([str(self.bindir / "initdb"), "-D", str(data), "-U", self.user, "--auth=trust", "-E", "UTF8",
                   "--no-locale", "--no-sync", "--no-instructions"], timeout=timeout)
        # Only loopback may connect, with or without a password.
        (data / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n", "utf-8")
        if self._run_as:
            os.chown(data / "pg_hba.conf", *self._run_as)
        last: Exception | None = None
        for _ in range(5):  # a free port can be taken between free_port() and the bind: try another
            self.port = free_port()
            opts = (f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=on -c max_connections=200"
                    " -c shared_buffers=64MB")
            try:
                self._run([str(self.bindir / "pg_ctl"), "-D", str(data), "-l", str(self.root / "postgres.log"),
                           "-w", "-t", str(int(timeout)), "-o", opts, "start"], timeout=timeout + 5)
            except PgUnavailable as exc:
                last = exc
                continue
            self._started = True
            atexit.register(self.stop)
            return self
        raise PgUnavailable(f"PostgreSQL did not start: {last}\n{self.log_tail()}")

    def stop(self) -> None:
        if self._started and self.root is not None:
            self._started = False
            with contextlib.suppress(Exception):
                self._run([str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "-w",
                           "stop"], timeout=30)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- use -------------------------------------------------------------------------------------

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL with psql (as the cluster's superuser, over TCP); return its output."""
        out = subprocess.run(
            [str(self.bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-h", "127.0.0.1",
             "-p", str(self.port), "-U", self.user, "-d", dbname, "-c", sql],
            capture_output=True, text=True, timeout=60, env=self._env())
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr.strip()}")
        return out.stdout

    def create_database(self, name: str, template: str = "template0") -> str:
        """A new database (from `template`); returns its URL."""
        self.psql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def log_tail(self, lines: int = 20) -> str:
        if self.root is None:
            return ""
        try:
            return "\n".join((self.root / "postgres.log").read_text("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return ""

    # --- helpers ---------------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["HOME"] = str(self.root)
        env["LC_ALL"] = "C"
        return env

    def _run(self, argv: list[str], *, timeout: float) -> None:
        kwargs: dict[str, object] = {}
        if self._run_as:
            kwargs = {"user": self._run_as[0], "group": self._run_as[1], "extra_groups": []}
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=self._env(),
                                 cwd=self.root, **kwargs)  # type: ignore[call-overload]
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PgUnavailable(f"{Path(argv[0]).name} failed: {exc}") from exc
        if out.returncode != 0:
            raise PgUnavailable(f"{Path(argv[0]).name} exited {out.returncode}: {out.stderr.strip()[-2000:]}")

