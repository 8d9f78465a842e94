"""yamllint on every YAML file in deploy/ with deploy/.yamllint.yml."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_tools import DEPLOY, deploy_files, find_tool, output, run

pytestmark = pytest.mark.tools


@pytest.mark.parametrize("path", deploy_files("*.yml", "*.yaml"), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yamllint_strict(path: Path):
    config = DEPLOY / ".yamllint.yml"
    result = run([find_tool("yamllint"), "-s", "-c", str(config), str(path)])
    assert result.returncode == 0, output(result)
