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
    with pytest.raises(CheckpointError, match="damaged, truncated"):
        load_checkpoint(tmp_path / "trunc.pt")
    (tmp_path / "junk.pt").write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(CheckpointError, match="damaged, truncated"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"theta": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="foreign"):
        load_checkpoint(tmp_path / "other.pt")
    env = torch.load(good, weights_only=True)
    torch.save(dict(env, format_version=FORMAT_VERSION + 1), tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match=f"format version {FORMAT_VERSION + 1}"):
        load_checkpoint(tmp_path / "future.pt")
    torch.save(dict(env, kind="evolution"), tmp_path / "kind.pt")
    with pytest.raises(CheckpointError, match="'evolution' state, not a 'decoder' one"):
        load_checkpoint(tmp_path / "kind.pt")
    # an edited payload (the digest was not updated) is damaged ...
    torch.save(dict(env, payload=dict(env["payload"], decoder_kwargs=dict(env["payload"]["decoder_kwargs"],
                                                                             width=7))), tmp_path / "edit.pt")
    with pytest.raises(CheckpointError, match="damaged: its contents do not match"):
        load_checkpoint(tmp_path / "edit.pt")
    # ... and one whose digest was updated too loads, but its weights do not fit
    from madng_lite.io import save_state
    save_state(tmp_path / "mismatch.pt", "decoder",
               dict(env["payload"], decoder_kwargs=dict(env["payload"]["decoder_kwargs"], width=7)), {})
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(tmp_path / "mismatch.pt")
    assert issubclass(CheckpointError, ValueError)
    with pytest.raises(ValueError, match=r"settings\['out'\] holds a \w*Path"):
        save_checkpoint(tmp_path / "bad.pt", _decoder(), None, {"out": tmp_path})
    assert not (tmp_path / "bad.pt").exists() and not list(tmp_path.glob(".bad.pt*"))


def test_a_flipped_bit_in_the_weights_is_refused(tmp_path):
    """One bit flipped inside a tensor's stored bytes: torch.load reads it silently; the digest does not."""
    Z = torch.arange(1.0, 65.0, dtype=torch.float64).reshape(16, 4) / 7
    path = save_checkpoint(tmp_path / "ck.pt", _decoder(), Z, {"a": 1})
    data = bytearray(path.read_bytes())
    at = bytes(data).find(Z.numpy().tobytes())
    assert at > 0
    data[at + 100] ^= 0x10
    path.write_bytes(bytes(data))
    torch.load(path, weights_only=True)   # loads without complaint ...
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(path)             # ... but the digest catches it


def test_other_settings_are_refused_with_the_differing_keys(tmp_path):
    path = save_checkpoint(tmp_path / "ck.pt", _decoder(), None, {"lam": 0.01, "seed": 0, "sizes": (1, 2)})
    assert read_checkpoint(path, config={"lam": 0.01, "seed": 0, "sizes": [1, 2]})["config"]["lam"] == 0.01
    with pytest.raises(CheckpointError, match=r"other settings \(they differ in \['seed'\]\)"):
        read_checkpoint(path, config={"lam": 0.01, "seed": 1, "sizes": [1, 2]})


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_a_malicious_pickle_is_refused_without_running_it(tmp_path):
    target = tmp_path / "pwned"
    torch.save({"magic": "madng-lite-checkpoint", "payload": _Evil(target)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="not loadable as plain data"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not target.exists()


def test_json_state_round_trip_and_damage(tmp_path):
    from madng_lite.io import load_json_state, save_json_state

    path = save_json_state(tmp_path / "s.json", "samples", {"rows": [1.5, 2.5]}, {"seed": 3})
    assert load_json_state(path, "samples", {"seed": 3}) == {"rows": [1.5, 2.5]}
    with pytest.raises(CheckpointError, match="other settings"):
        load_json_state(path, "samples", {"seed": 4})
    path.write_text(path.read_text().replace("2.5", "2.25"))
    with pytest.raises(CheckpointError, match="damaged"):
        load_json_state(path, "samples", {"seed": 3})
    path.write_text(path.read_text()[:20])
    with pytest.raises(CheckpointError, match="damaged or truncated"):
        load_json_state(path, "samples")
    with pytest.raises(ValueError):
        save_json_state(tmp_path / "nan.json", "samples", {"x": float("nan")})


def test_results_file_keeps_infinities_and_resumes_only_for_the_same_settings(tmp_path):
    import json
    import math

    from madng_lite.io import resumable_results, write_results
    from madng_lite.pipeline.findings import _inf

    path = tmp_path / "sub" / "study.json"
    rows = [{"family": "a", "n_star": math.inf, "low": -math.inf, "x": math.nan, "t": (1.5, 2)}]
    write_results(path, {"seed": 0, "tols": [1e-6]}, "families", rows)
    text = path.read_text()
    assert text.endswith("\n") and "Infinity" not in text and "NaN" not in text
    back = json.loads(text)["families"][0]
    assert [_inf(back[k]) for k in ("n_star", "low")] == [math.inf, -math.inf] and math.isnan(_inf(back["x"]))
    assert back["t"] == [1.5, 2] and _inf(2.5) == 2.5
    assert not [p for p in path.parent.iterdir() if p.name != "study.json"]   # no temp file left
    assert resumable_results(path, "families", {"seed": 0, "tols": [1e-6]})[0]["family"] == "a"
    with pytest.raises(ValueError, match=r"other settings \(seed: 0 there, 1 here\)"):
        resumable_results(path, "families", {"seed": 1, "tols": [1e-6]})
    assert resumable_results(tmp_path / "none.json", "families", {"seed": 0}) == []
    assert resumable_results(None, "families", {"seed": 0}) == []
