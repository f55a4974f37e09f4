"""Parse index selections typed by users: ``0:16``, ``5``, ``1,4,7``, ``::2``."""

from __future__ import annotations

from cnnviz.errors import OptionError


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
    for part in (piece.strip() for piece in text.split(",")):
        try:
            if ":" in part:
                bounds = [int(b) if b.strip() else None for b in part.split(":")]
                if len(bounds) > 3:
                    raise ValueError(part)
                chosen.extend(range(total)[slice(*bounds)])
            else:
                index = int(part)
                if not -total <= index < total:
                    raise OptionError(f"{what} {index} is out of range: there are {total} (0..{total - 1})")
                chosen.append(index % total)
        except ValueError as exc:
            raise OptionError(f"cannot read {what} selection '{text}': use forms like 0:16, 3, 1,4,7 or ::2") from exc
    if not chosen:
        raise OptionError(f"{what} selection '{text}' selects nothing out of {total}")
    return chosen
