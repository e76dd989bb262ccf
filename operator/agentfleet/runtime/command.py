"""`agentfleet run`: the operator's flags, made from the fields of OperatorConfig.

Each field of api/config.py that carries a help text is one flag (`--<field-name>`, or the
name its `setting()` gives), with the field's type and default; nested sections (render,
policy) contribute their fields under plain names. So a knob is described once, and a chart
argument that names no knob fails `agentfleet run` and the chart tests alike.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from agentfleet.api.config import OperatorConfig


@dataclass(frozen=True)
class Flag:
    """One field of OperatorConfig as a command-line option."""

    path: tuple[str, ...]  # ("render", "cluster_domain")
    field: dataclasses.Field[Any]
    annotation: Any  # the field's resolved type

    @property
    def name(self) -> str:
        return self.path[-1]

    @property
    def option_name(self) -> str:
        return "--" + (self.field.metadata.get("flag") or self.name.replace("_", "-"))

    @property
    def default(self) -> Any:
        if self.field.default_factory is not dataclasses.MISSING:
            return self.field.default_factory()
        return self.field.default

    def parameter(self) -> inspect.Parameter:
        meta = self.field.metadata
        decls = [self.option_name]
        if self.annotation is bool:
            decls = [f"{self.option_name}/--no-{self.option_name[2:]}"]
        if meta.get("short"):
            decls.append(f"-{meta['short']}")
        options: dict[str, Any] = {"help": meta["help"], "envvar": meta.get("envvar")}
        if meta.get("min") is not None:
            options["min"] = meta["min"]
        if meta.get("max") is not None:
            options["max"] = meta["max"]
        annotation, default = self.annotation, self.default
        if meta.get("from_file"):
            annotation, default = Path | None, None
            options.update(exists=True, dir_okay=False)
        elif typing.get_origin(annotation) is tuple:
            annotation, default = list[str], list(default)
        option = typer.Option(default, *decls, **options)
        return inspect.Parameter(
            self.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation
        )


def flags(cls: type[Any] = OperatorConfig, path: tuple[str, ...] = ()) -> Iterator[Flag]:
    """Every flag-bearing field of `cls`, depth first (render.*, policy.*, then the rest)."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        if dataclasses.is_dataclass(kind):
            yield from flags(typing.cast(type[Any], kind), (*path, field.name))
        elif field.metadata.get("help"):
            yield Flag((*path, field.name), field, kind)


FileReaders = dict[str, Callable[[Path], Any]]


def build_config(values: dict[str, Any], read_file: FileReaders | None = None) -> OperatorConfig:
    """The OperatorConfig that the parsed flag values describe (None: the field's default)."""

    def section(cls: type[Any], path: tuple[str, ...]) -> Any:
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            kind = hints[field.name]
            if dataclasses.is_dataclass(kind):
                kwargs[field.name] = section(typing.cast(type[Any], kind), (*path, field.name))
                continue
            if field.name not in values or not field.metadata.get("help"):
                continue
            value = values[field.name]
            if field.metadata.get("from_file"):
                if value is None:
                    continue
                reader = (read_file or {}).get(field.name)
                if reader is None:
                    raise typer.BadParameter("cannot be read", param_hint=f"--{field.name}")
                value = reader(value)
            elif typing.get_origin(kind) is tuple:
                value = tuple(v for v in value if v)
            elif isinstance(kind, type) and issubclass(kind, enum.Enum):
                value = kind(value)
            kwargs[field.name] = value
        return cls(**kwargs)

    return typing.cast(OperatorConfig, section(OperatorConfig, ()))


def command(
    start: Callable[[OperatorConfig, bool], None], read_file: FileReaders | None = None
) -> Callable[..., None]:
    """A function typer turns into `agentfleet run`: one keyword parameter per flag."""
    all_flags = list(flags())
    names = [flag.name for flag in all_flags]
    duplicated = {n for n in names if names.count(n) > 1}
    assert not duplicated, f"two config fields are both --{duplicated}"

    def run(**values: Any) -> None:
        verbose = bool(values.pop("verbose", False))
        start(build_config(values, read_file), verbose)

    verbose = inspect.Parameter(
        "verbose",
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(False, "--verbose", "-v", help="Debug logging."),
        annotation=bool,
    )
    parameters = [flag.parameter() for flag in all_flags] + [verbose]
    run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in parameters}
    run.__doc__ = "Run the operator (in a Pod, or locally against $KUBECONFIG)."
    return run
