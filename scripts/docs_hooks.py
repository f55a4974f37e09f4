"""MkDocs hooks: the parts of the documentation that come from the code, generated at build time.

- Each command's page (``docs/cmd-<command>.md``) ends with the command's options, read from the click command
  itself by mkdocs-click's generator (placeholders such as ``OUTPUT/<model>`` escaped, examples as code): a page
  cannot name an option the command lacks, or miss one it has, without the build or the docs' tests seeing it.
- ``<!-- every command -->`` becomes the reference of every command of ``cnnviz``.
- ``<!-- every public name -->`` becomes the API reference of every name of ``cnnviz.__all__``, from its docstring
  (mkdocstrings), each under the module that defines it.
"""

from __future__ import annotations

import re
from typing import Any


def _click(command: str, prog: str, depth: int = 0) -> str:
    """A command's reference as markdown, from the click command (mkdocs-click's generator), made fit for a page:
    placeholders such as ``OUTPUT/<model>`` shown, not read as HTML tags, and each ``Examples:`` block (click's
    unwrapped ``\\b`` paragraph) a code block."""
    from mkdocs_click._docs import make_command_docs

    from cnnviz.cli import main

    found = main if command == "main" else main.commands[command]
    lines = list(make_command_docs(prog, found, depth=depth, style="table"))
    out: list[str] = []
    fenced = example = False
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            if example and not line.startswith("  "):
                out.append("```")
                example = False
            if line.strip() == "Examples:":
                out.append(line)
                out.append("")
                out.append("```text")
                example = True
                continue
            line = line[2:] if example else re.sub(r"<(?!br\b)([A-Za-z_][\w-]*)>", r"&lt;\1&gt;", line)
        out.append(line)
    if example:
        out.append("```")
    return "\n".join(out) + "\n"


def _commands() -> list[str]:
    from cnnviz.cli import main

    return sorted(main.commands)


def _api() -> str:
    import cnnviz

    blocks = []
    for name in sorted(cnnviz._PUBLIC, key=str.lower):
        blocks.append(f"::: {cnnviz._PUBLIC[name]}.{name}\n    options:\n      heading_level: 2\n")
    return "\n".join(blocks)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Add the generated parts to a page's markdown before it is rendered."""
    name = page.file.src_uri.rsplit("/", 1)[-1]
    if name.startswith("cmd-") and name[4:-3] in _commands():
        command = name[4:-3]
        markdown += f"\n\n## Options of `cnnviz {command}`\n\n" + _click(command, f"cnnviz {command}", 1)
    if "<!-- every command -->" in markdown:  # the group, then each of its commands (mkdocs-click nests them)
        markdown = markdown.replace("<!-- every command -->", _click("main", "cnnviz", 1))
    if "<!-- every public name -->" in markdown:
        markdown = markdown.replace("<!-- every public name -->", _api())
    return markdown
