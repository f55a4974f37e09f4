"""Error messages cut down to the line that matters."""

from __future__ import annotations

from cnnviz.errors import brief


def test_brief_drops_keras_full_object_configs_and_caps_length() -> None:
    config = "{'layers': [" + "{'class_name': 'Conv2D'}, " * 5000 + "]}"
    message = f"Could not locate class 'Functional'. Make sure ... Full object config: {config}"

    assert brief(ValueError(message)) == "Could not locate class 'Functional'. Make sure ..."
    assert len(brief(ValueError("x" * 5000))) == 400
    assert brief(ValueError("")) == "ValueError"
