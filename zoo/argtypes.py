"""Command-line building blocks shared by every ``zoo`` command: a parser whose errors are zoo
errors (one ``zoo: error:`` line, exit 2) and argument types that check values up front."""
from __future__ import annotations

import argparse
import difflib
import re
from pathlib import Path
from typing import NoReturn

from zoo.errors import UsageError


class ZooArgumentParser(argparse.ArgumentParser):
    """argparse, with its errors raised as :class:`UsageError` (the ``zoo`` entry point prints
    them as one line) instead of a usage dump and ``SystemExit``."""

    def error(self, message: str) -> NoReturn:
        choice = re.search(r"invalid choice: '(.*?)' \(choose from (.*)\)", message)
        if choice:
            options = re.findall(r"'([^']*)'", choice.group(2))
            close = difflib.get_close_matches(choice.group(1), options, n=3, cutoff=0.6)
            message = f"invalid choice {choice.group(1)!r}" + (
                f"; did you mean {', '.join(close)}?" if close else f" (choose from {', '.join(options)})")
        where = "" if " " not in self.prog else f"{self.prog}: "
        raise UsageError(f"{where}{message} (see `{self.prog} --help`)")


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"not a regular file: {text}")
    return path


def tensor_file(text: str) -> tuple[str, Path]:
    """``KEY=FILE`` (``zoo convert --tensor``)."""
    key, sep, file = text.partition("=")
    if not sep or not key or not file:
        raise argparse.ArgumentTypeError(f"expected KEY=FILE, got {text!r}")
    return key, Path(file)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
