"""Every benchmark script imports (a script that names a moved module fails here, not in a long run)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py")) + sorted((ROOT / "scripts").glob("*.py"))


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_script_imports_and_has_a_guarded_main(path: Path):
    text = path.read_text()
    assert 'if __name__ == "__main__":' in text, "a script runs only under its main guard"
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    sys.modules[spec.name] = mod       # dataclasses look their module up there
    try:
        spec.loader.exec_module(mod)   # the imports and definitions, nothing run
    finally:
        sys.path.remove(str(path.parent))
        del sys.modules[spec.name]
    assert callable(getattr(mod, "main", None))
