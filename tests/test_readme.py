"""The README documents every option of every command (``--help`` and the README agree)."""

import importlib
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
COMMANDS = [
    "run", "export", "train", "report", "encode", "ablate", "confirm", "dashboard", "backup",
]  # fmt: skip


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


# What the README's recipes put in shell variables.
VARIABLES = {"STORAGE": "postgresql://study@db:5432/optuna", "TRACKING": "http://mlflow:5000"}


def readme_commands() -> list[tuple[str, list[str]]]:
    """(command, its arguments) of every ``python -m study.X`` line in the README's code
    blocks, continuation lines joined, shell comments and variables resolved."""
    import re
    import shlex

    out = []
    for block in re.findall(r"```[^\n]*\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            found = re.search(r"python -m study\.(\w+)(.*)", line)
            if found:
                rest = found.group(2).split("&&")[0]
                for name, value in VARIABLES.items():
                    rest = rest.replace(f"${name}", value)
                out.append((found.group(1), shlex.split(rest, comments=True)))
    return out


def test_the_readme_shows_commands_of_every_kind():
    shown = {command for command, _ in readme_commands()}
    assert set(COMMANDS) - {"report"} <= shown, sorted(set(COMMANDS) - shown)


@pytest.mark.parametrize("command, args", readme_commands(), ids=lambda v: str(v)[:60])
def test_every_command_in_the_readme_is_accepted(command, args):
    """Each command line the README shows parses with its command's parser: every option
    exists, takes the value shown and nothing required is missing."""
    parser = importlib.import_module(f"study.{command}").build_parser()
    try:
        parser.parse_args(args)
    except SystemExit as e:
        pytest.fail(f"python -m study.{command} {' '.join(args)}: refused ({e.code})")
