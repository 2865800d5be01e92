"""``--config FILE``: command-line options from a TOML or YAML file.

The keys are the long option names, with ``-`` or ``_`` (``chunk-size`` or
``chunk_size``), and the values what the option takes::

    mode = "keyframes"
    threshold = ["l0_fraction=0.02"]      # repeatable options take a list
    recursive = true                      # flags take true / false
    chunk_size = 64
    cluster = "slurm"
    walltime = "02:00:00"

Values from the file become defaults: an option given on the command line wins, and a
repeatable option given on the command line replaces the file's list. Positional
arguments (the scan's SOURCE) are not read from the file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import FramediffError

__all__ = ["ConfigError", "add_config_argument", "apply_config", "config_keys", "load_config"]

_TOML_SUFFIXES = (".toml",)
_YAML_SUFFIXES = (".yaml", ".yml")


class ConfigError(FramediffError, ValueError):
    """A configuration file that cannot be used; the message names the file."""


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE`` to ``parser`` (read by :func:`apply_config`)."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="read options from a TOML or YAML file (keys: long option names); command-line options win",
    )


def load_config(path, *, known=None) -> dict:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file of options.

    Parameters
    ----------
    path : str or path
    known : iterable of str, optional
        The allowed keys (argparse destinations, with ``_``); other keys are an error.

    Returns
    -------
    dict
        Option name (``-`` replaced by ``_``) to value, in file order.

    Raises
    ------
    ConfigError
        Missing or unreadable file, a syntax error, an unsupported suffix, YAML without
        PyYAML, a top level that is not a table, or unknown / duplicate keys.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _TOML_SUFFIXES + _YAML_SUFFIXES:
        raise ConfigError(f"{path}: configuration files must end in .toml, .yaml or .yml")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file ({exc.strerror or exc})") from None
    data = _parse_toml(path, raw) if suffix in _TOML_SUFFIXES else _parse_yaml(path, raw)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a table of option = value")
    config = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise ConfigError(f"{path}: option names must be strings, got {key!r}")
        name = key.strip().lstrip("-").replace("-", "_")
        if name in config:
            raise ConfigError(f"{path}: option {name!r} is given twice")
        config[name] = value
    if known is not None:
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise ConfigError(f"{path}: unknown option(s) {', '.join(unknown)}")
    return config


def _parse_toml(path: Path, raw: bytes):
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def _parse_yaml(path: Path, raw: bytes):
    try:
        import yaml
    except ImportError:
        raise ConfigError(f"{path}: reading YAML needs PyYAML (pip install pyyaml), or use a .toml file") from None
    try:
        return yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(f"{path}: not valid YAML ({reason})") from None


def config_keys(parser: argparse.ArgumentParser) -> dict:
    """The options a configuration file may set for ``parser``: destination -> action."""
    keys = {}
    for action in parser._actions:
        if not action.option_strings or action.dest in (argparse.SUPPRESS, "config"):
            continue
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        keys.setdefault(action.dest, action)
    return keys


def apply_config(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse ``argv`` like ``parser.parse_args``, with ``--config FILE`` values as defaults.

    ``parser`` is the top-level parser (subcommands are followed: the subcommand whose
    parser defines ``--config`` reads the file) or the subcommand's own parser. The
    command line is parsed once to find ``--config``; the file's values are turned
    into ``--option=value`` arguments placed before the command line's own, and the
    whole is parsed again, so explicit options win. A repeatable option given on the
    command line replaces the file's list instead of adding to it.

    Problems with the file (unknown keys, values the option refuses) end the program
    like a command-line error: a one-line message naming the file, exit status 2.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    path = getattr(args, "config", None)
    if path is None:
        return args
    target, insert_at = _config_parser(parser, args, argv)
    keys = config_keys(target)
    positional = {a.dest for a in target._actions if not a.option_strings}
    try:
        config = load_config(path)
        given = sorted(set(config) & positional)
        if given:
            raise ConfigError(f"{path}: {', '.join(given)} must be given on the command line, not in the file")
        unknown = sorted(set(config) - set(keys))
        if unknown:
            raise ConfigError(f"{path}: unknown option(s) {', '.join(unknown)}")
        tokens = []
        for name, value in config.items():
            tokens += _tokens(path, name, value, keys[name], args)
    except ConfigError as exc:
        target.error(str(exc))
    return parser.parse_args(argv[:insert_at] + tokens + argv[insert_at:])


def _config_parser(parser, args, argv):
    """The (sub)parser that defines ``--config``, and where its arguments start in argv."""
    position = 0
    while True:
        if any(a.dest == "config" for a in parser._actions if a.option_strings):
            return parser, position
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        name = getattr(args, sub.dest, None) if sub is not None else None
        if name is None or name not in sub.choices:
            raise ValueError("apply_config: no parser here defines --config (call add_config_argument)")
        position = argv.index(name, position) + 1
        parser = sub.choices[name]


def _long_option(action) -> str:
    longs = [o for o in action.option_strings if o.startswith("--")]
    return max(longs or action.option_strings, key=len)


def _tokens(path, name, value, action, args) -> list:
    """``--option=value`` arguments for one configuration entry (may be none)."""
    option = _long_option(action)
    where = f"{path}: {name}"
    if action.nargs == 0:  # store_true / store_false / store_const
        if not isinstance(value, bool):
            raise ConfigError(f"{where} takes true or false, got {value!r}")
        if isinstance(action, argparse.BooleanOptionalAction):
            return [option if value else "--no-" + option[2:]]
        if action.const is True:
            return [option] if value else []
        if action.const is False:
            return [] if value else [option]
        return [option] if value else []
    if isinstance(action, argparse._AppendAction):
        if getattr(args, action.dest, None) != action.default:
            return []  # given on the command line: it replaces the file's list
        items = value if isinstance(value, list) else [value]
        return [f"{option}={_text(where, action, item)}" for item in items]
    if isinstance(action, argparse._StoreAction) and action.nargs is None:
        if isinstance(value, (list, dict)):
            raise ConfigError(f"{where} takes one value, got {value!r}")
        return [f"{option}={_text(where, action, value)}"]
    if isinstance(action, argparse._StoreAction) and action.nargs in ("+", "*") or isinstance(action.nargs, int):
        items = value if isinstance(value, list) else [value]
        return [option, *(_text(where, action, item) for item in items)]
    raise ConfigError(f"{where} cannot be set from a configuration file")


def _text(where, action, value) -> str:
    """``value`` as the command line would spell it, checked by the option's own type and choices."""
    if isinstance(value, bool) or isinstance(value, (list, dict)) or value is None:
        raise ConfigError(f"{where} takes a value like on the command line, got {value!r}")
    text = value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
    converted = text
    if action.type is not None:
        try:
            converted = action.type(text)
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"{where} = {value!r}: {exc}") from None
        except (ValueError, TypeError):
            kind = getattr(action.type, "__name__", repr(action.type))
            raise ConfigError(f"{where} = {value!r}: invalid {kind} value") from None
    if action.choices is not None and converted not in action.choices:
        allowed = ", ".join(map(str, action.choices))
        raise ConfigError(f"{where} = {value!r}: choose from {allowed}")
    return text
