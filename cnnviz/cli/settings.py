"""The settings of methods and metrics as command-line options, derived from their declarations.

A command that takes a family's settings (the attribution methods', the metrics') is a :class:`SettingsCommand`
with one :class:`SettingsGroup` per family. Its options are made from the family's declarations
(:mod:`cnnviz.methods.settings`) each time the command runs, so a method or metric added after import (a plug-in,
a test) has its options too; their values reach the command as one settings object per family, after the
refusal of a setting that no chosen entry reads, in the command line's words. :func:`flag` is the one place where a
flag is spelled apart from its Python name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click

from cnnviz.errors import OptionError
from cnnviz.methods.settings import Family, Setting, Settings, quoted


@dataclass(frozen=True)
class SettingsGroup:
    """One family's settings on a command.

    Attributes:
        settings: the settings class (its ``family`` declares them).
        chosen: the command's parameter that holds the entries chosen (``methods``); empty: every entry reads
            them (a menu offers all).
        default: the entries chosen where the parameter is empty.
        keyword: the keyword the command takes the settings object as.
    """

    settings: type[Settings]
    chosen: str = ""
    default: tuple[str, ...] = ()
    keyword: str = "settings"

    @property
    def family(self) -> Family:
        """The family that declares the settings."""
        return self.settings.family


def flag(group: SettingsGroup, name: str, earlier: set[str]) -> str:
    """The flag of setting ``name`` of ``group``: ``--name`` with dashes, or ``--<kind>-name`` where a group before
    it on the command (``earlier``: their setting names) has a setting of that name too (``evaluate --steps`` is the
    metrics', ``--method-steps`` Integrated Gradients')."""
    dashed = name.replace("_", "-")
    return f"--{group.family.kind}-{dashed}" if name in earlier else f"--{dashed}"


class SettingType(click.ParamType):
    """A setting's value, checked by its declaration."""

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:  # noqa: D102
        return self.name

    def __init__(self, setting: Setting) -> None:
        self.setting = setting
        number = "|NUMBER" if setting.kind is not str else ""
        self.name = "|".join(setting.names) + number if setting.names else setting.kind.__name__.upper()

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return self.setting.checked(value)
        except OptionError as exc:
            self.fail(str(exc).replace(quoted(self.setting.name), "it"), param, ctx)


def _key(group: SettingsGroup, name: str) -> str:
    return f"{group.keyword}__{name}"


class SettingsCommand(click.Command):
    """A command whose options include its groups' settings (placed after the parameters that choose the
    entries), handed to its function as one settings object per group (:attr:`SettingsGroup.keyword`)."""

    def __init__(self, *args: Any, groups: Sequence[SettingsGroup] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.groups = tuple(groups)

    def spelled(self) -> list[tuple[SettingsGroup, Setting, str]]:
        """Every group's settings with their flags, in the groups' order."""
        earlier: set[str] = set()
        found = []
        for group in self.groups:
            declared = group.family.declared()
            found += [(group, setting, flag(group, name, earlier)) for name, setting in declared.items()]
            earlier.update(declared)
        return found

    def derived(self) -> list[click.Option]:
        """The settings' options, as they are declared now."""
        options = []
        for group, setting, spelled in self.spelled():
            readers = ", ".join(group.family.readers(setting.name))
            options.append(
                click.Option(
                    [spelled, _key(group, setting.name)],
                    type=SettingType(setting),
                    default=None,
                    help=f"{readers}: {setting.help} [{setting.default_text}].",
                )
            )
        return options

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:  # noqa: D102
        params = super().get_params(ctx)
        choosing = {group.chosen for group in self.groups}
        places = [index for index, param in enumerate(params) if param.name in choosing]
        at = places[-1] + 1 if places else len(params) - 1
        return [*params[:at], *self.derived(), *params[at:]]

    def invoke(self, ctx: click.Context) -> Any:  # noqa: D102
        spelled = self.spelled()
        for group in self.groups:
            flags = {setting.name: text for owner, setting, text in spelled if owner is group}
            values = {name: ctx.params.pop(_key(group, name), None) for name in flags}
            given = [name for name, value in values.items() if value is not None]
            chosen = (ctx.params.get(group.chosen) or group.default) if group.chosen else tuple(group.family)
            try:
                group.family.refuse_unread(chosen, given, spell=flags.__getitem__)
            except OptionError as exc:
                raise click.UsageError(str(exc), ctx) from exc
            ctx.params[group.keyword] = group.settings(**values)
        return super().invoke(ctx)


__all__ = ["SettingType", "SettingsCommand", "SettingsGroup", "flag"]
