"""Fixtures of the deployment checks; the helpers live in deploy_tools.py."""

from __future__ import annotations

import pytest
import yaml
from deploy_tools import DEPLOY, find_tool, output, run


@pytest.fixture(scope="session")
def kustomize_builds() -> dict[str, list[dict]]:
    """`kubectl kustomize` of each overlay, parsed: {overlay name: [objects]}."""
    kubectl = find_tool("kubectl")
    builds = {}
    for overlay in sorted((DEPLOY / "k8s" / "overlays").iterdir()):
        result = run([kubectl, "kustomize", str(overlay)])
        assert result.returncode == 0, output(result)
        builds[overlay.name] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return builds


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    """The images the image tests built, with build time and size (docs/deploy.md records them)."""
    from image_tools import BUILT

    if BUILT:
        terminalreporter.section("images built")
        for report in BUILT.values():
            terminalreporter.write_line(report)
