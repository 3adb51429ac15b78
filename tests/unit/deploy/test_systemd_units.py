"""The systemd units in ``deploy/systemd``: systemd accepts them (``systemd-analyze
verify``, when systemd is installed), and every option their ``ExecStart`` passes is
one ``tenet agent`` / ``tenet api`` has (read from the command's ``--help``)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[3] / "deploy" / "systemd"
INSTALLED = "/usr/local/bin/tenet"


def exec_start(unit: Path) -> list[str]:
    """The unit's ExecStart command line, continuation lines joined."""
    text = unit.read_text().replace("\\\n", " ")
    lines = [line for line in text.splitlines() if line.startswith("ExecStart=")]
    assert len(lines) == 1, f"{unit.name}: one ExecStart"
    return shlex.split(lines[0].removeprefix("ExecStart="))


def help_options(command: str) -> set[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    out = subprocess.run(
        [sys.executable, "-m", "tenet", command, "--help"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    ).stdout
    return set(re.findall(r"--[a-z][a-z-]*", out))


@pytest.mark.parametrize(("unit", "command"), [("tenet-agent", "agent"), ("tenet-api", "api")])
def test_exec_start_names_real_options(unit: str, command: str) -> None:
    argv = exec_start(UNITS / f"{unit}.service")
    assert argv[:2] == [INSTALLED, command]
    given = {arg for arg in argv if arg.startswith("--")}
    assert given, "options are passed"
    assert given <= help_options(command), given - help_options(command)


def test_the_agent_runs_as_root_restarts_always_and_keeps_state_in_var_lib() -> None:
    text = (UNITS / "tenet-agent.service").read_text()
    assert "User=root" in text
    assert "Restart=always" in text
    assert "StateDirectory=tenet" in text
    assert "EnvironmentFile=/etc/default/tenet-agent" in text
    assert "/var/lib/tenet/" in " ".join(exec_start(UNITS / "tenet-agent.service"))


def test_the_default_files_set_what_the_units_require() -> None:
    for unit in ("tenet-agent", "tenet-api"):
        service = (UNITS / f"{unit}.service").read_text()
        defaults = (UNITS / f"{unit}.default").read_text()
        used = set(re.findall(r"\$\{?(TENET_[A-Z_]+)", service))
        set_here = set(re.findall(r"^(?:Environment=)?(TENET_[A-Z_]+)=", service, re.M))
        in_file = set(re.findall(r"^#?(TENET_[A-Z_]+)=", defaults, re.M))
        assert used <= set_here | in_file, used - set_here - in_file


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    """Verified with the paths of this checkout (systemd checks that the binary and the
    environment file exist); a warning fails the test as an error does."""
    tenet = shutil.which("tenet") or str(Path(sys.executable).parent / "tenet")
    if not Path(tenet).exists():
        pytest.skip("no tenet executable to point the units at")
    units = []
    for unit in ("tenet-agent", "tenet-api"):
        text = (UNITS / f"{unit}.service").read_text()
        text = text.replace(INSTALLED, tenet)
        text = text.replace(f"/etc/default/{unit}", str(tmp_path / f"{unit}.default"))
        shutil.copy(UNITS / f"{unit}.default", tmp_path / f"{unit}.default")
        (tmp_path / f"{unit}.service").write_text(text)
        units.append(str(tmp_path / f"{unit}.service"))
    done = subprocess.run(
        ["systemd-analyze", "verify", *units],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert not done.stderr.strip(), done.stderr
