"""The dependency rule of DESIGN.md, enforced by reading imports.

`knowledge` and `classifiers` are plain libraries: they import neither `bot`, nor Slack,
nor SQLAlchemy, nor the settings, nor each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "knowledge": {
        "bot",
        "classifiers",
        "slack_bolt",
        "slack_sdk",
        "sqlalchemy",
        "pydantic_settings",
    },
    "classifiers": {
        "bot",
        "knowledge",
        "slack_bolt",
        "slack_sdk",
        "sqlalchemy",
        "pydantic_settings",
    },
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_library_packages_keep_the_dependency_rule(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no modules found in {package}"
    violations = {
        str(f.relative_to(ROOT)): sorted(imported_modules(f) & FORBIDDEN[package]) for f in files
    }
    violations = {f: v for f, v in violations.items() if v}
    assert not violations, f"forbidden imports: {violations}"


def test_only_config_reads_the_environment() -> None:
    offenders = []
    for path in (ROOT / "bot").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if path.name != "config.py" and ("os.environ[" in text or "os.getenv(" in text):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"read settings through bot.config instead: {offenders}"
