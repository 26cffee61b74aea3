"""The layer contract (pyproject's [tool.importlinter], docs/design.md) holds, and breaks on an upward import.

Each broken case copies the package into a temporary folder, adds one import that points the wrong way
and runs the same checker there: the contract must fail and name the offending import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from speakimg.cli import COMMANDS

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

# Library code never imports a command line; only other command lines may. (data.latents is the latent
# cache's library with a command line attached; the kit's command line is its __main__.)
CLI_MODULES = [f"{m}.__main__" if m == "speakimg.testing" else m for m in COMMANDS if m != "speakimg.data.latents"]

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter (the dev extra) is not installed")


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def _cli_importers(root: Path) -> dict[str, list[str]]:
    """Library modules (not command lines) that import a command-line module, by command line."""
    code = (
        "import json, sys, grimp\n"
        "graph = grimp.build_graph('speakimg', 'callbacks')\n"
        "clis = json.loads(sys.argv[1])\n"
        "out = {c: sorted(m for m in graph.find_modules_that_directly_import(c) if m not in clis) for c in clis}\n"
        "print(json.dumps({c: m for c, m in out.items() if m}))\n"
    )
    import json

    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(CLI_MODULES)],
        cwd=root, env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


@pytest.fixture
def copy(tmp_path) -> Path:
    """The package, the callbacks and the contract, in a temporary folder that a test may break."""
    for name in ("speakimg", "callbacks"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _add_import(root: Path, module: str, statement: str) -> None:
    path = root / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = root / module.replace(".", "/") / "__init__.py"
    path.write_text(path.read_text() + f"\n{statement}  # added on purpose by the test\n")


def test_the_layer_contract_holds():
    done = _lint(REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout and "KEPT" in done.stdout


def test_no_library_module_imports_a_command_line():
    assert _cli_importers(REPO) == {}


@pytest.mark.parametrize(
    ("module", "statement", "contract", "culprit"),
    [
        ("speakimg.hub", "import speakimg.testing", "layers point downward", "speakimg.hub -> speakimg.testing"),
        ("speakimg.vocoder.generator", "from speakimg.data import manifest", "layers point downward",
         "speakimg.vocoder.generator -> speakimg.data"),
        ("speakimg.pipeline.imprint", "import lightning", "never import Lightning", "speakimg.pipeline.imprint"),
        ("speakimg.sampling.settings", "import torch", "sampler settings import only", "speakimg.sampling.settings"),
    ],
)  # fmt: skip
def test_an_upward_import_breaks_the_contract(copy, module, statement, contract, culprit):
    _add_import(copy, module, statement)
    done = _lint(copy)
    assert done.returncode != 0
    report = " ".join(done.stdout.partition("Broken contracts")[2].split())  # the broken ones, unwrapped
    assert contract in report and culprit in report, done.stdout[-3000:]


def test_a_library_import_of_a_command_line_is_found(copy):
    _add_import(copy, "speakimg.data.datamodule", "from speakimg.data import build")
    assert _cli_importers(copy) == {"speakimg.data.build": ["speakimg.data.datamodule"]}
