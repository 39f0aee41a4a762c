"""The peer: Postfix as a relay on a loopback high port with the same alias rewriting, signing through OpenDKIM.

Writes main.cf/master.cf/maps (and opendkim.conf plus a fresh 2048-bit key) under a temp directory,
runs `postfix -c DIR start` (root; user postfix, group postdrop) and `opendkim -f`; stops both after.
"""

from __future__ import annotations

import asyncio
import grp
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from bench.e2e import free_port
from bench.sink import wait_port
from bench.target_relay import DOMAIN

_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _exe(name: str) -> str | None:
    found = shutil.which(name) or f"/usr/sbin/{name}"
    return found if os.path.exists(found) else None


def unavailable() -> str | None:
    """Why Postfix cannot run here, or None when it can."""
    if not (_exe("postfix") and _exe("postconf")):
        return "Postfix is not installed (apt-get install postfix)"
    if os.geteuid() != 0:
        return "starting Postfix needs root"
    try:
        pwd.getpwnam("postfix")
        grp.getgrnam("postdrop")
    except KeyError:
        return "user postfix or group postdrop is missing (the Debian package creates them)"
    return None


class PostfixTarget:
    name = "postfix"

    def __init__(self, base: Path, *, milter_socket: str = "unix", signing: bool = True) -> None:
        self.base, self.milter_socket, self.signing = base, milter_socket, signing
        self.dkim = signing and bool(_exe("opendkim") and _exe("opendkim-genkey"))
        if not signing:  # the 100 KB target names Postfix with rewriting alone
            self.name = "postfix-nodkim"
        self.port = 0
        self.sender = "buyer0@buyer.example"
        self.sender_alias = ""
        self.recipients: list[str] = []
        self.real_recipients: list[str] = []
        self._runs = 0
        self.work = base
        self._opendkim: subprocess.Popen[bytes] | None = None

    def describe(self) -> str:
        version = subprocess.run([_exe("postconf") or "postconf", "-h", "mail_version"], capture_output=True,
                                 text=True).stdout.strip()
        if not self.signing:
            return f"Postfix {version} (rewriting only: no signing, as asked)"
        return f"Postfix {version}" + (f" + OpenDKIM ({self.milter_socket} socket)" if self.dkim
                                       else " (OpenDKIM not installed: no signing)")

    def public_txt(self) -> str | None:
        """The DKIM key's TXT record; None when the peer does not sign."""
        if not self.dkim:
            return None
        from relay.dkim import public_txt_from_private
        return public_txt_from_private((self.base / "peer-dkim" / "peer.private").read_bytes())

    async def start(self, sink_port: int, *, recipients: int, sessions: int) -> None:
        self._runs += 1
        self.work = w = self.base / f"{self.name}-{self._runs}"
        conf = w / "conf"
        conf.mkdir(parents=True)
        (w / "queue").mkdir()
        (w / "data").mkdir()
        shutil.chown(w / "data", "postfix")
        os.chmod(self.base, 0o755)
        os.chmod(w, 0o755)
        self.port = free_port()
        aliases = [(f"peer{i}seller@{DOMAIN}", f"shop{i}@seller.example") for i in range(recipients)]
        self.recipients = [a for a, _ in aliases]
        self.real_recipients = [r for _, r in aliases]
        self.sender_alias = f"peer0buyer@{DOMAIN}"
        (conf / "virtual").write_text("".join(f"{a} {r}\n" for a, r in aliases))
        (conf / "recipient_canonical").write_text("".join(f"{a} {r}\n" for a, r in aliases))
        (conf / "sender_canonical").write_text(f"{self.sender} {self.sender_alias}\n")
        milter = ""
        if self.dkim:
            milter = f"smtpd_milters = {await self._start_opendkim()}\nmilter_default_action = tempfail\n"
        defaults = subprocess.run([_exe("postconf") or "postconf", "-d", "daemon_directory", "meta_directory",
                                   "shlib_directory", "command_directory"], capture_output=True, text=True).stdout
        (conf / "main.cf").write_text(
            defaults + f"compatibility_level = 3.6\nqueue_directory = {w / 'queue'}\ndata_directory = {w / 'data'}\n"
            "mail_owner = postfix\nsetgid_group = postdrop\nmyhostname = peer.bench.example\n"
            "mydomain = bench.example\ninet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nmydestination =\n"
            "local_recipient_maps =\nalias_maps =\nalias_database =\nmynetworks = 127.0.0.0/8\n"
            f"relayhost = [127.0.0.1]:{sink_port}\nvirtual_alias_domains = {DOMAIN}\n"
            f"virtual_alias_maps = texthash:{conf / 'virtual'}\n"
            f"recipient_canonical_maps = texthash:{conf / 'recipient_canonical'}\n"
            "recipient_canonical_classes = header_recipient\n"
            f"sender_canonical_maps = texthash:{conf / 'sender_canonical'}\n"
            f"{milter}message_size_limit = 40000000\n"
            "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n"
            f"maillog_file = {w / 'postfix.log'}\nsmtpd_tls_security_level = none\nsmtp_tls_security_level = none\n"
            "biff = no\nappend_dot_mydomain = no\n")
        (conf / "master.cf").write_text(f"127.0.0.1:{self.port} inet n - n - - smtpd\n" + _SERVICES)
        postfix = _exe("postfix") or "postfix"
        try:
            for action in ("check", "start"):  # check creates the queue's subdirectories with their owners
                done = subprocess.run([postfix, "-c", str(conf), action], capture_output=True, text=True)
                if done.returncode != 0:
                    raise RuntimeError(f"postfix {action} failed: {(done.stderr + done.stdout).strip()[-300:]}"
                                       f" {self.log_tail()[-500:]}")
            try:
                await wait_port(self.port, 30)
            except TimeoutError:
                raise RuntimeError(f"Postfix did not start: {self.log_tail()}") from None
        except BaseException:
            await self.stop()
            raise

    async def _start_opendkim(self) -> str:
        """Start OpenDKIM; return Postfix's milter address for it."""
        keydir = self.base / "peer-dkim"
        if not (keydir / "peer.private").exists():
            keydir.mkdir(exist_ok=True)
            subprocess.run([_exe("opendkim-genkey") or "", "-b", "2048", "-d", DOMAIN, "-s", "peer", "-D",
                            str(keydir)], check=True)
            shutil.chown(keydir / "peer.private", "opendkim", "opendkim")
            os.chmod(keydir / "peer.private", 0o600)
        sockdir = self.work / "opendkim"  # it creates the socket after dropping privileges
        sockdir.mkdir()
        shutil.chown(sockdir, "opendkim", "opendkim")
        port, sock = free_port(), sockdir / "opendkim.sock"
        socket_spec = f"local:{sock}" if self.milter_socket == "unix" else f"inet:{port}@127.0.0.1"
        cfg = self.work / "opendkim.conf"
        cfg.write_text(f"Syslog no\nMode s\nDomain {DOMAIN}\nSelector peer\nKeyFile {keydir / 'peer.private'}\n"
                       "Canonicalization relaxed/relaxed\nSignatureAlgorithm rsa-sha256\nOversignHeaders From\n"
                       f"Socket {socket_spec}\nUMask 000\nUserID opendkim\nInternalHosts 127.0.0.1\n")
        self._opendkim = subprocess.Popen([_exe("opendkim") or "", "-f", "-x", str(cfg)],
                                          stdout=subprocess.DEVNULL, stderr=open(self.work / "opendkim.log", "wb"))
        try:
            if self.milter_socket == "unix":
                for _ in range(400):
                    if sock.exists():
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise TimeoutError
                return f"unix:{sock}"
            await wait_port(port, 20)
            return f"inet:127.0.0.1:{port}"
        except TimeoutError:
            self._opendkim.kill()
            self._opendkim.wait()
            raise RuntimeError("opendkim did not start: "
                               + (self.work / "opendkim.log").read_text(errors="replace")[-500:]) from None

    def _master_pid(self) -> int | None:
        try:
            return int((self.work / "queue" / "pid" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def roots(self) -> list[int]:
        pids = [p for p in (self._master_pid(),) if p]
        if self._opendkim and self._opendkim.poll() is None:
            pids.append(self._opendkim.pid)
        return pids

    async def pending(self) -> int:
        """Queue files not yet delivered (maildrop, incoming, active, deferred, hold)."""
        def count() -> int:
            return sum(len(files) for d in ("maildrop", "incoming", "active", "deferred", "hold")
                       for _, _, files in os.walk(self.work / "queue" / d))
        return await asyncio.to_thread(count)

    def log_tail(self) -> str:
        try:
            return (self.work / "postfix.log").read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    async def stop(self) -> None:
        master = self._master_pid()
        subprocess.run([_exe("postfix") or "postfix", "-c", str(self.work / "conf"), "stop"], capture_output=True)
        for _ in range(100):
            if not master or not os.path.exists(f"/proc/{master}"):
                break
            await asyncio.sleep(0.1)
        if self._opendkim and self._opendkim.poll() is None:
            self._opendkim.terminate()
            await asyncio.to_thread(self._opendkim.wait, 10)
        self._opendkim = None
