"""Client venvs for the compatibility tests, built once per machine and shared.

python-pachyderm 7.6.0 and jupyterlab-pachyderm 2.12.2 (which pins pachyderm-sdk 2.10.7)
cannot share a venv with the pachyderm-sdk 2.12.2 the rest of the suite uses, so each gets
its own venv under $PACHYDERM_PY_TEST_VENVS (default ~/.cache/pachyderm-py/test-venvs).
A venv counts as built only once its `.ok` marker exists (written after pip succeeded);
an exclusive lock makes parallel test workers build it once and the others wait.
$PP_PYTHON / $JLP_PYTHON name an existing interpreter instead.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import venv
from pathlib import Path


def client_python(name: str, requirement: str, override_env: str) -> Path:
    if os.environ.get(override_env):
        return Path(os.environ[override_env])
    root = Path(os.environ.get("PACHYDERM_PY_TEST_VENVS",
                               Path.home() / ".cache" / "pachyderm-py" / "test-venvs"))
    root.mkdir(parents=True, exist_ok=True)
    d = root / name
    py = d / "bin" / "python"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (d / ".ok").exists():
            shutil.rmtree(d, ignore_errors=True)
            venv.create(d, with_pip=True)
            r = subprocess.run([str(py), "-m", "pip", "install", "-q", requirement],
                               capture_output=True, text=True, timeout=900)
            if r.returncode != 0:
                raise RuntimeError(f"pip install {requirement} failed:\n{r.stderr[-2000:]}")
            (d / ".ok").write_text(requirement + "\n")
    return py
