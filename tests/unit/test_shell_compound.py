"""The fake shell against the real bash of this machine: globbing, loops, `if`, `test`, `case`,
syntax errors and the `> ` prompt of an unfinished line, typed line by line into both.

Real bash runs interactively (`-i`, prompts `$ ` and `> `, LC_ALL=C.UTF-8 as Debian's default
and this machine's LANG) in a temporary directory holding the same names the fake session makes
in its /tmp; each transcript (prompt, the line, what it printed) must be the same.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from dynapot.services.identity import identity_for
from dynapot.services.shell import FakeShell

NOW = 1_700_000_000.0
BASH = shutil.which("bash")
FILES = ["a.sh", "b.sh", "B", "_x", "a-b", "c.txt", ".hidden", ".h2.sh", "z1", "z2", "Zz", "10", "9"]
DIRS = ["d", "e.d", ".git"]


def shell(user: str = "root") -> FakeShell:
    return FakeShell(identity_for("198.18.4.10", "Linux 5.4"), user, peer="198.18.0.3", clock=lambda: NOW)


def real(lines: list[str], tmp: Path) -> str:
    """What an interactive bash shows for these lines, typed in a directory holding FILES and DIRS."""
    for name in FILES:
        (tmp / name).write_text("")
    for name in DIRS:
        (tmp / name).mkdir()
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "TERM": "dumb", "HOME": str(tmp), "COLUMNS": "400"}
    assert BASH is not None
    done = subprocess.run(
        [BASH, "--norc", "--noprofile", "-i"],
        input="PS1='$ '; PS2='> '\n" + "".join(line + "\n" for line in lines),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # prompts, echoes and errors (stderr) in order with the output
        text=True,
        cwd=tmp,
        env=env,
        timeout=60,
        check=False,
    )
    text = done.stdout.split("PS2='> '\n", 1)[1]  # after the job-control notes and the first prompt
    return text.removesuffix("$ exit\n")


def fake(lines: list[str]) -> str:
    sh = shell()
    sh.name = "bash"  # as the bash run here names itself (a login shell over SSH says "-bash")
    sh.execute("mkdir -p /tmp/g && cd /tmp/g && touch " + " ".join(FILES) + " && mkdir " + " ".join(DIRS))
    out = []
    for line in lines:
        prompt = "> " if sh.prompt() == "> " else "$ "
        out.append(prompt + line + "\n" + sh.execute(line))
    return "".join(out)


def same(lines: list[str], tmp: Path) -> None:
    assert fake(lines) == real(lines, tmp)


pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")


@pytest.mark.parametrize(
    "lines",
    [
        ["echo *", "echo .*", "echo [ab]*", "echo ?", "echo z* Z*", "echo nothing*", "echo \"*\" '*' \\*"],
        ["echo [!a-z]*", "echo [[:upper:]]*", "echo *.sh .*.sh", "echo */", "echo d/* e.d/*", "echo [ab].sh"],
        ["for f in *.sh; do echo file $f; done", "for i in 1 2 3; do echo $i; done; echo after"],
        ["for i in a b", "do echo $i", "done"],
        [
            "x=0; while [ $x -lt 3 ]; do echo $x; x=$((x+1)); done",
            "until [ $x -eq 0 ]; do x=$((x-1)); done; echo $x",
        ],
        [
            "if [ -f a.sh ]; then echo yes; else echo no; fi",
            "if [ -d a.sh ]; then echo d; elif [ -e a.sh ]; then echo e; fi",
        ],
        ["[ -d d ] && echo dir", "[ -e nope ] || echo none", "[ -z '' ] && [ -n x ] && echo strings"],
        ["test 3 -ge 3 && echo ge", "[ 1 -lt 2 -a 2 -lt 3 ] && echo and", "[ ! -f d ] && echo not"],
        ["[ 1 -eq x ]; echo $?", "[ a b c ]; echo $?", "[ a = ]; echo $?", "[ a; echo $?", "[ = ]; echo $?"],
        ["case a.sh in *.txt) echo text;; *.sh|*.py) echo script;; *) echo other;; esac"],
        ["echo a; done", "if true; then fi", "for i in a; do echo $i; done; echo $?", "{ echo grouped; }"],
        ["echo 'open", "quote'", "for i in 1; do", "echo in", "done"],
        ["cat <<EOF", "one", "two", "EOF", "f() { echo in f $1; }; f arg; f"],
        [
            "printf 'echo a\\nfoo\\ncd /nope\\n' > s.sh; chmod +x s.sh; . ./s.sh; bash s.sh; ./s.sh",
            "bash -c \"echo; foo\"; foo; bash -c 'for i in 1; do nope; done'",
        ],
        ["V=val; cat <<EOF", 'v $V "q" $(echo sub) \\$x', "EOF", "cat <<'E'", "$V", "E"],
        ["printf 'a 1\\nb 2\\n' | while read x y; do echo \"got $y $x\"; done; echo end"],
        ['A=1 B=$(echo x   y); echo "$B"; echo B=$(echo p  q)'],
        ['cat <<< hello; read x y <<< "a b"; echo $y; base64 -d <<< aGk=; echo'],
        ["sh -c 'foo; cd /nope; echo x'; echo foo | sh", "printf 'foo\\n' > t.sh; sh t.sh; bash t.sh"],
        [
            "seq 1 3; seq 5 -2 1; echo aGk= | base64 -d; echo; echo -n hi | base64; kill -9 99999",
            'f() { local x=1; shift; echo $x $1 $#; }; f a b c; eval "echo hi; echo \\$((1+1))"',
            "echo ZWNobyBmcm9tIGI2NA== | base64 -d | sh; for i in $(seq 2); do echo n$i; done",
        ],
        [
            "f=archive.tar.gz; echo ${#f} ${f%.*} ${f%%.*} ${f#*.} ${f##*.} ${f/a/X} ${f//a/X} ${f:2}",
            "echo ${f:2:3} ${f: -2} ${u:-def} ${u-def2} ${f:+alt} ${u:=set}; echo $u",
            "echo ${nope:?missing}; echo after",
        ],
        [
            "echo {a,b} {a} {1..3} a{1..3}b {a..c}{1,2} \"{x,y}\" '{p,q}' \\{m,n} {01..10..3} {c..a}",
            "echo {a,{b,c}}d X={a,b} {1..5..-2} {z..x..2} *.{sh,txt} {,.}h*; X={a,b}; echo $X",
            "for i in {1..3}; do echo $i; done; cat {nope1,nope2}",
        ],
        ["ls *.txt; rm -rf *; echo *", "echo .*"],
        ["echo $((7 / -2)) $((7 % -2)) $((2 ** 10)) $((1 << 4)) $((3 > 2 && 1))"],
        ["for i in 1 2 3 4; do [ $i = 2 ] && continue; [ $i = 4 ] && break; echo $i; done"],
        [
            "echo $NOPE x",
            'A="1  2"; for i in $A; do echo $i; done; for i in "$A"; do echo "$i"; done',
            "echo [0-9]*",
        ],
        ["echo a*b", "ls nothing*", "! true; echo $?", "true && { echo a; false; } || echo b"],
        [
            "echo $((1/0)); echo next",
            "while false; do echo; done; echo $?",
            "if false; then echo; fi; echo $?",
        ],
        [
            "x=5; case $x in [0-9]) echo digit;; esac",
            "[[ abc == a* ]] && echo match",
            "[[ -f a.sh ]]; echo $?",
            "[[ -f a.sh && ( -d d || -d nope ) ]] && echo both",
        ],
        ["bash -c 'echo a; done'", "for i in; do echo x; done; echo $?", "echo `echo a b` $(echo *.txt)"],
    ],
)
def test_lines_as_bash_prints_them(lines: list[str], tmp_path: Path) -> None:
    same(lines, tmp_path)


def test_loops_and_a_fork_bomb_end() -> None:
    sh = shell()
    assert sh.execute("while true; do echo x; done | wc -l") == "1000\n"  # a loop stops at 1000 rounds
    assert sh.counters["loops stopped"] == 1
    assert sh.execute("while :; do :; done; echo after") == "after\n"
    assert sh.execute(":(){ :|:& };:") == ""  # a few thousand calls at most, then the line stops
    assert sh.counters["lines stopped"] == 1
    assert sh.execute("echo still here") == "still here\n"
    out = sh.execute("for i in $(seq 1 5); do for j in 1 2 3 4 5 6 7 8 9 10; do echo; done; done")
    assert len(out) <= 64 * 1024
    sh.execute("printf 'sh ./s\\n' > s; chmod +x s")
    assert sh.execute("./s; echo back") == "back\n"  # a script that runs itself: bounded depth
    assert sh.counters["too deep"] >= 1


@pytest.mark.parametrize(
    "line",
    [
        "f() " * 3000 + "{ :; }",
        "(" * 5000,
        "{ " * 5000,
        "if " * 5000,
        "! " * 5000 + "true",
        "a|" * 5000 + "a",
        "echo $((" + "(" * 3000 + "1" + ")" * 3000 + "))",
        "x=$(( " + "1+" * 5000 + "1 ))",
        "f() { $(f); }; f",
        "f() { echo $(f) | f; }; f",
        "for i in /*/*/*/*/*/*; do echo $i; done",
        "case x in " + "a) ;; " * 3000 + "esac",
        "cat <<A <<B",
        "echo " + "{a,b}" * 40,
        "echo {1..999999999} | wc -l",
        "echo " + "{" * 2000 + "a,b" + "}" * 2000,
        "while :; do sleep 1; done",
        "for i in " + "* " * 2000 + "; do echo $i; done",
    ],
)
def test_hostile_compound_lines_are_bounded(line: str) -> None:
    sh = shell()
    out = sh.execute(line)
    assert isinstance(out, str) and len(out) <= 64 * 1024
    assert sum(seconds for _, seconds in sh.pauses) <= 30
    sh.interrupt()
    assert sh.execute("echo still here") == "still here\n"
