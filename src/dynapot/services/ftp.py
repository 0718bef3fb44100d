"""FTP emulator: a vsftpd, ProFTPD or Microsoft FTP Service look-alike that keeps what is uploaded.

The command and state logic is sans-IO: `FtpSession.command(line)` returns a `Reply` (lines to
send, events to report, and at most one action for the IO loop: open a passive port, send data,
receive an upload). `serve_ftp` is the thin IO loop around it; data connections go through
`info.data_ports` (the sensor's userland TCP, or `dynapot.services.dataports.KernelDataPorts`).

What an attacker sees per virtual host: the banner and reply wording of the server the host
imitates (`SERVERS`: `info.product`/`info.version`, else its OS), a small believable file tree
of its own (names, sizes and dates drawn from its identity; its /etc/issue its distribution's),
and a login policy (`FtpConfig.accept`, `FtpConfig.anonymous`): by default the few weak pairs of
`logins.weak_pairs` drawn for this host succeed, and anything else, root and anonymous included,
gets the imitated server's refusal after its delay (vsftpd: "530 Login incorrect." after about 3 s,
hanging up at the third). Reported events (`report(kind, detail, data)`):
  login    "user:password"  {"user", "password", "accepted"}
  command  the command line (never PASS)
  upload   the file name    {"name", "path", "size", "sha256", "truncated", "stored", "duplicate", "dropped"}
  bad-request  what was wrong with a command line
Uploads go to an `uploads.UploadStore`: kept once as `<upload_dir>/<sha256>` (size-capped), within
a quota per source and a budget in all, and never served back. One the store does not keep is
still received, hashed and reported, and answered as a kept one would be.
Bounds: line length, login failures, idle time, data connection time-outs, session lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import posixpath
import random
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dynapot.events import Kind
from dynapot.services.contract import ConnectionInfo, Handler, PassiveListener, Report, Service, clip, guarded
from dynapot.services.logins import LoginPolicy, weak_pairs
from dynapot.services.profiles import Profile, choose
from dynapot.services.systems import UBUNTU_22_04
from dynapot.services.uploads import MAX_UPLOAD, UploadStore

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_DIR = Path("/var/lib/dynapot/uploads")
MAX_LINE = 4095  # bytes before the LF: vsftpd reads a line of at most VSFTP_MAX_COMMAND_LINE (4096)
_CHUNK = 64 * 1024

ANONYMOUS = frozenset({"anonymous", "ftp"})
# Accounts Debian's vsftpd refuses whatever the password (/etc/ftpusers, through PAM).
FTPUSERS = frozenset(
    ["root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "nobody"]
)


@dataclass(frozen=True)
class FtpConfig:
    upload_dir: Path = DEFAULT_UPLOAD_DIR
    max_upload: int = MAX_UPLOAD  # bytes kept per upload; the rest is refused as a full disk would
    # Where uploads go, with its quotas (the sensor's, from its settings); without one, a store of
    # upload_dir and max_upload without quotas, shared by the handler's connections.
    uploads: UploadStore | None = None
    # Which logins succeed: "weak" (a few common pairs, drawn per host: `logins.weak_pairs`),
    # "any", "none", or a fixed set of (user, password) pairs.
    accept: LoginPolicy | frozenset[tuple[str, str]] = "weak"
    # Anonymous FTP (USER anonymous or ftp, any password). Off, as in the vsftpd.conf Debian and
    # Ubuntu ship (anonymous_enable=NO): a real server refuses it with "530 Login incorrect.".
    anonymous: bool = False
    max_login_fails: int = 3  # vsftpd's max_login_fails: then hang up
    # Seconds before a failed login is answered; None: the imitated server's own (`FtpServer`).
    fail_delay: float | None = None
    # Seconds (low, high) before the greeting; None: the imitated server's own (`FtpServer`).
    banner_delay: tuple[float, float] | None = None
    idle_timeout: float = 120.0
    data_timeout: float = 30.0  # waiting for, and idling on, a data connection
    lifetime: float = 900.0
    max_line: int = MAX_LINE
    max_commands: int = 2000  # per connection: bounds what one client can make us record


# -- dialects: the wording of each server ---------------------------------------------------------------

_VSFTPD: dict[str, str] = {
    "user": "331 Please specify the password.",
    "user_anon": "331 Please specify the password.",
    "login": "230 Login successful.",
    "login_anon": "230 Login successful.",
    "login_bad": "530 Login incorrect.",
    "need_user": "503 Login with USER first.",
    "need_login": "530 Please login with USER and PASS.",
    "again_anon": "530 Can't change from guest user.",
    "again": "530 Can't change to another user.",
    "syst": "215 UNIX Type: L8",
    "pwd": '257 "{path}" is the current directory',
    "cwd": "250 Directory successfully changed.",
    "cdup": "250 Directory successfully changed.",
    "cwd_bad": "550 Failed to change directory.",
    "type_i": "200 Switching to Binary mode.",
    "type_a": "200 Switching to ASCII mode.",
    "type_bad": "500 Unrecognised TYPE command.",
    "pasv": "227 Entering Passive Mode ({addr}).",
    "epsv": "229 Entering Extended Passive Mode (|||{port}|)",
    "epsv_all": "200 EPSV ALL ok.",
    "epsv_bad": "522 Bad network protocol.",
    "port": "200 PORT command successful. Consider using PASV.",
    "port_bad": "500 Illegal PORT command.",
    "eprt": "200 EPRT command successful. Consider using EPSV.",
    "eprt_bad": "500 Illegal EPRT command.",
    "no_data": "425 Can't open data connection.",
    "need_port": "425 Use PORT or PASV first.",
    "data_failed": "425 Failed to establish connection.",
    "list": "150 Here comes the directory listing.",
    "list_done": "226 Directory send OK.",
    "retr": "150 Opening {mode} mode data connection for {name} ({size} bytes).",
    "retr_done": "226 Transfer complete.",
    "retr_bad": "550 Failed to open file.",
    "stor": "150 Ok to send data.",
    "stor_done": "226 Transfer complete.",
    "stor_bad": "553 Could not create file.",
    "stor_full": "451 Failure writing to local file.",
    "send_failed": "426 Failure writing network stream.",
    "recv_failed": "426 Failure reading network stream.",
    "data_timeout": "421 Data timeout. Reconnect. Sorry.",
    "size": "213 {size}",
    "size_bad": "550 Could not get file size.",
    "mdtm": "213 {stamp}",
    "mdtm_bad": "550 Could not get file modification time.",
    "mkd": '257 "{path}" created',
    "mkd_bad": "550 Create directory operation failed.",
    "perm": "550 Permission denied.",
    "rest": "350 Restart position accepted ({pos}).",
    "noop": "200 NOOP ok.",
    "quit": "221 Goodbye.",
    "unknown": "500 Unknown command.",
    "not_impl": "502 {verb} not implemented.",
    "opts_utf8": "200 Always in UTF8 mode.",
    "opts_bad": "501 Option not understood.",
    "stru": "200 Structure set to F.",
    "stru_bad": "504 Bad STRU command.",
    "mode": "200 Mode set to S.",
    "mode_bad": "504 Bad MODE command.",
    "allo": "202 ALLO command ignored.",
    "abor": "225 No transfer to ABOR.",
    "site_bad": "500 Unknown SITE command.",
    "timeout": "421 Timeout.",
    "too_long": "500 Input line too long.",  # then vsftpd hangs up
    # vsftpd lists UTF8 only with utf8_filesystem=YES, which no distribution's default sets
    # (recorded: Debian 12's vsftpd 3.0.3 with its own vsftpd.conf).
    "feat": "211-Features:\n EPRT\n EPSV\n MDTM\n PASV\n REST STREAM\n SIZE\n TVFS\n211 End",
    "help": "214-The following commands are recognized.\n"
    " ABOR ACCT ALLO APPE CDUP CWD  DELE EPRT EPSV FEAT HELP LIST MDTM MKD\n"
    " MODE NLST NOOP OPTS PASS PASV PORT PWD  QUIT REIN REST RETR RMD  RNFR\n"
    " RNTO SITE SIZE SMNT STAT STOR STOU STRU SYST TYPE USER XCUP XCWD XMKD\n"
    " XPWD XRMD\n"
    "214 Help OK.",
}

_PROFTPD: dict[str, str] = _VSFTPD | {
    "user": "331 Password required for {user}",
    "user_anon": "331 Anonymous login ok, send your complete email address as your password",
    "login": "230 User {user} logged in",
    "login_anon": "230 Anonymous access granted, restrictions apply",
    "need_user": "503 Login with USER first",
    "need_login": "530 Please login with USER and PASS",
    "again_anon": "501 Reauthentication not supported",
    "again": "501 Reauthentication not supported",
    "cwd": "250 CWD command successful",
    "cdup": "250 CDUP command successful",
    "cwd_bad": "550 {arg}: No such file or directory",
    "type_i": "200 Type set to I",
    "type_a": "200 Type set to A",
    "type_bad": "504 TYPE not implemented for '{arg}' parameter",
    "port": "200 PORT command successful",
    "port_bad": "500 Illegal PORT command",
    "eprt": "200 EPRT command successful",
    "eprt_bad": "500 Illegal EPRT command",
    "need_port": "425 Unable to build data connection: Connection refused",
    "data_failed": "425 Unable to build data connection: Connection timed out",
    "list": "150 Opening ASCII mode data connection for file list",
    "list_done": "226 Transfer complete",
    "retr": "150 Opening {mode} mode data connection for {name} ({size} bytes)",
    "retr_done": "226 Transfer complete",
    "retr_bad": "550 {arg}: No such file or directory",
    "stor": "150 Opening {mode} mode data connection for {name}",
    "stor_done": "226 Transfer complete",
    "stor_bad": "550 {arg}: No such file or directory",
    "stor_full": "552 Transfer aborted. Disk quota exceeded",
    "send_failed": "426 Transfer aborted. Data connection closed",
    "recv_failed": "426 Transfer aborted. Data connection closed",
    "data_timeout": "421 Data channel timeout, closing control connection",
    "size_bad": "550 {arg}: No such file or directory",
    "mdtm_bad": "550 {arg}: No such file or directory",
    "mkd": '257 "{path}" - Directory successfully created',
    "mkd_bad": "550 {arg}: Permission denied",
    "perm": "550 {arg}: Permission denied",
    "rest": "350 Restarting at {pos}. Send STORE or RETRIEVE to initiate transfer",
    "noop": "200 NOOP command successful",
    "unknown": "500 {verb} not understood",
    "not_impl": "502 {verb} command not implemented",
    "opts_utf8": "200 UTF8 set to on",
    "abor": "226 Abort successful",
    "site_bad": "500 'SITE {arg}' not understood",
    "timeout": "421 Idle timeout ({secs} seconds): closing control connection",
    "feat": "211-Features:\n LANG en-US*\n MDTM\n MFMT\n TVFS\n UTF8\n MFF modify;UNIX.group;UNIX.mode;\n"
    " MLST modify*;perm*;size*;type*;unique*;UNIX.group*;UNIX.mode*;UNIX.owner*;\n"
    " REST STREAM\n SIZE\n211 End",
    "help": "214-The following commands are recognized (* =>'s unimplemented):\n"
    " CWD     XCWD    CDUP    XCUP    SMNT*   QUIT    PORT    PASV    \n"
    " EPRT    EPSV    ALLO*   RNFR    RNTO    DELE    MDTM    RMD     \n"
    " XRMD    MKD     XMKD    PWD     XPWD    SIZE    SYST    HELP    \n"
    " NOOP    FEAT    OPTS    AUTH*   CCC*    CONF*   ENC*    MIC*    \n"
    " PBSZ*   PROT*   TYPE    STRU    MODE    RETR    STOR    STOU    \n"
    " APPE    REST    ABOR    USER    PASS    ACCT*   REIN*   LIST    \n"
    " NLST    STAT    SITE    MLSD    MLST    \n"
    "214 Direct comments to root@{host}",
}

_IIS: dict[str, str] = _VSFTPD | {
    "user": "331 Password required",
    "user_anon": "331 Anonymous access allowed, send identity (e-mail name) as password.",
    "login": "230 User logged in.",
    "login_anon": "230 User logged in.",
    "login_bad": "530 User cannot log in.",
    "again_anon": "503 You are already logged in.",
    "again": "503 You are already logged in.",
    "syst": "215 Windows_NT",
    "pwd": '257 "{path}" is current directory.',
    "cwd": "250 CWD command successful.",
    "cdup": "250 CDUP command successful.",
    "cwd_bad": "550 The system cannot find the file specified. ",
    "type_i": "200 Type set to I.",
    "type_a": "200 Type set to A.",
    "type_bad": "504 Command not implemented for that parameter.",
    "epsv": "229 Entering Extended Passive Mode (|||{port}|)",
    "port": "200 PORT command successful.",
    "port_bad": "501 Server cannot accept argument.",
    "eprt": "200 EPRT command successful.",
    "eprt_bad": "501 Server cannot accept argument.",
    "need_port": "425 Can't open data connection.",
    "data_failed": "425 Can't open data connection.",
    "list": "125 Data connection already open; Transfer starting.",
    "list_done": "226 Transfer complete.",
    "retr": "125 Data connection already open; Transfer starting.",
    "retr_bad": "550 The system cannot find the file specified. ",
    "stor": "125 Data connection already open; Transfer starting.",
    "stor_bad": "550 The system cannot find the path specified. ",
    "stor_full": "550 There is not enough space on the disk. ",
    "send_failed": "426 Connection closed; transfer aborted.",
    "recv_failed": "426 Connection closed; transfer aborted.",
    "data_timeout": "426 Connection closed; transfer aborted.",
    "size_bad": "550 The system cannot find the file specified. ",
    "mdtm_bad": "550 The system cannot find the file specified. ",
    "mkd": '257 "{path}" directory created.',
    "mkd_bad": "550 Access is denied. ",
    "perm": "550 Access is denied. ",
    "rest": "350 Restarting at {pos}.",
    "noop": "200 NOOP command successful.",
    "unknown": "500 '{line}': command not understood",
    "not_impl": "502 Command not implemented.",
    "opts_utf8": "200 OPTS UTF8 command successful - UTF8 encoding now ON.",
    "abor": "225 ABOR command successful.",
    "site_bad": "501 Invalid SITE command.",
    "timeout": "421 Timeout ({secs} seconds): closing control connection.",
    "feat": "211-Extended features supported:\n LANG EN*\n UTF8\n AUTH TLS;TLS-C;SSL;TLS-P;\n PBSZ\n"
    " PROT C;P;\n CCC\n HOST\n SIZE\n MDTM\n REST STREAM\n211 END",
    "help": "214-The following commands are recognized (* ==>'s unimplemented).\n"
    "    ABOR \n    ACCT \n    ADAT *\n    ALLO \n    APPE \n    AUTH \n    CCC  \n    CDUP \n"
    "    CWD  \n    DELE \n    ENC  *\n    EPRT \n    EPSV \n    FEAT \n    HELP \n    HOST \n"
    "    LANG \n    LIST \n    MDTM \n    MIC  *\n    MKD  \n    MODE \n    NLST \n    NOOP \n"
    "    OPTS \n    PASS \n    PASV \n    PBSZ \n    PORT \n    PROT \n    PWD  \n    QUIT \n"
    "    REIN \n    REST \n    RETR \n    RMD  \n    RNFR \n    RNTO \n    SITE \n    SIZE \n"
    "    SMNT \n    STAT \n    STOR \n    STOU \n    STRU \n    SYST \n    TYPE \n    USER \n"
    "    XCUP \n    XCWD \n    XMKD \n    XPWD \n    XRMD \n"
    "214 HELP command successful.",
}

DIALECTS = {"vsftpd": _VSFTPD, "proftpd": _PROFTPD, "iis": _IIS}


@dataclass(frozen=True, slots=True)
class FtpServer:
    """One FTP server: its dialect (a key of DIALECTS), its greeting, whether it is Windows'."""

    dialect: str
    greeting: str  # a template: {version}, {host}, {dst}
    windows: bool = False
    # Seconds (at least, at most) before a failed login is answered.
    fail_delay: tuple[float, float] = (1.0, 1.0)
    denied: frozenset[str] = frozenset()  # accounts that never log in (ftpusers)
    long_line_hangs_up: bool = False  # vsftpd: "500 Input line too long." and goodbye; others cut it
    # Seconds (at least, at most) from the connection to the greeting: the server's own start
    # (vsftpd forks a process per connection and sets it up before it says 220).
    banner_delay: tuple[float, float] = (0.0, 0.0)


# Debian's vsftpd: delay_failed_login=1, then pam_unix's own delay of about 2 s (recorded: 2.9 to
# 3.5 s); root and the other system accounts are in /etc/ftpusers. It forks a process per
# connection and sets it up before saying 220: 1.3-4.8 ms after the SYN/ACK on the wire, median
# 1.56 ms (bench/bench_service_timing.py, 50 connections); the pause is that less the sensor's
# own path (about 0.65 ms from the SYN/ACK to a service's first write).
_VSFTPD_SERVER = FtpServer(
    "vsftpd",
    "220 (vsFTPd {version})",
    fail_delay=(2.5, 3.5),
    denied=FTPUSERS,
    long_line_hangs_up=True,
    banner_delay=(0.0007, 0.0014),
)
_IIS_SERVER = FtpServer("iis", "220 Microsoft FTP Service", windows=True)
# nmap's product first, then the host's system: vsftpd unless it is a Windows host.
SERVERS: tuple[Profile[FtpServer], ...] = (
    Profile(FtpServer("proftpd", "220 ProFTPD {version} Server ({host}) [{dst}]"), "proftpd"),
    Profile(_VSFTPD_SERVER, "vsftpd", default_version="3.0.3"),
    Profile(_IIS_SERVER, "microsoft"),
    Profile(_IIS_SERVER, "iis"),
    Profile(_IIS_SERVER, os="windows"),
    Profile(_VSFTPD_SERVER, default_version="3.0.3"),
)


def greeting_for(info: ConnectionInfo) -> tuple[FtpServer, str]:
    """The FTP server this host imitates, and its greeting line."""
    row = choose(SERVERS, info)
    server = row.what
    text = server.greeting.format(version=row.version(info), host=info.identity.hostname, dst=info.dst)
    return server, " ".join(text.split())  # no version: no double space


# -- the fake file tree --------------------------------------------------------------------------------


@dataclass(slots=True)
class Node:
    is_dir: bool
    mtime: int  # seconds since the epoch
    size: int = 0
    text: bytes | None = None  # the content of small text files
    magic: bytes = b""  # the first bytes of a generated binary file
    mode: str = ""  # "drwxr-xr-x"-style, for listings
    owner: str = "root"
    downloadable: bool = True  # False for uploads: we never serve what attackers left
    children: dict[str, Node] | None = None

    def entries(self) -> dict[str, Node]:
        if self.children is None:
            self.children = {}
        return self.children


_MAGIC = {
    ".gz": b"\x1f\x8b\x08\x00",
    ".zip": b"PK\x03\x04",
    ".pdf": b"%PDF-1.4\n",
    ".png": b"\x89PNG\r\n\x1a\n",
    ".bin": b"\x27\x05\x19\x56",
}
_EPOCH = 1640995200  # 2022-01-01: generated dates fall in the following two years


class FileTree:
    """One host's files as FTP shows them, generated from a seed; uploads are added per session."""

    def __init__(
        self, seed: int, host: str, windows: bool, user: str | None, issue: str = UBUNTU_22_04.issue
    ) -> None:
        self._rng = random.Random(seed)
        self.seed = seed
        self.host = host
        self.issue = issue  # /etc/issue of a Unix host
        self.root = self._dir()
        self.home = "/"
        self.user = "ftp"  # who owns what this session creates
        self.uids = {"root": "0", "ftp": "106"}  # vsftpd lists numeric ids
        if windows:
            self._windows()
        elif user is None:
            self._pub(self.root)
        else:
            self._unix(user)

    # building -------------------------------------------------------------------------------------------

    def _time(self) -> int:
        return _EPOCH + self._rng.randrange(0, 730 * 86400)

    def _dir(self, mode: str = "drwxr-xr-x", owner: str = "root") -> Node:
        return Node(True, self._time(), 4096, mode=mode, owner=owner, children={})

    def _text(self, body: str, owner: str = "root", mode: str = "-rw-r--r--") -> Node:
        data = body.encode()
        return Node(False, self._time(), len(data), text=data, mode=mode, owner=owner)

    def _blob(self, name: str, low: int, high: int, owner: str = "root") -> Node:
        magic = _MAGIC.get(posixpath.splitext(name)[1], b"")
        size = self._rng.randrange(low, high)
        return Node(False, self._time(), size, magic=magic, mode="-rw-r--r--", owner=owner)

    def _pub(self, where: Node) -> None:
        pub = where.entries()["pub"] = self._dir()
        files = pub.entries()
        rng = self._rng
        files["README"] = self._text(
            f"Welcome to the {self.host} FTP archive.\n\n"
            "Files in this directory are mirrored nightly. Please report problems to\n"
            f"ftpadmin@{self.host}.\n"
        )
        project = rng.choice(["netutils", "fwtools", "sensor-agent", "backup-tools", "webapp", "libcfg"])
        version = f"{rng.randint(0, 4)}.{rng.randint(0, 12)}.{rng.randint(0, 9)}"
        pool = [
            f"{project}-{version}.tar.gz",
            f"firmware_v{rng.randint(1, 9)}.{rng.randint(0, 20)}.bin",
            "ls-lR.gz",
            f"release-notes-{version}.txt",
            f"{project}-{version}.zip",
        ]
        for name in rng.sample(pool, rng.randint(2, 4)):
            if name.endswith(".txt"):
                files[name] = self._text(f"{project} {version}\n\n- bug fixes\n- updated dependencies\n")
            else:
                files[name] = self._blob(name, 2_000, 200_000)
        if rng.random() < 0.5:
            where.entries()["incoming"] = self._dir("drwx-wx-wx")

    def _unix(self, user: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,31}", user):
            user = "user"  # an attacker's odd name never becomes a path
        top = self.root.entries()
        for name in ("bin", "boot", "dev", "lib", "media", "mnt", "opt", "proc", "run", "sbin", "sys", "usr"):
            top[name] = self._dir()
        top["tmp"] = self._dir("drwxrwxrwt")
        etc = top["etc"] = self._dir()
        etc.entries().update(
            {
                "hostname": self._text(f"{self.host}\n"),
                "hosts": self._text(f"127.0.0.1 localhost\n127.0.1.1 {self.host}\n"),
                "issue": self._text(self.issue),
                "passwd": self._text(_passwd(user)),
            }
        )
        srv = top["srv"] = self._dir()
        self._pub(srv.entries().setdefault("ftp", self._dir()))
        var = top["var"] = self._dir()
        var.entries()["www"] = self._dir()
        var.entries()["www"].entries()["html"] = self._dir()
        var.entries()["www"].entries()["html"].entries()["index.html"] = self._text(
            f"<html><body><h1>{self.host}</h1></body></html>\n"
        )
        uid = self.user = user
        self.uids[user] = "0" if user == "root" else "1000"
        home = self._dir("drwx------" if user == "root" else "drwxr-x---", uid)
        if user == "root":
            top["root"] = home
            self.home = "/root"
            top["home"] = self._dir()
        else:
            top["root"] = self._dir("drwx------")
            top["home"] = self._dir()
            top["home"].entries()[user] = home
            self.home = f"/home/{user}"
        files = home.entries()
        files[".bash_logout"] = self._text(
            "# ~/.bash_logout: executed by bash(1) when login shell exits.\n", uid
        )
        files[".bashrc"] = self._text("# ~/.bashrc: executed by bash(1) for non-login shells.\n" * 3, uid)
        files[".profile"] = self._text(
            "# ~/.profile: executed by the command interpreter for login shells.\n", uid
        )
        rng = self._rng
        pool = ["backup.tar.gz", "notes.txt", "deploy.sh", "db_dump.sql.gz", "site-backup.zip"]
        for name in rng.sample(pool, rng.randint(1, 3)):
            if name == "notes.txt":
                files[name] = self._text(f"todo: rotate logs on {self.host}\ntodo: renew certificate\n", uid)
            elif name == "deploy.sh":
                files[name] = self._text("#!/bin/sh\nset -e\ncd /var/www/html\ngit pull\n", uid, "-rwxr-xr-x")
            else:
                files[name] = self._blob(name, 10_000, 250_000, uid)

    def _windows(self) -> None:
        top = self.root.entries()
        rng = self._rng
        aspnet = top["aspnet_client"] = self._dir()
        aspnet.entries()["system_web"] = self._dir()
        top["iisstart.htm"] = self._text(
            '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN">\r\n<html><head>'
            f"<title>{self.host}</title></head><body></body></html>\r\n"
        )
        top["welcome.png"] = self._blob("welcome.png", 20_000, 190_000)
        for folder in rng.sample(["Backup", "Reports", "Scans", "Export"], rng.randint(1, 3)):
            sub = top[folder] = self._dir()
            year = rng.choice([2022, 2023])
            for _ in range(rng.randint(1, 4)):
                name = rng.choice(
                    [
                        f"invoice_{year}_{rng.randint(100, 999)}.pdf",
                        f"export_{year}{rng.randint(1, 12):02d}.csv",
                        f"scan{rng.randint(1000, 9999)}.pdf",
                        f"backup_{year}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}.zip",
                    ]
                )
                if name.endswith(".csv"):
                    sub.entries()[name] = self._text("id;date;amount\r\n1;2023-01-04;120.00\r\n")
                else:
                    sub.entries()[name] = self._blob(name, 30_000, 240_000)
        if rng.random() < 0.5:
            top["readme.txt"] = self._text(f"Files for {self.host}. Contact IT for access.\r\n")

    # lookup ---------------------------------------------------------------------------------------------

    def resolve(self, cwd: str, arg: str) -> str:
        """An absolute, normalised path inside the tree (`..` never climbs above `/`)."""
        arg = arg.replace("\\", "/")
        if arg == "~" or arg.startswith("~/"):
            arg = self.home + arg[1:]
        path = posixpath.normpath(posixpath.join(cwd, arg))
        return "/" + path.lstrip("/")

    def get(self, path: str) -> Node | None:
        node = self.root
        for part in path.strip("/").split("/"):
            if not part:
                continue
            if not node.is_dir or part not in node.entries():
                return None
            node = node.entries()[part]
        return node

    def content(self, path: str, node: Node) -> bytes:
        if node.text is not None:
            return node.text
        rng = random.Random(f"{self.seed}:{path}")
        return node.magic + rng.randbytes(max(0, node.size - len(node.magic)))


def _passwd(user: str) -> str:
    lines = [
        "root:x:0:0:root:/root:/bin/bash",
        "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin",
        "bin:x:2:2:bin:/bin:/usr/sbin/nologin",
        "sys:x:3:3:sys:/dev:/usr/sbin/nologin",
        "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin",
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
        "sshd:x:105:65534::/run/sshd:/usr/sbin/nologin",
        "ftp:x:106:113:ftp daemon,,,:/srv/ftp:/usr/sbin/nologin",
    ]
    if user != "root" and re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", user):
        lines.append(f"{user}:x:1000:1000:{user},,,:/home/{user}:/bin/bash")
    return "\n".join(lines) + "\n"


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _unix_line(name: str, node: Node, uids: dict[str, str] | None, now: float) -> str:
    """An `ls -l` line: vsftpd's (numeric ids, `uids` given) or ProFTPD's (names, day padded)."""
    t = time.gmtime(node.mtime)
    recent = now - 180 * 86400 < node.mtime <= now + 3600
    when = f"{t.tm_hour:02d}:{t.tm_min:02d}" if recent else f" {t.tm_year}"
    month = _MONTHS[t.tm_mon - 1]
    links = 2 if node.is_dir else 1
    if uids is None:
        owner = node.owner[:8]
        head = f"{node.mode} {links:>3} {owner:<8} {owner:<8}"
        return f"{head} {node.size:>8} {month} {t.tm_mday:>2} {when:>5} {name}"
    uid = uids.get(node.owner, "1000")
    head = f"{node.mode} {links:>4} {uid:<8} {uid:<8}"
    return f"{head} {node.size:>8} {month} {t.tm_mday:02d} {when:>5} {name}"


def _dos_line(name: str, node: Node) -> str:
    t = time.gmtime(node.mtime)
    hour = t.tm_hour % 12 or 12
    stamp = f"{t.tm_mon:02d}-{t.tm_mday:02d}-{t.tm_year % 100:02d}  {hour:02d}:{t.tm_min:02d}"
    stamp += "AM" if t.tm_hour < 12 else "PM"
    size = "      <DIR>         " if node.is_dir else f"{node.size:>20}"
    return f"{stamp} {size} {name}"


# -- the sans-IO session --------------------------------------------------------------------------------

Event = tuple[Kind, str | None, dict[str, Any] | None]


@dataclass(frozen=True, slots=True)
class OpenPassive:
    """Open a passive data port, then call `passive_ready(port)` (or `passive_failed()`)."""

    extended: bool


@dataclass(frozen=True, slots=True)
class SendData:
    """Open the data connection, send `opening`, send `data`, then call `transfer_done(ok)`."""

    data: bytes
    opening: str
    listing: bool = False


@dataclass(frozen=True, slots=True)
class ReceiveData:
    """Open the data connection, send `opening`, keep what arrives, then call `received(...)`."""

    name: str
    path: str
    opening: str


Action = OpenPassive | SendData | ReceiveData


@dataclass(frozen=True, slots=True)
class Upload:
    """What one STOR brought (the "upload" event's data)."""

    name: str
    path: str
    size: int
    sha256: str
    truncated: bool  # cut at `max_upload`, as a full disk would
    stored: bool  # kept as <upload_dir>/<sha256>
    duplicate: bool = False  # that content was kept already (stored once)
    dropped: str | None = None  # why it was not kept: a quota, the budget, the disk


@dataclass(slots=True)
class Reply:
    lines: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    action: Action | None = None
    close: bool = False
    delay: float = 0.0  # wait this long before sending `lines` (failed logins)

    def wire(self) -> bytes:
        """The lines as sent, CRLF-terminated (UTF-8 never holds a 0xFF byte to escape)."""
        text = "".join(line.replace("\n", "\r\n") + "\r\n" for line in self.lines)
        return text.encode("utf-8", "replace")


class FtpSession:
    """The FTP command and state machine of one control connection; no IO inside."""

    def __init__(self, info: ConnectionInfo, config: FtpConfig | None = None) -> None:
        self.config = config or FtpConfig()
        self.info = info
        self.host = info.identity.hostname
        self.server, self._greeting = greeting_for(info)
        self._text = DIALECTS[self.server.dialect]
        self._seed = info.identity.rng("ftp-files").getrandbits(64)
        self.user: str | None = None  # as given by USER
        self.logged_in = False
        self.anonymous = False
        self.fails = 0
        self.tree: FileTree | None = None
        self.cwd = "/"
        self.binary = False
        self.passive = False  # a passive port is (being) opened for the next transfer
        self.active: tuple[str, int] | None = None  # PORT/EPRT target for the next transfer
        self.epsv_all = False
        self.commands = 0
        self._epsv_pending = False
        self._weak: frozenset[tuple[str, str]] | None = None  # this host's weak pairs, once needed

    # helpers ----------------------------------------------------------------------------------------

    def _say(self, key: str, **values: Any) -> str:
        values.setdefault("host", self.host)
        values.setdefault("secs", int(self.config.idle_timeout))
        return self._text[key].format(**values)

    def _reply(self, key: str, **values: Any) -> Reply:
        return Reply([self._say(key, **values)])

    def _opening(self, key: str, **values: Any) -> str:
        """The preliminary reply of a transfer (IIS says 125 only when the passive connection is up)."""
        if self.server.windows and self.active is not None:
            return f"150 Opening {values.get('mode', 'ASCII')} mode data connection."
        return self._say(key, **values)

    def _reset_data(self) -> None:
        self.passive = False
        self.active = None

    # entry points ------------------------------------------------------------------------------------

    def greeting(self) -> Reply:
        """The greeting, after the server's start-up (`FtpServer.banner_delay`, or the configured one)."""
        low, high = self.config.banner_delay or self.server.banner_delay
        return Reply([self._greeting], delay=random.uniform(low, high) if high > 0 else 0.0)

    def command(self, raw: bytes, *, overlong: bool = False) -> Reply:
        """One command line (without its line end)."""
        # ABOR arrives after telnet IP/DM (urgent data); the other telnet bytes mean nothing here.
        raw = raw.replace(b"\xff\xf4", b"").replace(b"\xff\xf2", b"").replace(b"\xff\xff", b"\xff")
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        events: list[Event] = []
        if overlong:
            events.append((Kind.BAD_REQUEST, "command line too long", {"bytes": len(raw)}))
            if self.server.long_line_hangs_up:
                return Reply([self._say("too_long")], events, close=True)
        elif not line.isprintable():
            events.append((Kind.BAD_REQUEST, "unprintable command", {"line": clip(line)}))
        self.commands += 1
        if self.commands > self.config.max_commands:
            return Reply(["421 Service not available, closing control connection."], events, close=True)
        if verb != "PASS":
            events.append((Kind.COMMAND, clip(line), None))
        reply = self._dispatch(verb, arg, line)
        reply.events[:0] = events
        return reply

    def passive_ready(self, port: int) -> Reply:
        self.passive = True
        if self._epsv_pending:
            return self._reply("epsv", port=port)
        address = self.info.dst if _is_ipv4(self.info.dst) else "0.0.0.0"  # noqa: S104 - no address to give
        return self._reply("pasv", addr=",".join([*address.split("."), str(port >> 8), str(port & 255)]))

    def passive_failed(self) -> Reply:
        self._reset_data()
        return self._reply("no_data")

    def data_failed(self) -> Reply:
        self._reset_data()
        return self._reply("data_failed")

    def transfer_done(self, ok: bool, *, listing: bool = False, timed_out: bool = False) -> Reply:
        self._reset_data()
        if timed_out:
            return Reply([self._say("data_timeout")], close=True)
        if not ok:
            return self._reply("send_failed")
        return self._reply("list_done" if listing else "retr_done")

    def received(self, upload: Upload, *, ok: bool = True, timed_out: bool = False) -> Reply:
        """An upload has ended: report it, show it in listings (never serve it back), reply."""
        self._reset_data()
        data = asdict(upload) | {"name": clip(upload.name), "path": clip(upload.path)}
        event: Event = (Kind.UPLOAD, clip(upload.name), data)
        if self.tree is not None:
            parent = self.tree.get(posixpath.dirname(upload.path))
            if parent is not None and parent.is_dir and len(parent.entries()) < 1000:
                parent.entries()[posixpath.basename(upload.path)] = Node(
                    False,
                    int(time.time()),
                    upload.size,
                    mode="-rw-------",
                    owner=self.tree.user,
                    downloadable=False,
                )
        if timed_out:
            return Reply([self._say("data_timeout")], [event], close=True)
        key = "stor_full" if upload.truncated else "recv_failed" if not ok else "stor_done"
        return Reply([self._say(key)], [event])

    def timed_out(self) -> Reply:
        return Reply([self._say("timeout")], close=True)

    # dispatch ----------------------------------------------------------------------------------------

    def _dispatch(self, verb: str, arg: str, line: str) -> Reply:
        if verb == "QUIT":
            return Reply([self._say("quit")], close=True)
        if verb == "USER":
            return self._user(arg)
        if verb == "PASS":
            return self._pass(arg)
        if verb == "FEAT":
            return self._reply("feat")
        if verb == "OPTS":
            return self._opts(arg)
        if not self.logged_in:
            return self._reply("need_login")
        handler = self._HANDLERS.get(verb)
        if handler is not None:
            return handler(self, arg)
        if verb in ("REIN", "ACCT", "SMNT"):
            return self._reply("not_impl", verb=verb)
        return self._reply("unknown", verb=clip(verb), line=clip(line))

    def _user(self, arg: str) -> Reply:
        if self.logged_in:
            return self._reply("again_anon" if self.anonymous else "again")
        self.user = arg
        anonymous = arg.lower() in ANONYMOUS and self.config.anonymous
        return self._reply("user_anon" if anonymous else "user", user=clip(arg))

    def _pass(self, password: str) -> Reply:
        if self.logged_in:
            return self._reply("again_anon" if self.anonymous else "again")
        if self.user is None:
            return self._reply("need_user")
        user, self.user = self.user, None
        anonymous = user.lower() in ANONYMOUS and self.config.anonymous
        accepted = anonymous or self._accepts(user, password)
        clipped_user, clipped_pw = clip(user), clip(password)
        event: Event = (
            Kind.LOGIN,
            f"{clipped_user}:{clipped_pw}",
            {"user": clipped_user, "password": clipped_pw, "accepted": accepted},
        )
        if not accepted:
            self.fails += 1
            close = self.fails >= self.config.max_login_fails
            return Reply([self._say("login_bad")], [event], close=close, delay=self._fail_delay())
        self.logged_in = True
        self.anonymous = anonymous
        tree_user = None if anonymous or self.server.windows else user
        issue = self.info.identity.distribution.issue
        self.tree = FileTree(self._seed, self.host, self.server.windows, tree_user, issue)
        self.cwd = self.tree.home
        key = "login_anon" if anonymous else "login"
        return Reply([self._say(key, user=clipped_user)], [event])

    def _accepts(self, user: str, password: str) -> bool:
        """Whether the login policy lets `user` in with `password` (anonymous aside)."""
        if user in self.server.denied or (user.lower() in ANONYMOUS and not self.config.anonymous):
            return False
        policy = self.config.accept
        if policy == "any":
            return True
        if policy == "none":
            return False
        if policy == "weak":
            if self._weak is None:
                self._weak = weak_pairs(self.info.identity, "ftp")
            policy = self._weak
        return (user, password) in policy

    def _fail_delay(self) -> float:
        if self.config.fail_delay is not None:
            return self.config.fail_delay
        low, high = self.server.fail_delay
        return random.uniform(low, high)

    def _opts(self, arg: str) -> Reply:
        if arg.strip().upper() in ("UTF8 ON", "UTF-8 ON"):
            return self._reply("opts_utf8")
        if not self.logged_in:
            return self._reply("need_login")
        return self._reply("opts_bad")

    # logged-in commands ------------------------------------------------------------------------------

    @property
    def _files(self) -> FileTree:
        assert self.tree is not None
        return self.tree

    def _syst(self, arg: str) -> Reply:
        return self._reply("syst")

    def _noop(self, arg: str) -> Reply:
        return self._reply("noop")

    def _help(self, arg: str) -> Reply:
        return self._reply("help")

    def _pwd(self, arg: str) -> Reply:
        return self._reply("pwd", path=self.cwd.replace('"', '""'))

    def _cwd(self, arg: str, key: str = "cwd") -> Reply:
        path = self._files.resolve(self.cwd, arg or "~")
        node = self._files.get(path)
        if node is None or not node.is_dir:
            return self._reply("cwd_bad", arg=clip(arg))
        self.cwd = path
        return self._reply(key)

    def _cdup(self, arg: str) -> Reply:
        return self._cwd("..", "cdup")

    def _type(self, arg: str) -> Reply:
        kind = arg.strip().upper()
        if kind in ("I", "L8", "L 8"):
            self.binary = True
            return self._reply("type_i")
        if kind in ("A", "A N"):
            self.binary = False
            return self._reply("type_a")
        return self._reply("type_bad", arg=clip(arg))

    def _stru(self, arg: str) -> Reply:
        return self._reply("stru" if arg.strip().upper() == "F" else "stru_bad")

    def _mode(self, arg: str) -> Reply:
        return self._reply("mode" if arg.strip().upper() == "S" else "mode_bad")

    def _allo(self, arg: str) -> Reply:
        return self._reply("allo")

    def _abor(self, arg: str) -> Reply:
        return self._reply("abor")

    def _rest(self, arg: str) -> Reply:
        digits = re.match(r"\s*(\d{1,18})", arg)
        return self._reply("rest", pos=int(digits.group(1)) if digits else 0)

    def _pasv(self, arg: str) -> Reply:
        if self.epsv_all:
            return self._reply("perm", arg="PASV")
        return self._open_passive(extended=False)

    def _epsv(self, arg: str) -> Reply:
        arg = arg.strip().upper()
        if arg == "ALL":
            self.epsv_all = True
            return self._reply("epsv_all")
        if arg and arg != "1":
            return self._reply("epsv_bad")
        return self._open_passive(extended=True)

    def _open_passive(self, *, extended: bool) -> Reply:
        self._reset_data()
        if self.info.data_ports is None:
            return self._reply("no_data")
        self._epsv_pending = extended
        return Reply(action=OpenPassive(extended))

    def _port(self, arg: str) -> Reply:
        self._reset_data()
        parts = arg.strip().split(",")
        if len(parts) != 6 or not all(p.strip().isdigit() and int(p) < 256 for p in parts):
            return self._reply("port_bad")
        numbers = [int(p) for p in parts]
        return self._set_active(".".join(map(str, numbers[:4])), numbers[4] << 8 | numbers[5], "port")

    def _eprt(self, arg: str) -> Reply:
        self._reset_data()
        fields = arg.strip().split(arg.strip()[:1] or "|") if arg.strip() else []
        if len(fields) != 5 or fields[1] not in ("1", "2") or not fields[3].isdigit():
            return self._reply("eprt_bad")
        return self._set_active(fields[2], int(fields[3]), "eprt")

    def _set_active(self, host: str, port: int, kind: str) -> Reply:
        if self.info.data_ports is None:
            return self._reply("no_data")
        # Only ever connect back to the client itself, and never to a privileged port (vsftpd's rule):
        # anything else would make us a bounce relay.
        if not _same_address(host, self.info.src) or not 1024 <= port <= 65535:
            return self._reply(f"{kind}_bad")
        self.active = (self.info.src, port)
        return self._reply(kind)

    def _ready(self) -> str | None:
        """The reply key that refuses a transfer now, or None when a data connection is set up."""
        if self.passive or self.active is not None:
            return None
        return "no_data" if self.info.data_ports is None else "need_port"

    def _list(self, arg: str, *, names_only: bool = False) -> Reply:
        refusal = self._ready()
        if refusal:
            return self._reply(refusal)
        options, target = "", arg.strip()
        if target.startswith("-"):
            options, _, target = target[1:].partition(" ")
        path = self._files.resolve(self.cwd, target.strip() or ".")
        node = self._files.get(path)
        rows: list[tuple[str, Node]] = []
        if node is not None and node.is_dir:
            rows = sorted(node.entries().items())
            if "a" not in options:
                rows = [(n, c) for n, c in rows if not n.startswith(".")]
        elif node is not None:
            rows = [(target.strip(), node)]
        now = time.time()
        if names_only:
            text = "".join(f"{name}\r\n" for name, _ in rows)
        elif self.server.windows:
            text = "".join(_dos_line(name, child) + "\r\n" for name, child in rows)
        else:
            uids = None if self.server.dialect == "proftpd" else self._files.uids
            text = "".join(_unix_line(name, child, uids, now) + "\r\n" for name, child in rows)
        return Reply(action=SendData(text.encode("utf-8", "replace"), self._opening("list"), listing=True))

    def _nlst(self, arg: str) -> Reply:
        return self._list(arg, names_only=True)

    def _file(self, arg: str) -> tuple[str, Node | None]:
        path = self._files.resolve(self.cwd, arg.strip())
        node = self._files.get(path)
        return path, node if node is not None and not node.is_dir else None

    def _retr(self, arg: str) -> Reply:
        refusal = self._ready()
        if refusal:
            return self._reply(refusal)
        path, node = self._file(arg)
        if node is None or not node.downloadable:
            self._reset_data()
            return self._reply("retr_bad", arg=clip(arg))
        mode = "BINARY" if self.binary or self.server.dialect == "vsftpd" else "ASCII"
        opening = self._opening("retr", mode=mode, name=clip(arg.strip()), size=node.size)
        return Reply(action=SendData(self._files.content(path, node), opening))

    def _stor(self, arg: str) -> Reply:
        refusal = self._ready()
        if refusal:
            return self._reply(refusal)
        name = arg.strip()
        path = self._files.resolve(self.cwd, name)
        parent = self._files.get(posixpath.dirname(path))
        existing = self._files.get(path)
        if not name or parent is None or not parent.is_dir or (existing is not None and existing.is_dir):
            self._reset_data()
            return self._reply("stor_bad", arg=clip(name))
        mode = "BINARY" if self.binary else "ASCII"
        return Reply(action=ReceiveData(name, path, self._opening("stor", mode=mode, name=clip(name))))

    def _size(self, arg: str) -> Reply:
        _, node = self._file(arg)
        if node is None:
            return self._reply("size_bad", arg=clip(arg))
        return self._reply("size", size=node.size)

    def _mdtm(self, arg: str) -> Reply:
        _, node = self._file(arg)
        if node is None:
            return self._reply("mdtm_bad", arg=clip(arg))
        return self._reply("mdtm", stamp=time.strftime("%Y%m%d%H%M%S", time.gmtime(node.mtime)))

    def _mkd(self, arg: str) -> Reply:
        if self.anonymous or not arg.strip():
            return self._reply("perm" if self.anonymous else "mkd_bad", arg=clip(arg))
        path = self._files.resolve(self.cwd, arg.strip())
        parent = self._files.get(posixpath.dirname(path))
        if parent is None or not parent.is_dir or self._files.get(path) is not None:
            return self._reply("mkd_bad", arg=clip(arg))
        if len(parent.entries()) < 1000:
            parent.entries()[posixpath.basename(path)] = Node(
                True, int(time.time()), 4096, mode="drwxr-xr-x", owner=self._files.user, children={}
            )
        return self._reply("mkd", path=clip(path).replace('"', '""'))

    def _denied(self, arg: str) -> Reply:
        # Deleting and renaming are refused: the honeypot's files stay as every visitor found them.
        return self._reply("perm", arg=clip(arg))

    def _site(self, arg: str) -> Reply:
        return self._reply("site_bad", arg=clip(arg))

    def _stat(self, arg: str) -> Reply:
        lines = [
            "211-FTP server status:",
            f"     Connected to {self.info.src}",
            f"     Logged in as {clip(self.user or ('ftp' if self.anonymous else 'user'))}",
            f"     TYPE: {'BINARY' if self.binary else 'ASCII'}",
            "     No session bandwidth limit",
            f"     Session timeout in seconds is {int(self.config.idle_timeout)}",
            "     Control connection is plain text",
            "     Data connections will be plain text",
            "211 End of status",
        ]
        return Reply(lines)

    _HANDLERS: dict[str, Any] = {
        "SYST": _syst,
        "NOOP": _noop,
        "HELP": _help,
        "PWD": _pwd,
        "XPWD": _pwd,
        "CWD": _cwd,
        "XCWD": _cwd,
        "CDUP": _cdup,
        "XCUP": _cdup,
        "TYPE": _type,
        "STRU": _stru,
        "MODE": _mode,
        "ALLO": _allo,
        "ABOR": _abor,
        "REST": _rest,
        "PASV": _pasv,
        "EPSV": _epsv,
        "PORT": _port,
        "EPRT": _eprt,
        "LIST": _list,
        "NLST": _nlst,
        "RETR": _retr,
        "STOR": _stor,
        "APPE": _stor,
        "SIZE": _size,
        "MDTM": _mdtm,
        "MKD": _mkd,
        "XMKD": _mkd,
        "RMD": _denied,
        "XRMD": _denied,
        "DELE": _denied,
        "RNFR": _denied,
        "RNTO": _denied,
        "SITE": _site,
        "STAT": _stat,
    }


def _is_ipv4(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 4
    except ValueError:
        return False


def _same_address(a: str, b: str) -> bool:
    try:
        x, y = ipaddress.ip_address(a), ipaddress.ip_address(b)
    except ValueError:
        return False
    # A v4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
    x = x.ipv4_mapped or x if isinstance(x, ipaddress.IPv6Address) else x
    y = y.ipv4_mapped or y if isinstance(y, ipaddress.IPv6Address) else y
    return x == y


# -- the IO loop ----------------------------------------------------------------------------------------


class _Lines:
    """Reads LF-terminated lines with a length cap: an overlong line is cut there, the rest of it dropped."""

    def __init__(self, reader: asyncio.StreamReader, limit: int) -> None:
        self._reader = reader
        self._limit = limit
        self._buf = bytearray()
        self._skipping = False  # inside the tail of an overlong line

    async def next(self, idle: float) -> tuple[bytes, bool] | None:
        """(line, overlong), or None at end of stream; TimeoutError after `idle` seconds of silence."""
        while True:
            if self._skipping:
                end = self._buf.find(b"\n")
                if end < 0:
                    self._buf.clear()
                else:
                    del self._buf[: end + 1]
                    self._skipping = False
            if not self._skipping:
                end = self._buf.find(b"\n")
                if end >= 0:
                    line = bytes(self._buf[:end])
                    del self._buf[: end + 1]
                    return line[: self._limit], len(line) > self._limit
                if len(self._buf) > self._limit:
                    head = bytes(self._buf[: self._limit])
                    self._buf.clear()
                    self._skipping = True
                    return head, True
            chunk = await asyncio.wait_for(self._reader.read(_CHUNK), idle)
            if not chunk:
                return None
            self._buf += chunk


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 2.0)


class _Connection:
    """The IO around one FtpSession: control lines in, replies out, data connections on request."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        info: ConnectionInfo,
        report: Report,
        config: FtpConfig,
        uploads: UploadStore,
    ) -> None:
        self.writer = writer
        self.info = info
        self.report = report
        self.config = config
        self.uploads = uploads
        self.session = FtpSession(info, config)
        self.lines = _Lines(reader, config.max_line)
        self.listener: PassiveListener | None = None

    async def send(self, reply: Reply) -> None:
        for kind, detail, data in reply.events:
            self.report(kind, detail, data)
        if reply.delay > 0:
            await asyncio.sleep(reply.delay)
        if reply.lines:
            self.writer.write(reply.wire())
            await asyncio.wait_for(self.writer.drain(), self.config.data_timeout)

    def drop_listener(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    async def run(self) -> None:
        session = self.session
        await self.send(session.greeting())
        while True:
            try:
                got = await self.lines.next(self.config.idle_timeout)
            except TimeoutError:
                await self.send(session.timed_out())
                return
            if got is None:
                return
            line, overlong = got
            reply = session.command(line, overlong=overlong)
            await self.send(reply)
            if reply.close:
                return
            action = reply.action
            if isinstance(action, OpenPassive):
                await self.send(await self.open_passive())
            elif isinstance(action, SendData | ReceiveData):
                follow = await self.transfer(action)
                await self.send(follow)
                if follow.close:
                    return
            if not session.passive:
                self.drop_listener()

    async def open_passive(self) -> Reply:
        self.drop_listener()
        assert self.info.data_ports is not None
        try:
            self.listener = await asyncio.wait_for(self.info.data_ports.listen(), self.config.data_timeout)
        except (OSError, TimeoutError) as exc:
            log.warning("ftp: no passive port for %s (%s)", self.info.dst, exc)
            return self.session.passive_failed()
        return self.session.passive_ready(self.listener.port)

    async def data_connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        timeout = self.config.data_timeout
        try:
            if self.session.passive and self.listener is not None:
                reader, writer = await self.listener.accept(timeout)
                peer = writer.get_extra_info("peername")
                if isinstance(peer, tuple) and not _same_address(str(peer[0]), self.info.src):
                    # Someone else raced the client to the port (vsftpd: "Security: Bad IP connecting").
                    self.report(
                        Kind.BAD_REQUEST, "data connection from another address", {"peer": str(peer[0])}
                    )
                    writer.close()
                    return None
                return reader, writer
            if self.session.active is not None and self.info.data_ports is not None:
                host, port = self.session.active
                return await self.info.data_ports.connect(host, port, timeout)
        except (OSError, TimeoutError):
            return None
        return None

    async def transfer(self, action: SendData | ReceiveData) -> Reply:
        streams = await self.data_connection()
        self.drop_listener()
        if streams is None:
            return self.session.data_failed()
        reader, writer = streams
        try:
            await self.send(Reply([action.opening]))
            if isinstance(action, SendData):
                return await self._send_data(writer, action)
            return await self._receive(reader, action)
        finally:
            await _close(writer)

    async def _send_data(self, writer: asyncio.StreamWriter, action: SendData) -> Reply:
        try:
            view = memoryview(action.data)
            for start in range(0, len(view), _CHUNK):
                writer.write(view[start : start + _CHUNK])
                await asyncio.wait_for(writer.drain(), self.config.data_timeout)
        except TimeoutError:
            return self.session.transfer_done(False, timed_out=True)
        except (OSError, ConnectionError):
            return self.session.transfer_done(False)
        return self.session.transfer_done(True, listing=action.listing)

    async def _receive(self, reader: asyncio.StreamReader, action: ReceiveData) -> Reply:
        ok = timed_out = False
        incoming = self.uploads.begin(self.info.src)
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(reader.read(_CHUNK), self.config.data_timeout)
                except TimeoutError:
                    timed_out = True
                    break
                except (OSError, ConnectionError):
                    break
                if not chunk:
                    ok = True
                    break
                if not incoming.write(chunk):
                    break  # keep the head; hang up on the rest as a full disk would
        except BaseException:
            incoming.abandon()
            raise
        kept = incoming.finish()
        upload = Upload(
            action.name,
            action.path,
            kept.size,
            kept.sha256,
            kept.truncated,
            kept.stored,
            kept.duplicate,
            kept.dropped,
        )
        return self.session.received(upload, ok=ok, timed_out=timed_out)


def make_handler(config: FtpConfig | None = None) -> Handler:
    """A service handler `(reader, writer, info, report)` serving FTP with `config`."""
    config = config or FtpConfig()
    uploads = config.uploads or UploadStore(config.upload_dir, max_file=config.max_upload)

    async def serve_ftp(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info: ConnectionInfo, report: Report
    ) -> None:
        connection = _Connection(reader, writer, info, guarded(report, "ftp"), config, uploads)
        try:
            await asyncio.wait_for(connection.run(), config.lifetime)
        except TimeoutError:
            connection.report(Kind.TIMEOUT, None, {"lifetime": config.lifetime})
        except (OSError, ConnectionError):
            pass  # the client went away
        except Exception:
            log.exception("ftp: serving %s -> %s failed", info.src, info.dst)  # a bug: say so
        finally:
            connection.drop_listener()
            writer.close()

    return serve_ftp


serve_ftp = make_handler()
SERVICES = (Service(("ftp",), "tcp", serve_ftp),)


__all__ = [
    "DEFAULT_UPLOAD_DIR",
    "SERVERS",
    "SERVICES",
    "FileTree",
    "FtpConfig",
    "FtpSession",
    "OpenPassive",
    "ReceiveData",
    "Reply",
    "SendData",
    "Upload",
    "greeting_for",
    "make_handler",
    "serve_ftp",
]
