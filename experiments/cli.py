"""What the command-line tools share: flag parsing and error reporting, in one place.

    def run():
        cli.run("lawm-eval", main, errors=(ValueError, FileNotFoundError, "lawm.train.ConfigError"))

A bad command line (an unknown flag or config field, a flag value that does not parse, a config file that
is missing or rejects its ARG) and any of the command's `errors` raised by `main` (a library error that
names a bad input) end the command with one line on stderr, `<command>: error: <message>`, and a non-zero
exit status, instead of a traceback. `--verbose` shows the full traceback instead. Other exceptions (bugs)
keep their traceback.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable

from absl import app, flags

_VERBOSE = flags.DEFINE_bool("verbose", False, "On an error, show the full traceback instead of one line.")

USAGE_EXIT = 2  # a command line that cannot be parsed (as argparse)
ERROR_EXIT = 1  # an input the command rejected


class _Failed(Exception):
    """An error already turned into its one-line message."""


def run(name: str, main: Callable[[list[str]], object], errors: Iterable[type | str] = ()) -> None:
    """absl's app.run(main) for the command `name`, reporting command-line errors and `errors` raised by
    `main` as one line. An entry of `errors` is an exception class or its dotted name ("lawm.train.
    ConfigError"), so that a command's library stays unimported until after flag parsing (--help is fast).
    """
    errors = tuple(errors)

    def parse(argv: list[str]) -> list[str]:
        try:
            args = _parse_flags(argv)
            if len(args) > 1:
                raise _Failed(f"unexpected arguments: {' '.join(args[1:])}")
            return args
        except Exception as error:  # the command line is the input: none of this is a bug of ours
            _fail(name, error, verbose=_verbose(argv), code=USAGE_EXIT)

    def checked_main(argv: list[str]):
        try:
            return main(argv)
        except app.UsageError as error:
            _fail(name, error, verbose=_VERBOSE.value, code=USAGE_EXIT)
        except Exception as error:
            if not isinstance(error, _resolve(errors)):
                raise
            _fail(name, error, verbose=_VERBOSE.value)

    app.run(checked_main, flags_parser=parse)


def _parse_flags(argv: list[str]) -> list[str]:
    """flags.FLAGS(argv), with each config flag checked: config_flags defers a config file that failed to
    load (e.g. a missing file) until its first use, which would be deep inside the command."""
    args = flags.FLAGS(argv)
    for name in flags.FLAGS:
        flag = flags.FLAGS[name]
        error = _config_load_error(flag.value)
        if error is not None:
            message = f"--{name}: cannot load the config file: {_last_line(error)}"
            raise _Failed(message) from error
    return args


def _config_load_error(value) -> BaseException | None:
    """The load error that config_flags keeps in place of a config it could not load, else None."""
    if type(value).__name__ != "_ErrorConfig":
        return None
    return vars(value).get("_error") or OSError("the config file could not be loaded")


def _fail(name: str, error: BaseException, *, verbose: bool, code: int = ERROR_EXIT):
    if verbose:
        raise error
    print(f"{name}: error: {_message(error)}", file=sys.stderr, flush=True)
    sys.exit(code)


def _message(error: BaseException) -> str:
    """One line that says what was wrong with the input."""
    if isinstance(error, _Failed | app.UsageError):
        return _one_line(str(error))
    field = _config_field(error)
    if field is not None:  # config_flags: --config.<field> names no field of the config
        hint = _one_line(str(error)).strip("'\"").partition("Did you mean")
        suggestion = f" (did you mean{hint[2].rstrip('?')}?)" if hint[1] else ""
        return f"--{field}: no such config field{suggestion}"
    root = _root(error)
    if isinstance(error, flags.Error) and "Error whilst parsing config file" in str(error):
        # A config file's get_config(ARG) raised: config_flags folds its traceback into the flag error.
        head = str(error).split("\n", 1)[0].replace("Error whilst parsing config file:", "").strip()
        return f"{head} {_described(root)}"
    flag = _config_flag_name(error)
    if isinstance(error, OSError) and "config file" in str(error):
        # A config file that failed to load, met while applying its --config.<field> overrides.
        return f"--{flag or 'config'}: cannot load the config file: {_last_line(error)}"
    if flag is not None and not isinstance(error, flags.Error):  # e.g. the config file's imports failed
        return f"--{flag}={_config_flag_frame(error).f_locals.get('argument', '')}: {_described(error)}"
    if isinstance(error, flags.Error):
        return _one_line(str(error))
    return _described(error)


def _described(error: BaseException) -> str:
    """The message, with the exception's name where the message alone would not say what failed."""
    text = _one_line(str(error))
    if isinstance(error, ValueError | OSError) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _config_field(error: BaseException) -> str | None:
    """`config.model.bogus` when `error` is config_flags failing on an override of an unknown field."""
    if not isinstance(error, AttributeError | KeyError):
        return None
    frame = _config_flag_frame(error)
    if frame is None or "field_path" not in frame.f_locals:
        return None
    return f"{_config_flag_name(error)}.{frame.f_locals['field_path']}"


def _config_flag_name(error: BaseException) -> str | None:
    """The config flag (`config`) whose parsing raised `error`, if config_flags raised it."""
    frame = _config_flag_frame(error)
    return None if frame is None else getattr(frame.f_locals.get("self"), "name", None)


def _config_flag_frame(error: BaseException):
    """The innermost frame of config_flags' parsing of a config flag's value and its overrides."""
    found, traceback = None, error.__traceback__
    while traceback is not None:
        code = traceback.tb_frame.f_code
        if "config_flags" in code.co_filename and code.co_name == "_parse":
            found = traceback.tb_frame
        traceback = traceback.tb_next
    return found


def _root(error: BaseException) -> BaseException:
    while (error.__cause__ or error.__context__) is not None:
        error = error.__cause__ or error.__context__
    return error


def _last_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(_root(error)).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _resolve(errors: tuple[type | str, ...]) -> tuple[type, ...]:
    """The exception classes, importing the modules of the ones given by name."""
    resolved = []
    for error in errors:
        if isinstance(error, str):
            module, _, attribute = error.rpartition(".")
            error = getattr(importlib.import_module(module), attribute)
        resolved.append(error)
    return tuple(resolved)


def _verbose(argv: list[str]) -> bool:
    """--verbose as given on a command line that may not parse."""
    verbose = False
    for arg in argv[1:]:
        if arg == "--":
            break
        name, equals, text = arg.lstrip("-").partition("=")
        if name == "verbose":
            verbose = not equals or text.lower() in ("true", "1")
        elif name == "noverbose":
            verbose = False
    return verbose
