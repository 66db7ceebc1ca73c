"""A small CLI builder: each command is a typed Python function; argparse is derived from its signature.

Parameters without a default become positional arguments, the others ``--options`` (``snake_case``
→ ``--kebab-case``).  Supported annotations: ``str``, ``int``, ``float``, ``bool`` (``--flag`` /
``--no-flag``), ``Path``, ``Literal[...]`` (choices), ``list[X]`` (one or more) and ``X | None``.
The first docstring line is the command's help; lines ``name: text`` under ``Args:`` describe the parameters.

A parameter whose annotation is a dataclass (``sampling: Sampling = Sampling()``) is a group of options: each
of its fields becomes a flag, in a ``--help`` section titled by the first line of the dataclass's docstring
(its ``Args:`` give the help texts), and the command receives the dataclass built from them (its own checks
turning bad values into the one-line error).  A field whose metadata says ``expert`` is accepted but not
listed; one whose metadata says ``flag: False`` is not a flag.

Errors are one line on stderr and exit status 2: :class:`EspressivoError` from the command, and
argparse's own usage errors.  Set ``ESPRESSIVO_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import sys
import types
import typing
import warnings
from collections.abc import Callable
from pathlib import Path

from espressivo.errors import EspressivoError
from espressivo.registry import Registry


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _param_docs(func: Callable) -> dict[str, str]:
    """The ``Args:`` section of a docstring: ``{name: text}``, an entry's deeper-indented lines joined to it."""
    docs: dict[str, str] = {}
    indent, name = None, None
    for line in (inspect.getdoc(func) or "").splitlines():
        stripped = line.strip()
        if stripped == "Args:":
            indent = -1
            continue
        if indent is None or not stripped:
            continue
        depth = len(line) - len(line.lstrip())
        if indent == -1:
            indent = depth
        if depth < indent:  # the next section (Returns:, Example:, ...)
            break
        if depth == indent and ":" in stripped:
            name, text = stripped.split(":", 1)
            name = name.strip()
            docs[name] = text.strip()
        elif depth > indent and name is not None:
            docs[name] += " " + stripped
    return docs


def _unwrap_optional(annotation):
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _positive(kind):
    def convert(text: str):
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None

    convert.__name__ = kind.__name__
    return convert


def _option_groups(func: Callable) -> dict[str, type]:
    """The parameters of ``func`` annotated with a dataclass: each expands into one flag per field."""
    hints = typing.get_type_hints(func)
    return {name: hints[name] for name in inspect.signature(func).parameters
            if dataclasses.is_dataclass(hints.get(name))}  # fmt: skip


def _add_argument(parser, name: str, annotation, default, help_text: str, short: str | None = None) -> None:
    """One parameter (``default`` is ``inspect.Parameter.empty`` for a positional one) as an argument."""
    annotation = _unwrap_optional(annotation)
    flag = "--" + name.replace("_", "-")
    if annotation is bool:
        if name.startswith("no_"):  # argparse reads --no-X as "X off": name the positive flag instead
            raise TypeError(f"name the bool parameter {name!r} positively (--x / --no-x)")
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        return
    kwargs: dict = {"help": help_text}
    if typing.get_origin(annotation) is list:  # one or more values (positional: FILES...)
        kwargs["nargs"] = "+"
        (item,) = typing.get_args(annotation) or (str,)
        kwargs["type"] = Path if item is Path else _positive(item) if item in (int, float) else str
    elif typing.get_origin(annotation) is typing.Literal:
        kwargs["choices"] = list(typing.get_args(annotation))
    elif annotation in (int, float):
        kwargs["type"] = _positive(annotation)
    elif annotation is Path:
        kwargs["type"] = Path
    if default is inspect.Parameter.empty:
        parser.add_argument(name, metavar=name.upper(), **kwargs)
        return
    if default is not None and help_text is not argparse.SUPPRESS:
        kwargs["help"] = f"{help_text} (default: {default})".strip()
    parser.add_argument(*([short, flag] if short else [flag]), dest=name, default=default, **kwargs)


def _help(docs: dict[str, str], name: str, hidden: bool) -> str:
    # argparse %-formats help ("10 % faster"); an expert knob is accepted, not listed
    return argparse.SUPPRESS if hidden else docs.get(name, "").replace("%", "%%")


def _add_arguments(parser: argparse.ArgumentParser, func: Callable) -> None:
    hints = typing.get_type_hints(func)
    docs = _param_docs(func)
    titles = {name: title for title, names in getattr(func, "_groups", {}).items() for name in names}
    sections: dict[str, argparse._ArgumentGroup] = {}  # made in the order of the first parameter of each

    def section_of(name: str):
        title = titles.get(name)
        if title is None:
            return parser
        if title not in sections:
            sections[title] = parser.add_argument_group(title)
        return sections[title]

    expert = set(getattr(func, "_expert", ()))
    option_groups = _option_groups(func)
    for name, param in inspect.signature(func).parameters.items():
        if name == "overrides":  # free-form --key value settings, passed through as a list
            continue
        if name in option_groups:
            cls = option_groups[name]
            title = (inspect.getdoc(cls) or name).splitlines()[0]
            section = parser.add_argument_group(title)
            field_docs, field_hints = _param_docs(cls), typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):
                if f.metadata.get("flag", True):
                    hidden = bool(f.metadata.get("expert")) or f.name in expert
                    _add_argument(section, f.name, field_hints[f.name], getattr(param.default, f.name),
                                  _help(field_docs, f.name, hidden))  # fmt: skip
            continue
        _add_argument(section_of(name), name, hints.get(name, str), param.default,
                      _help(docs, name, name in expert), getattr(func, "_short_flags", {}).get(name))  # fmt: skip


def _call_arguments(func: Callable, values: dict) -> dict:
    """Parsed values -> the keyword arguments of ``func``: option groups built from their fields."""
    parameters = inspect.signature(func).parameters
    kwargs = {k: v for k, v in values.items() if not k.startswith("_") and k in parameters}
    for name, cls in _option_groups(func).items():
        base = parameters[name].default
        given = {f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values}
        kwargs[name] = dataclasses.replace(base, **given)
    return kwargs


def _attach_negative_values(argv: list[str]) -> list[str]:
    """``--opt -2,0,1`` -> ``--opt=-2,0,1``: argparse would read a value starting with a minus sign and a
    digit as an option (it only accepts plain negative numbers)."""
    out: list[str] = []
    for token in argv:
        if (
            out
            and out[-1].startswith("--")
            and "=" not in out[-1]
            and len(token) > 1
            and token[0] == "-"
            and (token[1].isdigit() or token[1] == ".")
        ):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


class App:
    def __init__(self, prog: str, description: str):
        self.prog, self.description = prog, description
        self.commands: Registry[Callable] = Registry("command")  # "data scan" -> its function

    def command(
        self, name: str, short_flags: dict[str, str] | None = None, groups: dict[str, tuple[str, ...]] | None = None,
        expert: tuple[str, ...] = (),
    ):  # fmt: skip
        """Register ``func`` as ``prog NAME`` (NAME may be two words: ``"data scan"``); ``groups``: titled
        sections of ``--help`` (parameter names); ``expert``: parameters accepted but left out of ``--help``."""

        def register(func: Callable) -> Callable:
            func._short_flags = short_flags or {}  # type: ignore[attr-defined]
            func._groups = groups or {}  # type: ignore[attr-defined]
            func._expert = expert  # type: ignore[attr-defined]
            self.commands.add(" ".join(name.split()), func)
            return func

        return register

    def parser(self) -> argparse.ArgumentParser:
        root = OneLineParser(prog=self.prog, description=self.description)
        from espressivo import __version__

        root.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
        groups: dict[tuple[str, ...], argparse._SubParsersAction] = {
            (): root.add_subparsers(dest="command", metavar="COMMAND")
        }
        parsers: dict[tuple[str, ...], argparse.ArgumentParser] = {}
        for path, func in sorted((tuple(name.split()), func) for name, func in self.commands.items()):
            for depth in range(1, len(path)):
                prefix = path[:depth]
                if prefix not in groups:
                    sub = groups[prefix[:-1]].add_parser(prefix[-1], help=f"{prefix[-1]} commands")
                    parsers[prefix] = sub
                    groups[prefix] = sub.add_subparsers(dest="_".join(prefix), metavar="COMMAND")
            summary = (inspect.getdoc(func) or "").split("\n\n")[0].replace("\n", " ").replace("%", "%%")
            doc = (inspect.getdoc(func) or "").split("Args:")[0].strip()
            sub = groups[path[:-1]].add_parser(
                path[-1], help=summary, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
            )
            sub.set_defaults(_func=func)
            _add_arguments(sub, func)
        return root

    def main(self, argv: list[str] | None = None) -> int:
        parser = self.parser()
        args, extra = parser.parse_known_args(_attach_negative_values(sys.argv[1:] if argv is None else argv))
        func = getattr(args, "_func", None)
        if func is None:
            parser.print_help(sys.stderr)
            return 2
        parameters = inspect.signature(func).parameters
        if extra and "overrides" not in parameters:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        shown = warnings.formatwarning
        warnings.formatwarning = lambda message, *_, **__: f"{self.prog}: warning: {message}\n"  # one line each
        previous = _on_terminate(_terminated)
        try:
            kwargs = _call_arguments(func, vars(args))
            if "overrides" in parameters:
                kwargs["overrides"] = extra
            from espressivo.io.files import guarding_inputs

            with guarding_inputs():  # no file the command reads is written over
                result = func(**kwargs)
        except EspressivoError as err:
            print(f"{self.prog}: error: {err}", file=sys.stderr)
            return 2
        except Terminated:
            print(f"{self.prog}: terminated", file=sys.stderr)
            return 143
        except KeyboardInterrupt:
            print(f"{self.prog}: interrupted", file=sys.stderr)
            return 130
        except Exception as err:  # a bug, not bad input: still one line unless debugging
            if os.environ.get("ESPRESSIVO_DEBUG"):
                raise
            print(
                f"{self.prog}: internal error: {type(err).__name__}: {err} (ESPRESSIVO_DEBUG=1 shows details)",
                file=sys.stderr,
            )
            return 1
        finally:
            warnings.formatwarning = shown
            _on_terminate(previous)
        return int(result or 0)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C, so that every ``finally`` (temporary files, child
    processes) runs before the command exits."""


def _terminated(signum, frame):
    raise Terminated()


def _on_terminate(handler):
    """Install ``handler`` for SIGTERM (from the main thread only); returns the previous one."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or handler is None:
        return None
    return signal.signal(signal.SIGTERM, handler)


app = App(
    "espressivo", "Expressive piano performance: look at, listen to, render, generate, embed and classify performances."
)
