"""The command-line error path of the lawm-prepare commands, in one place.

A mistake in the flags, the input or the output folder is the user's to fix, not a bug: it is one line on
stderr, "<prog>: error: <what>", and a non-zero exit status (2 for flags, as argparse has it, else 1),
never a traceback or a screenful of usage.
"""

from __future__ import annotations

import argparse
import sys


def error_line(prog: str, error) -> str:
    return f"{prog}: error: {error}"


def fail(prog: str, error) -> int:
    """Print the one-line error; returns the exit status 1 for `main` to return."""
    print(error_line(prog, error), file=sys.stderr)
    return 1


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: the usage stays behind --help. Subparsers inherit the class."""

    def error(self, message: str):
        self.exit(2, error_line(self.prog, f"{message} (see {self.prog} --help)") + "\n")
