"""Configs as data: each command's options are the fields of one frozen dataclass, each worded once.

    @dataclasses.dataclass(frozen=True)
    class ExportConfig:
        model: str = cli.option(help="run dir or a .keras file")
        overwrite: bool = cli.option(False, help="replace --out if it already holds something")

    config = cli.parse(ExportConfig, argv)  # --help, a bad flag or value: one line, exit status 2

:func:`option` is a ``dataclasses.field`` whose metadata holds the help text and how the field is
spelt on the command line; :func:`parser_for` builds the argparse parser from the fields (a bool is
a switch, a tuple takes several values, ``X | None`` is optional, ``choices`` are checked), and
:func:`options_markdown` the table of docs/commands.md. A field without a default is a required
option; the class says its command as ``PROG`` and ``DESCRIPTION`` (``typing.ClassVar``). A config's ``__post_init__`` checks the values: its :class:`errors.UsageError` (or
``ValueError``) becomes argparse's one-line error. Presets are plain dicts of field values: a
flag left out takes the preset's value, then the field's default.

Pure Python, no TensorFlow: a command parses (and answers ``--help``) before the slow imports.
"""

import argparse
import dataclasses
import types
import typing

from koalarization import errors
from koalarization.constants import DEFAULT_MAX_PIXELS

MISSING = dataclasses.MISSING


def option(default=MISSING, *, help, flags=None, choices=None, metavar=None, positional=False, nargs=None,
           negatable=False, group=None, exclusive=None, required_group=False, shown_default=None, repeatable=False):  # fmt: skip
    """A config field that is a command-line option.

    ``help``: its one wording (``%(default)s`` is the default); ``flags``: its spellings (default
    ``--field-name``); ``positional``: an argument without a flag; ``nargs``: how many values a
    tuple takes (default ``+``); ``negatable``: a bool with a ``--no-`` form; ``group``: the
    heading it is listed under in ``--help``; ``exclusive``: the name of a group of which at most
    one may be given (``required_group``: exactly one); ``shown_default``: the default as the docs
    table shows it, when the value itself says less (``None`` meaning "from the model");
    ``repeatable``: a tuple field given once per value (``--hint A --hint B``), not several after one flag."""
    metadata = {
        "help": help, "flags": tuple(flags) if flags else None, "choices": tuple(choices) if choices else None,
        "metavar": metavar, "positional": positional, "nargs": nargs, "negatable": negatable, "group": group,
        "exclusive": exclusive, "required_group": required_group, "shown_default": shown_default,
        "repeatable": repeatable,
    }  # fmt: skip
    return dataclasses.field(default=default, metadata=metadata)


# -- the options several commands share: one wording each -------------------------------------------
INCEPTION_WEIGHTS_HELP = (
    "imagenet, random or a weights file for Inception-ResNet-v2 (run dirs and .keras files only; "
    "default: the weights recorded in the run's config, else imagenet)"
)
MODEL_HELP = "run dir (model.keras + config.json), .keras file or exported SavedModel dir"


def working_size(what="the network runs at"):
    return option(None, help=f"square size (multiple of 8) {what} (default: the training image size or the export's, else 224)",
                  shown_default="from the model")  # fmt: skip


def max_pixels(what):
    return option(DEFAULT_MAX_PIXELS, help=f"{what} images with more pixels, read from their header before decoding "
                  "(default: %(default)s; 0: no limit)")  # fmt: skip


def precision(default=None):
    suffix = f" (default: {default})" if default else " (default: float32; a SavedModel runs as it was exported)"
    from koalarization import precision as precisions  # pure Python: the names and the wording

    return option(default, help=precisions.HELP + suffix, choices=precisions.CHOICES, shown_default=default or "float32")


def inception_weights(prefix=""):
    return option(None, help=prefix + INCEPTION_WEIGHTS_HELP, shown_default="as in training")


def verbose():
    return option(False, help="show TensorFlow's start-up logs")


def check_working_size(size):
    if size is not None and (size < 8 or size % 8):
        raise errors.UsageError(f"--working-size {size}: must be a positive multiple of 8 (the encoder downsamples by 8)")


def check_max_pixels(value):
    if value < 0:
        raise errors.UsageError("--max-pixels must be >= 0 (0: no limit)")


# -- the parser ------------------------------------------------------------------------------------
def _flag(field):
    return "--" + field.name.replace("_", "-")


def _value_type(hint):
    """``int | None`` -> (int, False); ``tuple[str, ...]`` -> (str, True)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
        origin = typing.get_origin(hint)
    if hint is tuple or origin is tuple:
        args = [arg for arg in typing.get_args(hint) if arg is not Ellipsis]
        return (args[0] if args else str), True
    return hint, False


def _help(field):
    text = field.metadata["help"]
    if "%(default)s" in text:  # argparse's own %(default)s would show SUPPRESS: say the field's default
        text = text.replace("%(default)s", str(field.default))
    return text


def _add(container, field, hint):
    meta = field.metadata
    kind, many = _value_type(hint)
    kwargs = {"help": _help(field)}
    required = field.default is MISSING and field.default_factory is MISSING
    if meta["metavar"]:
        kwargs["metavar"] = meta["metavar"]
    if kind is bool and not many:
        kwargs["action"] = argparse.BooleanOptionalAction if meta["negatable"] else "store_true"
    else:
        kwargs["type"] = kind
        if meta["choices"]:
            kwargs["choices"] = meta["choices"]
        if many and meta.get("repeatable"):
            kwargs["action"] = "append"
        elif many:
            kwargs["nargs"] = meta["nargs"] or "+"
    if meta["positional"]:  # required unless it has a default (then nargs "*" or "?" would say so)
        container.add_argument(field.name, **kwargs, **({} if required else {"default": argparse.SUPPRESS}))
        return
    if required and not meta["exclusive"]:
        kwargs["required"] = True
    container.add_argument(*(meta["flags"] or (_flag(field),)), dest=field.name, default=argparse.SUPPRESS, **kwargs)


def fields_of(config_class):
    """The option fields of ``config_class`` and their resolved type hints."""
    hints = typing.get_type_hints(config_class)
    return [(field, hints[field.name]) for field in dataclasses.fields(config_class) if "help" in field.metadata]


def parser_for(config_class, prog, description):
    """The argparse parser of ``config_class``: one option per field, worded by its ``help``. Each
    option left out is absent from the parsed namespace (so the config's or a preset's default applies)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    groups, exclusive = {}, {}
    for field, hint in fields_of(config_class):
        meta = field.metadata
        container = parser
        if meta["group"]:
            container = groups.get(meta["group"]) or groups.setdefault(meta["group"], parser.add_argument_group(meta["group"]))
        if meta["exclusive"]:
            if meta["exclusive"] not in exclusive:
                exclusive[meta["exclusive"]] = container.add_mutually_exclusive_group(required=meta["required_group"])
            container = exclusive[meta["exclusive"]]
        _add(container, field, hint)
    return parser


def parse(config_class, argv=None, presets=None, preset_field="preset"):
    """``argv`` (default ``sys.argv[1:]``) -> a ``config_class``. ``presets``: ``{name: {field: value}}``;
    the config's ``preset_field`` names the one whose values stand in for the flags left out. A bad
    flag or value exits with status 2 and one line (argparse's ``error``)."""
    parser = parser_for(config_class, config_class.PROG, config_class.DESCRIPTION)
    given = vars(parser.parse_args(argv))
    given = {name: tuple(value) if isinstance(value, list) else value for name, value in given.items()}  # nargs: a tuple
    if presets is not None:
        name = given.get(preset_field, _default(config_class, preset_field))
        given = {**presets[name], **given}
    try:
        return config_class(**given)
    except ValueError as error:  # UsageError included: the config's own checks
        parser.error(str(error))


def _default(config_class, name):
    return next(field.default for field in dataclasses.fields(config_class) if field.name == name)


# -- the docs' tables ------------------------------------------------------------------------------
def _shown(field):
    meta = field.metadata
    if meta["shown_default"] is not None:
        return str(meta["shown_default"])
    if field.default is MISSING:
        return "required"
    if field.default is None:
        return "-"
    if field.default is False or field.default == ():
        return ""
    return str(field.default)


PIPE = "\\|"  # a | inside a markdown table's cell


def options_markdown(config_class):
    """The markdown table of ``config_class``'s options: flag, default, help (docs/commands.md)."""
    rows = ["| option | default | what it does |", "|---|---|---|"]
    for field, hint in fields_of(config_class):
        meta = field.metadata
        kind, many = _value_type(hint)
        if meta["positional"]:
            name = meta["metavar"] or field.name.upper()
            spelt = f"`{name} ...`" if many else f"`{name}`"
        else:
            flags = meta["flags"] or (_flag(field),)
            metavar = (meta["metavar"] or "").replace("|", PIPE)
            value = f" {metavar}" if metavar and kind is not bool else ""
            spelt = ", ".join(f"`{flag}{value}{' ...' if many and not meta.get('repeatable') else ''}`" for flag in flags)
            if meta.get("repeatable"):
                spelt += " (repeatable)"
            if meta["negatable"]:
                spelt += f", `--no-{field.name.replace('_', '-')}`"
        if meta["choices"]:
            spelt += " (" + f" {PIPE} ".join(meta["choices"]) + ")"
        text = _help(field).replace("%%", "%").replace("|", PIPE)
        rows.append(f"| {spelt} | {_shown(field)} | {text} |")
    return "\n".join(rows) + "\n"


def command(config, run, presets=None):
    """A command's ``main(argv=None, **kwargs)``: :func:`parse` ``argv`` into the ``config`` class
    (or call ``config(argv)``, a command's own parse function), then ``run(config, **kwargs)``, under
    :func:`errors.command` (one line and the table's status for every expected failure). ``run`` is
    the one library function the command calls; it returns the exit status."""
    read = config if not dataclasses.is_dataclass(config) else lambda argv: parse(config, argv, presets)

    @errors.command
    def main(argv=None, **kwargs):
        return run(read(argv), **kwargs)

    main.__doc__ = f"Parse the command line, then {run.__module__}.{run.__name__}."
    return main
