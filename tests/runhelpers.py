"""Helpers shared by the command-line and run-pipeline tests."""
from __future__ import annotations


def one_line_error(capsys, *fragments: str) -> str:
    """The CLI's error: exactly one line on stderr, in the program's format, naming every fragment."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m madng_lite: error:"), err
    for f in fragments:
        assert f in err[0], (f, err[0])
    return err[0]
