"""Checkpoints of madng_lite.io: round trip, atomic writes, clear errors (book: Chapter 3)."""
from __future__ import annotations

import pytest
import torch

from madng_lite import __version__, points
from madng_lite.decoder import Decoder
from madng_lite.io import FORMAT_VERSION, CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint


def _decoder(**kw) -> Decoder:
    args = dict(latent_dim=4, width=12, depth=2, n_freq=3, activation="tanh", seed=3)
    args.update(kw)
    return Decoder([(-1.0, 1.0)], **args)


@pytest.mark.parametrize("kw", [{}, {"activation": "rational"}, {"dtype": torch.float32, "activation": "sin"}])
def test_round_trip_gives_identical_outputs(tmp_path, kw):
    dec = _decoder(**kw)
    with torch.no_grad():  # weights that differ from a fresh initialisation
        for p in dec.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1), dtype=p.dtype))
    Z = torch.randn(5, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    cfg = {"family": "kdv", "lam": 0.01, "sizes": [1, 2, 3]}
    path = save_checkpoint(tmp_path / "sub" / "ck.pt", dec, Z, cfg, extra={"note": "x"})
    assert sorted(p.name for p in path.parent.iterdir()) == ["ck.pt"]  # no temporary file left behind
    dec2, Z2, cfg2 = load_checkpoint(path)
    assert torch.equal(Z2, Z) and cfg2 == cfg
    assert (dec2.box, dec2.latent_dim, dec2.width, dec2.depth, dec2.embedding.n_freq, dec2.activation_name,
            dec2.dtype) == (dec.box, dec.latent_dim, dec.width, dec.depth, dec.embedding.n_freq,
                            dec.activation_name, dec.dtype)
    x = points.grid(dec.box, 50, dtype=dec.dtype)
    for z in Z:
        assert torch.equal(dec2(x, z.to(dec.dtype)), dec(x, z.to(dec.dtype)))
    raw = read_checkpoint(path)
    assert raw["format_version"] == FORMAT_VERSION and raw["package_version"] == __version__
    assert raw["extra"] == {"note": "x"}


def test_overwrite_is_atomic_and_keeps_one_file(tmp_path):
    dec = _decoder()
    save_checkpoint(tmp_path / "a.pt", dec, None, {"i": 1})
    save_checkpoint(tmp_path / "a.pt", dec, None, {"i": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]
    assert load_checkpoint(tmp_path / "a.pt")[2] == {"i": 2}
    assert load_checkpoint(tmp_path / "a.pt")[1] is None


def test_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    good = save_checkpoint(tmp_path / "good.pt", _decoder(), torch.zeros(2, 4), {})
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "trunc.pt")
    (tmp_path / "junk.pt").write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"theta": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a madng-lite checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    raw = read_checkpoint(good)
    raw["format_version"] = FORMAT_VERSION + 1
    torch.save(raw, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="format version 2"):
        load_checkpoint(tmp_path / "future.pt")
    raw["format_version"] = FORMAT_VERSION
    raw["decoder_kwargs"] = dict(raw["decoder_kwargs"], width=7)
    torch.save(raw, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(tmp_path / "mismatch.pt")
    assert issubclass(CheckpointError, ValueError)
    with pytest.raises(ValueError, match=r"config\['out'\] holds a \w*Path"):
        save_checkpoint(tmp_path / "bad.pt", _decoder(), None, {"out": tmp_path})
    assert not (tmp_path / "bad.pt").exists()
