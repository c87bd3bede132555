"""The API appendix documents every module of the library (a new module cannot be forgotten)."""
from __future__ import annotations

import pkgutil
import re
from pathlib import Path

import madng_lite

ROOT = Path(__file__).resolve().parents[1]


def test_every_module_is_on_the_api_page():
    mods = {m.name for m in pkgutil.walk_packages(madng_lite.__path__, "madng_lite.")} - {"madng_lite.__main__"}
    listed = set(re.findall(r"automodule:: (\S+)", (ROOT / "book" / "api.md").read_text()))
    assert mods - listed == set(), f"modules missing from book/api.md: {sorted(mods - listed)}"
    assert listed - mods - {"madng_lite"} == set(), f"book/api.md names modules that do not exist: {sorted(listed - mods)}"
