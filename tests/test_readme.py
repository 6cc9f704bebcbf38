"""The README documents every option of every command (``--help`` and the README agree)."""

import importlib
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
COMMANDS = ["run", "export", "train", "report", "encode", "ablate", "confirm", "dashboard"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_is_in_the_readme(command):
    parser = importlib.import_module(f"study.{command}").build_parser()
    options = [
        o
        for action in parser._actions
        if action.help != "==SUPPRESS=="  # hidden options (--worker-index, --threads)
        for o in action.option_strings
        if o.startswith("--") and o != "--help"
    ]
    assert options, command
    missing = [o for o in options if f"`{o}" not in README and f"{o} " not in README]
    assert missing == [], f"python -m study.{command}: {missing} not in README.md"
