import os
import subprocess
import sys

import pytest
import torch

import madng_lite as mn


def test_quick_mode_is_on_in_ci():
    """CI must run the book and the tests in quick mode (MADNG_QUICK=1)."""
    if os.environ.get("CI", "").lower() != "true":
        pytest.skip("not under CI")
    assert mn.quick_mode(), "CI=true but MADNG_QUICK is not set: CI would run full-size notebooks"


def test_quick_mode_switch(monkeypatch):
    monkeypatch.setenv("MADNG_QUICK", "1")
    assert mn.quick_mode() and mn.size(1000, 10) == 10
    monkeypatch.setenv("MADNG_QUICK", "0")
    assert not mn.quick_mode() and mn.size(1000, 10) == 1000


def test_set_seed_is_deterministic():
    g1 = mn.set_seed(3)
    a = torch.randn(4, generator=g1), torch.randn(2)
    g2 = mn.set_seed(3)
    b = torch.randn(4, generator=g2), torch.randn(2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="seed"):
        mn.set_seed(-1)


def test_version_entry_point():
    out = subprocess.run([sys.executable, "-m", "madng_lite", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"madng-lite {mn.__version__}"


def test_resolve_device_errors_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="CUDA is not available"):
        mn.config.resolve_device("cuda")
