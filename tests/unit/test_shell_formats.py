"""The fake shell's output has the layout of the real tools: each compared with the tool itself, run here.

This machine runs Debian 12 (coreutils 9.1, procps-ng 4.0.2, bash 5.2, wget 1.21, curl 7.88):
the same command runs for real (on a temporary directory, on this machine's processes, against
a closed port on loopback) and in a fake Debian 12 host, and both outputs must match one
pattern line by line, or be equal where nothing in them is the machine's own.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from dynapot.services.identity import identity_for
from dynapot.services.shell import FakeShell

DEBIAN = "OpenSSH 9.2p1 Debian 2+deb12u3"


def real(*argv: str, cwd: Path | None = None, stdin: str | None = None) -> str:
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed")
    env = {**os.environ, "LC_ALL": "C.UTF-8"}  # as our Debian host's sessions
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=cwd, env=env, input=stdin)
    return done.stdout + done.stderr


def fake(user: str = "root") -> FakeShell:
    return FakeShell(identity_for("198.18.3.10", "Linux 5.4", hint=DEBIAN), user, peer="198.18.0.3")


# ls -l: mode, links, owner, group, size, "Mon DD HH:MM" or "Mon DD  YYYY", name
LS_LINE = re.compile(
    r"[dl-][rwx-]{2}[xsS-][rwx-]{2}[xsS-][rwx-]{2}[xtT-] +\d+ \S+ +\S+ +\d+ "
    r"[A-Z][a-z]{2} [ 123]\d (?:[012]\d:[0-5]\d| \d{4}) \S.*"
)
LS_HUMAN = re.compile(
    r"[dl-][rwxsStT-]{9} +\d+ \S+ +\S+ +[\d.]+[KMG]? [A-Z][a-z]{2} [ 123]\d (?:\d\d:\d\d| \d{4}) \S.*"
)


def columns(line: str) -> list[int]:
    """Where each field of a fixed-column line ends (right-aligned columns line up there)."""
    return [m.end() for m in re.finditer(r"\S+", line)]


def test_ls_la_has_the_layout_of_coreutils(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a").write_text("hi\n")
    (tmp_path / "old").write_text("")
    year_ago = time.time() - 400 * 86_400
    os.utime(tmp_path / "old", (year_ago, year_ago))
    theirs = real("ls", "-la", str(tmp_path)).splitlines()
    sh = fake()
    sh.execute("mkdir /tmp/t; cd /tmp/t; mkdir sub; echo hi > a; touch old")
    ours = sh.execute("ls -la").splitlines()
    assert re.fullmatch(r"total \d+", theirs[0]) and re.fullmatch(r"total \d+", ours[0])
    for line in theirs[1:] + ours[1:]:
        assert LS_LINE.fullmatch(line), line
    # right-aligned links and sizes: the fields end in the same columns on every line of a listing
    for listing in (theirs[1:], ours[1:]):
        ends = [columns(line)[:5] for line in listing]
        assert all(e[1] == ends[0][1] and e[4] == ends[0][4] for e in ends), listing
    assert [line.split()[-1] for line in ours[1:]] == [".", "..", "a", "old", "sub"]
    assert [line.split()[-1] for line in theirs[1:]] == [".", "..", "a", "old", "sub"]
    # an old file shows its year, as coreutils does: our own file dated a year back
    old = [line for line in sh.execute("ls -l /etc").splitlines() if " 20" in line[40:]]
    assert old == [] or all(LS_LINE.fullmatch(line) for line in old)
    for line in (
        real("ls", "-lh", "/usr/bin").splitlines()[1:4] + fake().execute("ls -lh /etc").splitlines()[1:]
    ):
        assert LS_HUMAN.fullmatch(line), line
    assert re.fullmatch(r"total [\d.]+[KMG]", fake().execute("ls -lh /etc").splitlines()[0])


def test_ps_has_the_layout_of_procps() -> None:
    sh = fake()
    theirs, ours = real("ps", "aux").splitlines(), sh.execute("ps aux").splitlines()
    assert theirs[0].split() == ours[0].split()
    row = re.compile(
        r"\S{1,8} +\d+ +\d+(?:\.\d)? +\d+(?:\.\d)? +\d+ +\d+ (?:\?|pts/\d+|tty\d+) +[RSDIZTWXPKs<NlL+]+ +"
        r"(?:\d\d:\d\d|[A-Z][a-z]{2}\d\d|\d{4}) +\d+:\d\d \S.*"
    )
    for line in theirs[1:] + ours[1:]:
        assert row.fullmatch(line), line
    # columns end where the header's do: %CPU ... RSS line up under their names (the real table's
    # first rows: a process with a wider VSZ pushes its row out, in procps as in ours)
    for table in (theirs[:6], ours):
        head = table[0]
        for name in ("%CPU", "%MEM", "VSZ", "RSS"):
            end = head.index(name) + len(name)
            assert all(line[end - 1] != " " and line[end] == " " for line in table[1:]), (name, table[1])
    theirs, ours = real("ps", "-ef").splitlines(), sh.execute("ps -ef").splitlines()
    assert theirs[0].split() == ours[0].split()
    row = re.compile(
        r"\S{1,8} +\d+ +\d+ +\d+ (?:\d\d:\d\d|[A-Z][a-z]{2}\d\d|\d{4}) "
        r"(?:\?|pts/\d+|tty\d+) +\d\d:\d\d:\d\d \S.*"
    )
    for line in theirs[1:] + ours[1:]:
        assert row.fullmatch(line), line
    theirs, ours = real("ps").splitlines(), sh.execute("ps").splitlines()
    assert theirs[0].split() == ours[0].split() == ["PID", "TTY", "TIME", "CMD"]
    assert ours[-2:][0].endswith(" bash") and ours[-1].endswith(" ps")


def test_id_uname_free_df_as_the_real_tools() -> None:
    sh = fake()
    pattern = re.compile(r"uid=\d+\([\w.-]+\) gid=\d+\([\w.-]+\) groups=\d+\([\w.-]+\)(?:,\d+\([\w.-]+\))*\n")
    assert pattern.fullmatch(real("id")) and pattern.fullmatch(sh.execute("id"))
    admin = fake(sh.machine.admin.name)
    assert pattern.fullmatch(admin.execute("id"))
    # Debian's uname -a: no processor and platform ("unknown" is left out)
    theirs, ours = real("uname", "-a").split(), sh.execute("uname -a").split()
    assert theirs[-2:] == ours[-2:] == ["x86_64", "GNU/Linux"] and ours[-3] != "x86_64"
    assert real("uname", "-p").strip() == sh.execute("uname -p").strip() == "unknown"
    theirs, ours = real("free", "-m").splitlines(), sh.execute("free -m").splitlines()
    assert theirs[0] == ours[0]
    for mine, other in zip(ours, theirs, strict=True):
        assert mine.split()[0] == other.split()[0]
        assert columns(mine) == columns(other) or len(mine.split()) == len(other.split())
    theirs, ours = real("df", "-h").splitlines(), sh.execute("df -h").splitlines()
    assert (
        theirs[0].split()
        == ours[0].split()
        == ["Filesystem", "Size", "Used", "Avail", "Use%", "Mounted", "on"]
    )
    row = re.compile(r"\S+ +[\d.]+[KMGT]? +[\d.]+[KMGT]? +[\d.]+[KMGT]? +\d+% /\S*")
    for line in theirs[1:] + ours[1:]:
        assert row.fullmatch(line), line
    assert columns(ours[0])[1:5] == columns(ours[1])[1:5]  # right-aligned under their headers


def test_history_is_numbered_as_bash_numbers_it(tmp_path: Path) -> None:
    # an interactive bash reading the lines as typed (its prompts go to stderr)
    lines = "echo a >/dev/null\ntrue\nhistory\n"
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-i"],
        input=lines,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "HISTFILE": "/dev/null"},
    )
    theirs = done.stdout
    sh = fake()
    sh.execute("echo a >/dev/null")
    sh.execute("true")
    assert sh.execute("history") == theirs


@pytest.mark.parametrize(
    "line",
    [
        "echo 'a  b' \"c  d\" e\\ f",
        "X=1; echo $X ${X}y \"$X\"'$X'",
        "false || echo no; true && echo yes; false && echo never",
        "echo $(echo inner) `echo back`",
        "echo a | cat; echo -n b; echo c",
        "echo -e 'a\\tb'",
        "false; echo $?; true; echo $?",
        "echo one 2>/dev/null; nosuchcommand 2>/dev/null; echo $?",
        "printf '%s-%s\\n' a b",
        "echo hi | grep h | wc -l",
    ],
)
def test_command_lines_expand_as_bash_expands_them(line: str) -> None:
    theirs = real("bash", "--norc", "--noprofile", "-c", line)
    assert fake().execute(line) == theirs


def test_wget_and_curl_fail_as_the_real_tools_do() -> None:
    """Against a closed port on loopback: the real tools' words, our pause instead of their wait."""
    theirs = real("wget", "--tries=1", "http://127.0.0.1:1/x.sh").splitlines()
    sh = fake()
    ours = sh.execute("wget http://127.0.0.1:1/x.sh").splitlines()
    stamp = re.compile(r"--\d{4}-\d\d-\d\d \d\d:\d\d:\d\d--  http://127\.0\.0\.1:1/x\.sh")
    assert stamp.fullmatch(theirs[0]) and stamp.fullmatch(ours[0])
    assert ours[1:] == theirs[1:] == ["Connecting to 127.0.0.1:1... failed: Connection refused."]
    assert sh.status == 4
    theirs = real("curl", "-s", "-S", "http://127.0.0.1:1/x").strip()
    ours = fake().execute("curl http://127.0.0.1:1/x").strip()
    pattern = re.compile(
        r"curl: \(7\) Failed to connect to 127\.0\.0\.1 port 1 after \d+ ms: Couldn't connect to server"
    )
    assert pattern.fullmatch(theirs) and pattern.fullmatch(ours)
    # a name: ours says the name server did not answer; the real one here may say it does not exist
    theirs = real("wget", "--tries=1", "http://nonexistent.invalid/x").splitlines()
    ours = fake().execute("wget http://nonexistent.invalid/x").splitlines()
    resolving = re.compile(
        r"Resolving nonexistent\.invalid \(nonexistent\.invalid\)\.\.\. failed: "
        r"(?:Temporary failure in name resolution|Name or service not known)\."
    )
    assert resolving.fullmatch(theirs[1]) and resolving.fullmatch(ours[1])
    assert ours[2] == theirs[2] == "wget: unable to resolve host address \u2018nonexistent.invalid\u2019"


def test_w_and_uptime_as_procps() -> None:
    sh = fake()
    theirs, ours = real("w").splitlines(), sh.execute("w").splitlines()
    assert theirs[1] == ours[1]  # the header, column for column
    line = re.compile(
        r" \d\d:\d\d:\d\d up (?:\d+ days?, )?(?:[ \d]\d:\d\d|\d+ min), +\d+ users?, +load average: "
        r"\d+\.\d\d, \d+\.\d\d, \d+\.\d\d"
    )
    assert line.fullmatch(theirs[0]) and line.fullmatch(ours[0])
    assert line.fullmatch(real("uptime").rstrip("\n")) and line.fullmatch(sh.execute("uptime").rstrip("\n"))


def test_ls_fills_columns_as_coreutils_on_a_terminal(tmp_path: Path) -> None:
    sh = fake()
    for directory in ("/", "/etc", "/usr/bin", "/var/log", "/proc"):
        names = sh.execute(f"ls -1 {directory}").split()
        here = tmp_path / ("top" + directory.replace("/", "-"))
        here.mkdir()
        for name in names:
            (here / name).touch()
        assert sh.execute(f"ls {directory}") == real("ls", "-C", "-w", "80", str(here)), directory


def test_a_merged_usr_link_lists_its_target_as_ls_does() -> None:
    """Debian 12 has /bin -> usr/bin: `ls /bin` lists the programs, `ls -ld /bin` shows the link."""
    if not os.path.islink("/bin"):
        pytest.skip("this machine's /bin is not a link")
    assert real("ls", "-ld", "/bin").startswith("lrwxrwxrwx") and "bash" in real("ls", "/bin").split()
    shell = fake()
    assert shell.execute("ls -ld /bin").startswith("lrwxrwxrwx") and "/bin -> usr/bin" in shell.execute(
        "ls -ld /bin"
    )
    listed = shell.execute("ls /bin").split()
    assert "bash" in listed and listed == shell.execute("ls /usr/bin").split()
