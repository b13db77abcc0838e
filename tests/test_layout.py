"""The package layout of DESIGN §2: one-way dependencies, no SB3 in envs, folders that stay small,
files and functions short enough to read."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package -> the packages it may import (besides itself)
ALLOWED = {
    "models": set(),
    "distill": {"models"},
    "fields": {"models"},
    "envs": {"models", "distill", "fields"},
    "agents": {"models", "distill", "fields", "envs"},
}
OURS = set(ALLOWED)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_dependencies_point_one_way(package):
    bad = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        wrong = (_imports(path) & OURS) - ALLOWED[package] - {package}
        if wrong:
            bad[str(path.relative_to(ROOT))] = sorted(wrong)
    assert not bad, f"imports against agents → envs → {{distill, fields}} → models: {bad}"


def test_envs_do_not_import_stable_baselines3():
    code = ("import sys, envs, envs.ptq, envs.distill_source, envs.sensors, envs.ptq.rollout, "
            "envs.ptq.baselines; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('stable_baselines3', 'sb3_contrib', 'agents')]; print(bad); assert not bad")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_no_folder_holds_more_than_twelve_modules():
    crowded = {}
    for package in [*ALLOWED, "tests", "benchmarks"]:
        for folder in [ROOT / package, *(ROOT / package).rglob("*/")]:
            if "__pycache__" in folder.parts:
                continue
            mods = [p for p in folder.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
            if len(mods) > 12:
                crowded[str(folder.relative_to(ROOT))] = len(mods)
    assert not crowded, f"split these folders into subpackages: {crowded}"


MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 80
CODE = [*ALLOWED, "benchmarks"]  # package and benchmark code (tests are exempt)


def _code_files() -> list[Path]:
    return sorted(p for package in CODE for p in (ROOT / package).rglob("*.py"))


def test_no_code_file_is_longer_than_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in _code_files()
            if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
    assert not long, f"split these files by responsibility: {long}"


def test_no_function_is_longer_than_80_lines():
    long = {}
    for path in _code_files():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = n
    assert not long, f"split these functions into named stages: {long}"
