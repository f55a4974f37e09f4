"""Settings declared once, by the method or metric that reads them.

A method or metric class lists its :class:`Setting` s (name, kind, default, range, help) in ``settings``; the
:class:`Family` it is registered in (the attribution methods, the metrics) derives everything else from those
declarations: which settings exist, which entries read each one, the refusal of a setting that no chosen entry
reads, and the command line's options (:mod:`cnnviz.cli.settings`). A setting shared by several entries of a family
(the baseline, the seed: an entry is seeded where it lists ``SEED``) is one declaration that each of them lists.
:class:`Settings` holds the values a run was given for one family, each checked by its declaration; the rest are the
declared defaults.

>>> STEPS = Setting("steps", int, 8, "steps", minimum=1)
>>> class Demo:
...     name, settings = "demo", (STEPS,)
>>> family = Family("method", "methods"); _ = family.add(Demo)
>>> class DemoSettings(Settings):
...     family = family
>>> DemoSettings(steps=3).steps, DemoSettings().steps, DemoSettings().given()
(3, 8, [])
>>> family.check(["demo"], ["steps"])
('demo',)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from cnnviz.errors import OptionError


def quoted(name: str) -> str:
    """How the library names a setting in its messages (the command line turns it into the flag)."""
    return f"`{name}`"


@dataclass(frozen=True)
class Setting:
    """One setting of a method or metric.

    Attributes:
        name: its Python name (the flag is ``--name`` with dashes).
        kind: ``int``, ``float`` or ``str``.
        default: the value where it is not given; None where the reader works it out (``shown`` says how).
        help: what it does, for ``--help`` (the readers' names and the default are added there).
        minimum: the smallest value allowed (excluded where ``above``).
        maximum: the largest value allowed (excluded where ``below``).
        names: for a value that is one of these names or (``kind`` float) a number.
        shown: how ``--help`` shows a default the reader works out.
    """

    name: str
    kind: type
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    above: bool = False
    below: bool = False
    names: tuple[str, ...] = ()
    shown: str = ""

    @property
    def default_text(self) -> str:
        """The default as ``--help`` says it."""
        return self.shown or str(self.default)

    def checked(self, value: Any) -> Any:
        """``value`` as this setting takes it; :class:`OptionError` naming the setting where it cannot be."""
        if self.names and (value in self.names):
            return str(value)
        unknown = f"unknown {self.name} '{value}'; choose one of: {', '.join(self.names)}"
        if self.names and self.kind is str:
            raise OptionError(unknown)
        try:
            converted = self.kind(value)
            if self.kind is int and isinstance(value, float) and value != converted:
                raise ValueError
        except (TypeError, ValueError):
            if self.names:
                raise OptionError(f"{unknown}, or a number") from None
            raise OptionError(f"{quoted(self.name)} takes a {self.kind.__name__}; got '{value}'") from None
        low_out = self.minimum is not None and (converted <= self.minimum if self.above else converted < self.minimum)
        high_out = self.maximum is not None and (converted >= self.maximum if self.below else converted > self.maximum)
        if low_out or high_out:
            raise OptionError(f"{quoted(self.name)} must be {self.range_text()}; got {value}")
        return converted

    def range_text(self) -> str:
        """The values allowed, in words."""
        parts = []
        if self.minimum is not None:
            parts.append(f"{'above' if self.above else 'at least'} {self.minimum:g}")
        if self.maximum is not None:
            parts.append(f"{'below' if self.below else 'at most'} {self.maximum:g}")
        return " and ".join(parts) or "any value"


class Family(dict[str, Any]):
    """The entries of one kind (attribution methods, metrics) by name, in the order they were added, and what their
    declared settings give: each entry class has ``name`` and ``settings`` (a tuple of :class:`Setting`).

    Args:
        kind: what one entry is called (``method``).
        plural: what several are called (``methods``).
    """

    def __init__(self, kind: str, plural: str) -> None:
        super().__init__()
        self.kind = kind
        self.plural = plural

    def add(self, entry: Any) -> Any:
        """Register ``entry`` (usable as a class decorator); a setting of a name already declared by another entry
        must be the same declaration."""
        for setting in entry.settings:
            known = self.declared().get(setting.name)
            if known is not None and known != setting:
                raise TypeError(
                    f"{entry.name} declares a setting '{setting.name}' unlike the one other {self.plural} read; "
                    "share one declaration, or name it differently"
                )
        self[entry.name] = entry
        return entry

    def declared(self) -> dict[str, Setting]:
        """Every setting of the family by name, in the order the entries declare them."""
        found: dict[str, Setting] = {}
        for entry in self.values():
            for setting in entry.settings:
                found.setdefault(setting.name, setting)
        return found

    def readers(self, name: str) -> list[str]:
        """The entries that read setting ``name``."""
        return [entry.name for entry in self.values() if any(s.name == name for s in entry.settings)]

    def check(
        self, names: Sequence[str], given: Iterable[str] = (), spell: Callable[[str], str] = quoted
    ) -> tuple[str, ...]:
        """The entries named, each once in the order given; :class:`OptionError` for none, an unknown one, or a
        setting in ``given`` that none of them reads (``spell`` names a setting in the message)."""
        chosen = tuple(dict.fromkeys(names))
        if not chosen:
            raise OptionError(f"choose at least one {self.kind}: {', '.join(self)}")
        unknown = [name for name in chosen if name not in self]
        if unknown:
            raise OptionError(f"unknown {self.kind} '{unknown[0]}'; choose from: {', '.join(self)}")
        self.refuse_unread(chosen, given, spell)
        return chosen

    def refuse_unread(self, chosen: Sequence[str], given: Iterable[str], spell: Callable[[str], str] = quoted) -> None:
        """:class:`OptionError` for the first setting in ``given`` that none of the entries ``chosen`` reads."""
        for name in given:
            readers = self.readers(name)
            if not any(reader in chosen for reader in readers):
                raise OptionError(
                    f"{spell(name)} is a setting of {' or '.join(readers)}, which is not among the {self.plural} chosen"
                )


class Settings:
    """The values given to one family's settings (:attr:`family`); every other setting has its declared default.

    Made with keywords, one per setting (None: not given); each value is checked by its declaration. A setting
    reads as an attribute (``settings.steps``). Frozen, comparable and picklable, as options are.

    Raises:
        OptionError: a setting the family does not declare, or a value its declaration refuses.
    """

    family: ClassVar[Family]

    def __init__(self, **values: Any) -> None:
        declared = self.family.declared()
        given: dict[str, Any] = {}
        for name, value in values.items():
            if name not in declared:
                raise OptionError(
                    f"no {self.family.kind} has a setting `{name}`; the {self.family.plural}' settings are: "
                    f"{', '.join(declared) or 'none'}"
                )
            if value is not None:
                given[name] = declared[name].checked(value)
        object.__setattr__(self, "_given", given)

    def given(self) -> list[str]:
        """The names of the settings given."""
        return list(self._given)

    def value(self, name: str) -> Any:
        """Setting ``name``: as given, else its declared default."""
        given = self.__dict__["_given"]
        if name in given:
            return given[name]
        declared = self.family.declared()
        if name not in declared:
            raise AttributeError(f"no {self.family.kind} has a setting '{name}'")
        return declared[name].default

    def only(self, names: Iterable[str]) -> Self:
        """The same kind of settings with only those of ``names`` that were given (what one entry reads)."""
        keep = set(names)
        return type(self)(**{name: value for name, value in self._given.items() if name in keep})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.value(name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._given == other.__dict__["_given"]

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self._given.items(), key=lambda item: item[0]))))

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={value!r}" for name, value in self._given.items())
        return f"{type(self).__name__}({values})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuilt, (type(self), dict(self._given)))


def _rebuilt(kind: type[Settings], given: dict[str, Any]) -> Settings:
    return kind(**given)


__all__ = ["Family", "Setting", "Settings", "quoted"]
