"""The documentation's runnable shell blocks run, and print what they say they print.

A block fenced ```sh runnable is run by bash (`set -euo pipefail`) with this build's fak first
on PATH and a scratch HOME; the blocks of one file run in order in one scratch directory, each
starting where the one before left off (a `cd` carries over), as a reader typing them would.
A line `# => TEXT` under a command says the block prints TEXT (on stdout or stderr). Whatever a
block leaves running is stopped after it.
"""

import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

FENCE = re.compile(r"^```sh runnable\s*$")


def documents():
    found = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found += sorted(ROOT.glob("tools/**/README.md")) + sorted(ROOT.glob("experiments/**/README.md"))
    return [p for p in found if p.exists()]


def runnable_blocks(path):
    blocks, current, start = [], None, 0
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if current is None:
            if FENCE.match(line):
                current, start = [], n + 1
        elif line.strip() == "```":
            blocks.append((start, "\n".join(current) + "\n"))
            current = None
        else:
            current.append(line)
    assert current is None, "%s: a runnable block opened at line %d is not closed" % (path, start - 1)
    return blocks


WITH_BLOCKS = [p for p in documents() if runnable_blocks(p)]


def test_the_tour_is_runnable():
    # The marker cannot quietly disappear from the documents that promise runnable blocks.
    counts = {p.relative_to(ROOT).as_posix(): len(runnable_blocks(p)) for p in WITH_BLOCKS}
    assert counts.get("docs/GETTING-STARTED.md", 0) >= 8, counts
    assert counts.get("README.md", 0) >= 1, counts


@pytest.mark.parametrize("doc", WITH_BLOCKS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_runnable_blocks(doc, fak_bin, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "fak").symlink_to(fak_bin)
    home = tmp_path / "home"
    home.mkdir()
    cwd = tmp_path / "work"
    cwd.mkdir()
    cwd_file = tmp_path / "cwd"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_", "FAK_"))}
    env.update({"HOME": str(home), "XDG_STATE_HOME": str(home / ".local" / "state"),
                "PATH": "%s:%s" % (bin_dir, os.environ["PATH"]), "FAK_REPO": str(ROOT)})
    for line, block in runnable_blocks(doc):
        where = "%s:%d" % (doc.relative_to(ROOT), line)
        if ":8080" in block:
            with socket.socket() as s:
                assert s.connect_ex(("127.0.0.1", 8080)) != 0, "%s needs port 8080, which is taken" % where
        script = "set -euo pipefail\ntrap 'pwd > %s' EXIT\n%s" % (cwd_file, block)
        proc = subprocess.Popen(["bash", "-c", script], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=90)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # what the block left running
            except ProcessLookupError:
                pass
        assert proc.returncode == 0, "%s exited %d:\n%s\n--- output ---\n%s" % (where, proc.returncode, block, out)
        for want in re.findall(r"^\s*# => (.+?)\s*$", block, re.M):
            assert want in out, "%s should print %r:\n%s" % (where, want, out)
        cwd = Path(cwd_file.read_text().strip())
