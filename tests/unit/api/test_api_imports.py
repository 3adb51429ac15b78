"""The API does not load the datapath: importing the app in a fresh interpreter leaves
the kernel datapath (and libbpf) out, so ``tenet api`` runs where eBPF does not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src"


def test_importing_the_app_loads_no_datapath() -> None:
    code = (
        "import tenet.api.app, sys; "
        "assert 'tenet.datapath.kernel' not in sys.modules; "
        "assert not [m for m in sys.modules if 'libbpf' in m], 'libbpf'"
    )
    path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
