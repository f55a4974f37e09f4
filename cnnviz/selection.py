"""Parse index selections typed by users: ``0:16``, ``5``, ``1,4,7``, ``::2``."""

from __future__ import annotations

from cnnviz.errors import OptionError

#: One part of a selection: an index, or the (start, stop, step) of a slice.
Part = int | tuple[int | None, ...]


def check_selection(text: str, what: str = "index") -> list[Part]:
    """Read a selection's parts without knowing how many items there are, so a typo is caught before any model
    is loaded.

    Raises:
        OptionError: the text is not a comma-separated list of indices and ``start:stop:step`` slices.

    >>> check_selection("0:16,5")
    [(0, 16), 5]
    """
    parts: list[Part] = []
    for part in (piece.strip() for piece in text.split(",")):
        try:
            if ":" in part:
                bounds = tuple(int(b) if b.strip() else None for b in part.split(":"))
                if len(bounds) > 3 or (len(bounds) == 3 and bounds[2] == 0):
                    raise ValueError(part)
                parts.append(bounds)
            else:
                parts.append(int(part))
        except ValueError as exc:
            raise OptionError(f"cannot read {what} selection '{text}': use forms like 0:16, 3, 1,4,7 or ::2") from exc
    return parts


def parse_selection(text: str, total: int, what: str = "index") -> list[int]:
    """Indices into ``range(total)`` chosen by a comma-separated list of Python-style indices and slices.

    Raises:
        OptionError: the text is malformed, an index is out of range, or it selects nothing.

    >>> parse_selection("0:4", 10)
    [0, 1, 2, 3]
    >>> parse_selection("1,5,-1", 10)
    [1, 5, 9]
    >>> parse_selection("::4", 10)
    [0, 4, 8]
    """
    chosen: list[int] = []
    for part in check_selection(text, what):
        if isinstance(part, tuple):
            chosen.extend(range(total)[slice(*part)])
        elif -total <= part < total:
            chosen.append(part % total)
        else:
            raise OptionError(f"{what} {part} is out of range: there are {total} (0..{total - 1})")
    if not chosen:
        raise OptionError(f"{what} selection '{text}' selects nothing out of {total}")
    return chosen
