"""Runs the bad-input corpus (bad_input_corpus.py, issue 8): each case is built in its own temp folder, then
`ossify` runs on it and must

- exit with the case's code (2: bad input, 1: a verdict that fails) within TIMEOUT_S, using at most MAX_RSS;
- for bad input, print exactly one line on stderr besides `note:` lines, starting `error: `, containing every
  needle (the file and the field or tensor); for a failed verdict, nothing on stderr but notes, and a report on
  stdout with one FAIL line, naming the needles (where the NaN came from, the tensor that differs);
- print no control bytes on stderr;
- leave the folder exactly as it found it: no output, no `.partial`, no new file, every input byte-identical
  (SHA-256 of each file, the target of each link, the kind of each special file, before and after).

Needs OSSIFY_BIN (scripts/test-all sets it), numpy and gguf.
"""
import hashlib
import os
import resource
import shutil
import stat
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("gguf")
from bad_input_corpus import CASES, ROOT  # noqa: E402

OSSIFY = os.environ.get("OSSIFY_BIN", str(ROOT / "target" / "release" / "ossify"))
TIMEOUT_S = 30
# A file under 1 MB must never make ossify allocate more than a few hundred MB (issue 8).
MAX_RSS = 400 << 20
# The address-space ceiling only protects the machine if a case runs away; MAX_RSS is what is asserted.
AS_LIMIT = 16 << 30


def snapshot(d: Path) -> dict:
    out = {}
    for root, dirs, files in os.walk(d):
        for n in dirs + files:
            p = os.path.join(root, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, d)
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    out[rel] = ("file", hashlib.sha256(f.read()).hexdigest())
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            else:
                out[rel] = ("special", stat.S_IFMT(st.st_mode))
    return out


PRLIMIT = shutil.which("prlimit")


def _limits():
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run(args: list, cwd: Path):
    """(exit code or -signal, stdout, stderr, peak RSS in bytes, timed out)."""
    cmd = [OSSIFY, *map(str, args)]
    # util-linux's prlimit sets the limits and execs ossify (the cases run from several threads, where a
    # preexec_fn is not safe); without it, the limits are set in the child before exec.
    if PRLIMIT:
        cmd = [PRLIMIT, f"--as={AS_LIMIT}", "--core=0", "--", *cmd]
    p = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        preexec_fn=None if PRLIMIT else _limits,
    )
    bufs = {}
    readers = [
        threading.Thread(target=lambda k=k, s=s: bufs.__setitem__(k, s.read()))
        for k, s in (("out", p.stdout), ("err", p.stderr))
    ]
    for t in readers:
        t.start()
    timed_out = []
    timer = threading.Timer(TIMEOUT_S, lambda: (timed_out.append(1), p.kill()))
    timer.start()
    # wait4, not Popen.wait: the child's own peak RSS
    _, status, ru = os.wait4(p.pid, 0)
    timer.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)
    for t in readers:
        t.join()
    return p.returncode, bufs["out"], bufs["err"], ru.ru_maxrss * 1024, bool(timed_out)


def control_bytes(s: str) -> list:
    return [c for c in s if c != "\n" and (ord(c) < 32 or 0x7F <= ord(c) < 0xA0)]


def _run_case(base: Path, c):
    d = base / c.id
    d.mkdir()
    spec = c.build(d)
    before = snapshot(d)
    result = run(spec.args, d)
    return spec, before, snapshot(d), result


@pytest.fixture(scope="session")
def corpus(request, tmp_path_factory):
    """Every selected case built and run, a few at a time (each is one short process): id -> outcome."""
    if not os.path.exists(OSSIFY):
        pytest.skip(f"no ossify binary at {OSSIFY} (set OSSIFY_BIN)")
    chosen = {i.callspec.id for i in request.session.items if i.originalname == "test_bad_input"}
    todo = [c for c in CASES if c.id in chosen]
    base = tmp_path_factory.mktemp("corpus")

    def one(c):
        try:
            return _run_case(base, c)
        except Exception as e:  # reported by the case's own test
            return e

    with ThreadPoolExecutor((os.cpu_count() or 2) + 1) as ex:
        return dict(zip((c.id for c in todo), ex.map(one, todo)))


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input(corpus, c):
    outcome = corpus[c.id]
    if isinstance(outcome, Exception):
        raise outcome
    spec, before, after, (code, out, err_b, rss, timed_out) = outcome
    err = err_b.decode("utf-8", "replace")
    what = f"{c.id}: ossify {' '.join(map(str, spec.args))}\nstderr: {err!r}"
    assert not timed_out, f"ran over {TIMEOUT_S} s: {what}"
    assert code == spec.code, f"exit {code}, expected {spec.code}: {what}"
    assert rss <= MAX_RSS, f"peak RSS {rss >> 20} MiB over {MAX_RSS >> 20} MiB: {what}"
    assert not control_bytes(err), f"control bytes on stderr: {what}"
    lines = [l for l in err.splitlines() if not l.startswith("note:")]
    if spec.code == 2:
        assert len(lines) == 1 and lines[0].startswith("error: "), f"not one error line: {what}"
        line = lines[0]
    else:
        # A failed verdict is the command's report (stdout) ending in one FAIL line; nothing is an error.
        report = out.decode("utf-8", "replace")
        fails = [l for l in report.splitlines() if l.startswith("FAIL") or ": FAIL: " in l]
        assert not lines and len(fails) == 1, f"not one FAIL line, no error: {what}\nstdout: {report}"
        line = report
    for n in spec.needles:
        alts = n if isinstance(n, tuple) else (n,)
        assert any(a in line for a in alts), f"error line lacks {' or '.join(map(repr, alts))}: {line!r}\n{what}"
    assert after == before, f"the folder changed: {what}"
    for o in spec.outputs:
        assert not os.path.lexists(o), f"{o} left behind: {what}"
