"""Selections typed by users, at their boundaries."""

from __future__ import annotations

import pytest

from cnnviz import OptionError
from cnnviz.selection import check_selection, parse_selection


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", [0]),
        ("9", [9]),  # the last of ten
        ("-1", [9]),
        ("-10", [0]),  # the first, counted from the end
        ("0:3,8:", [0, 1, 2, 8, 9]),
        ("::-4", [9, 5, 1]),
        ("2:5:2", [2, 4]),
    ],
)
def test_indices_and_slices_select_what_python_would(text: str, expected: list[int]) -> None:
    assert parse_selection(text, 10) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10", "filter 10 is out of range: there are 10 (0..9)"),  # one past the last must not wrap to 0
        ("-11", "filter -11 is out of range: there are 10 (0..9)"),
        ("10:20", "filter selection '10:20' selects nothing out of 10"),
        ("0:4:1:2", "cannot read filter selection '0:4:1:2': use forms like 0:16, 3, 1,4,7 or ::2"),
        ("::0", "cannot read filter selection '::0': use forms like 0:16, 3, 1,4,7 or ::2"),
        ("a", "cannot read filter selection 'a': use forms like 0:16, 3, 1,4,7 or ::2"),
    ],
)
def test_bad_selections_say_why(text: str, message: str) -> None:
    with pytest.raises(OptionError) as caught:
        parse_selection(text, 10, "filter")
    assert str(caught.value) == message


def test_the_form_is_checked_without_knowing_the_count() -> None:
    assert check_selection("3, 0:16, ::2, 1:9:3") == [3, (0, 16), (None, None, 2), (1, 9, 3)]
    with pytest.raises(OptionError, match="cannot read channel selection '1;2'"):
        check_selection("1;2", "channel")
