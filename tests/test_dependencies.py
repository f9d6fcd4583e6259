"""pyproject.toml declares what the code imports, and nothing the code no longer imports.

Every top-level import of a third-party package (found with ``ast``, lazy imports inside functions
included) is mapped to its distribution with ``importlib.metadata.packages_distributions()`` and
looked up in pyproject's ``dependencies`` (product code: hub/, plugins/) or in the ``test`` extra as
well (tests/, conftest.py, bench/). A package that arrives only as another package's dependency
(lxml through zeep, multidict through aiohttp) can disappear with that package's next release, so it
is declared here as soon as we import it ourselves.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterable
from functools import cache
from importlib.metadata import packages_distributions as _packages_distributions
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("hub", "plugins")
TEST_CODE = ("tests", "conftest.py", "bench")

# imported by test code, installed by the system package manager (scripts/test.sh), not by pip
SYSTEM_PACKAGES = {"gi": "python3-gi, for the GStreamer RTSP test server (tests/rtsp_server.py)"}

# declared for the product but imported by none of its modules, each with the reason
DECLARED_NOT_IMPORTED: dict[str, str] = {}


@cache
def packages_distributions() -> dict[str, list[str]]:
    return dict(_packages_distributions())  # scans every installed distribution: once per run


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(requirements: Iterable[str]) -> set[str]:
    out = set()
    for req in requirements:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
        assert match, f"unreadable requirement in pyproject.toml: {req!r}"
        out.add(_norm(match.group(1)))
    return out


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _python_files(roots: Iterable[str]) -> list[Path]:
    files: list[Path] = []
    for name in roots:
        path = ROOT / name
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return files


def _first_party(name: str, file: Path) -> bool:
    """A module of this repository: a folder or file of that name beside the importing file or in
    one of its parent folders up to the repository root (drop-in plugins import their siblings)."""
    folder = file.parent
    while True:
        if (folder / name).is_dir() or (folder / f"{name}.py").is_file():
            return True
        if folder == ROOT or folder == folder.parent:
            return False
        folder = folder.parent


@cache
def third_party_imports(roots: tuple[str, ...]) -> dict[str, set[str]]:
    """Top-level third-party module name -> the files (relative) importing it."""
    found: dict[str, set[str]] = {}
    for file in _python_files(roots):
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for full in names:
                top = full.partition(".")[0]
                if top in sys.stdlib_module_names or top == "__future__" or _first_party(top, file):
                    continue
                found.setdefault(top, set()).add(str(file.relative_to(ROOT)))
    return found


def _undeclared(imports: dict[str, set[str]], declared: set[str]) -> list[str]:
    dists = packages_distributions()
    problems = []
    for top, files in sorted(imports.items()):
        if top in SYSTEM_PACKAGES:
            continue
        candidates = {_norm(d) for d in dists.get(top, [])}
        if not candidates:
            problems.append(f"{top} (imported by {', '.join(sorted(files))}) is not installed here: "
                            "declare its distribution in pyproject.toml and reinstall")
        elif not candidates & declared:
            problems.append(f"{top} (imported by {', '.join(sorted(files))}) comes from "
                            f"{' or '.join(sorted(candidates))}, not declared in pyproject.toml")
    return problems


def test_product_imports_are_declared_dependencies() -> None:
    declared = _requirement_names(_pyproject()["dependencies"])
    imports = third_party_imports(PRODUCT)
    assert "pydantic" in imports and "aiohttp" in imports  # the scan sees the product's imports
    problems = _undeclared(imports, declared)
    assert not problems, "\n".join(problems)


def test_every_declared_dependency_is_imported_by_the_product() -> None:
    declared = _requirement_names(_pyproject()["dependencies"])
    imported = set(third_party_imports(PRODUCT))
    by_dist: dict[str, set[str]] = {}
    for top, dists in packages_distributions().items():
        for dist in dists:
            by_dist.setdefault(_norm(dist), set()).add(top)
    unused = sorted(d for d in declared - set(DECLARED_NOT_IMPORTED) if not by_dist.get(d, set()) & imported)
    assert unused == [], f"declared in pyproject.toml but imported by no module of hub/ or plugins/: {unused}"


def test_test_code_imports_are_declared_in_the_test_extra() -> None:
    project = _pyproject()
    declared = _requirement_names(project["dependencies"]) | _requirement_names(
        project["optional-dependencies"]["test"])
    imports = third_party_imports(TEST_CODE)
    assert "pytest" in imports
    problems = _undeclared(imports, declared)
    assert not problems, "\n".join(problems)


def test_the_scan_catches_an_undeclared_import(tmp_path: Path) -> None:
    """The checker itself: a product module importing a package pyproject does not name is reported,
    a declared one and a sibling module are not."""
    declared = _requirement_names(["PyYAML>=6", "pydantic"])
    imports = {"yaml": {"hub/x.py"}, "pydantic": {"hub/x.py"}, "pluggy": {"hub/y.py"}}
    problems = _undeclared(imports, declared)
    assert len(problems) == 1 and problems[0].startswith("pluggy (imported by hub/y.py) comes from pluggy")
    assert _first_party("config", ROOT / "hub" / "cli.py")
    assert not _first_party("yaml", ROOT / "hub" / "cli.py")
