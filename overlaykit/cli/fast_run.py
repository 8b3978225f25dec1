"""`overlaykit [--root DIR] [--debug] run OPTIONS IMAGE [COMMAND...]` read without click.

Starting a container should cost little more than the kernel's work, and importing click
alone is ~12 ms of it. A command line that only names run's options (cli/run_options.py)
is read here as click would read it: long options with `=VALUE` or a separate value (the
next word, whatever it is: `--stop-timeout -1`), clusters of short flags (`-it`), a short
option's value attached (`-eA=1`) or separate, `--` before IMAGE, and nothing after IMAGE
taken as ours. Anything else (--help, an unknown option, a value click would refuse, a
missing IMAGE) returns None, and click reads the line and answers it, so every error and
help text is click's own. tests/test_fast_run.py proves the two agree.
"""

from typing import NamedTuple

from overlaykit.cli.run_options import RUN, Option

_BY_FLAG = {flag: option for option in RUN for flag in option.flags}


class RunLine(NamedTuple):
    """A `run` command line as click would hand it to the command."""
    root: str | None
    debug: bool
    params: dict


def parse(args: list[str]) -> RunLine | None:
    """The run command line, or None when it is anything but a run that parses cleanly."""
    root, debug, rest = _global_options(args)
    if not rest or rest[0] != "run":
        return None
    params = _run_params(rest[1:])
    return None if params is None else RunLine(root, debug, params)


def _global_options(args: list[str]) -> tuple[str | None, bool, list[str] | None]:
    root, debug = None, False
    i = 0
    while i < len(args) and args[i].startswith("-"):
        arg = args[i]
        if arg == "--debug":
            debug = True
        elif arg == "--root" and i + 1 < len(args):
            i += 1
            root = args[i]
        elif arg.startswith("--root="):
            root = arg.removeprefix("--root=")
        else:
            return None, False, None
        i += 1
    return root, debug, args[i:]


def _run_params(args: list[str]) -> dict | None:
    params = {option.name: option.empty for option in RUN}
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        if args[i] == "--":
            i += 1
            break
        named = _options_in(args[i])
        if named is None:
            return None
        for option, value in named:
            if value is None and not option.flag:  # its value is the next word
                i += 1
                if i == len(args):
                    return None
                value = args[i]
            if not _take(params, option, value):
                return None
        i += 1
    if i == len(args):
        return None  # no IMAGE: click's "Missing argument" line
    params["image"] = args[i]
    params["command"] = tuple(args[i + 1:])
    return params


def _options_in(word: str) -> list[tuple[Option, str | None]] | None:
    """The options one word names, each with its value if the word holds it: `--name` or
    `--name=VALUE`, or a cluster of short ones (`-it`; a short option that takes a value takes
    the rest of the word, `-eA=1`). None for a word click would refuse."""
    if word.startswith("--"):
        name, equals, value = word.partition("=")
        option = _BY_FLAG.get(name)
        if option is None or (option.flag and equals):
            return None
        return [(option, value if equals else None)]
    named = []
    for at in range(1, len(word)):
        option = _BY_FLAG.get("-" + word[at])
        if option is None:
            return None
        if not option.flag:
            return named + [(option, word[at + 1:] or None)]
        named.append((option, None))
    return named


def _take(params: dict, option: Option, text: str | None) -> bool:
    """Record one occurrence of option; False if click would refuse its value."""
    value: object = True
    if not option.flag:
        value = text
        if option.integer:
            try:
                value = int(text)
            except ValueError:
                return False
        elif option.choices is not None and text not in option.choices:
            return False
    if option.multiple:
        params[option.name] += (value,)
    else:
        params[option.name] = value
    return True
