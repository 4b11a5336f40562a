"""What a newcomer reads: every setting is documented in the README, and the docs name modules that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cymetica_mcp.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_in_the_readme(name: str) -> None:
    assert f"{ENV_PREFIX}{name.upper()}" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_architecture_names_only_files_that_exist() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:store|engine|ingest|auth|mcp_server|web|cli)/_\w+\.py)`", text))
    assert named, "docs/architecture.md names no module"
    missing = sorted(path for path in named if not (ROOT / "cymetica_mcp" / path).is_file())
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"
