"""tools/grafana/up.sh as a user meets it without Docker: its help, a bad target, and a clear
word on what is missing. (Its queries are checked against /metrics by tests/it/grafana.rs.)"""

import os
import subprocess

from conftest import ROOT

UP = ROOT / "tools" / "grafana" / "up.sh"


def run(args, tmp_path, path):
    env = {"PATH": path, "HOME": str(tmp_path), "FAK_GRAFANA_STATE": str(tmp_path / "state")}
    return subprocess.run([str(UP), *args], env=env, capture_output=True, text=True, timeout=60)


def test_help_and_a_bad_target(tmp_path):
    out = run(["--help"], tmp_path, os.environ["PATH"])
    assert out.returncode == 0 and "--target HOST:PORT" in out.stdout and "--down" in out.stdout
    out = run(["--target", "not an address"], tmp_path, os.environ["PATH"])
    assert out.returncode == 1 and "the target must be HOST:PORT" in out.stderr


def test_without_docker_or_grafana_it_says_what_is_missing(tmp_path):
    # A Prometheus stand-in on PATH, no Grafana, no Docker.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "prometheus").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "prometheus").chmod(0o755)
    out = run(["--local", "--target", "http://127.0.0.1:8787/"], tmp_path, "%s:/usr/bin:/bin" % bin_dir)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "no `grafana` or `grafana-server`" in out.stderr, out.stderr
