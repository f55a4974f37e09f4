"""The documentation cannot drift from the code: every ``cnnviz`` command the pages show names only options its
command has, those that run on the bundled model and the repository's files are run, the site builds with
``mkdocs build --strict``, every option of every command and every public name appear in it, and its search works
from disk in Chromium."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cnnviz.cli import main
from tests.conftest import CHROMIUM, CHROMIUM_FLAGS, ROOT, needs_chromium

PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
#: Options whose value is a file the command writes: pointed into the test's folder.
WRITES = ("-o", "--output", "--json", "--csv")


def shown_commands() -> list[tuple[str, int, list[str]]]:
    """Every ``cnnviz ...`` command in the pages' code blocks (indented or fenced), as (page, line, arguments
    after ``cnnviz``), comments cut off."""
    found = []
    for page in PAGES:
        fenced = False
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip().startswith("```"):
                fenced = not fenced
                continue
            text = line.strip().removeprefix("$ ")
            if not (fenced or line.startswith("    ")) or not text.startswith("cnnviz "):
                continue
            words = shlex.split(text, comments=True)
            found.append((page.name, number, words[1:]))
    return found


def _command(words: list[str]) -> tuple[click.Command, list[str]]:
    """The click command a command line runs, and its own arguments (after group options such as --backend)."""
    rest = list(words)
    while rest and rest[0].startswith("-"):
        rest = rest[2:] if rest[0] in ("--backend",) else rest[1:]
    return main.commands[rest[0]], rest[1:]


def _params(command: click.Command) -> list[click.Parameter]:
    """A command's parameters as ``--help`` lists them (a settings command adds its methods' settings there). The
    context takes the command's own settings: click caches the help option of the first context it sees."""
    return command.get_params(click.Context(command, **command.context_settings))


def _options(command: click.Command) -> set[str]:
    return {name for param in _params(command) for name in (*param.opts, *param.secondary_opts)}


def test_the_pages_show_commands() -> None:
    commands = shown_commands()
    assert len(commands) > 60
    assert {_command(words)[0].name for _, _, words in commands} >= set(main.commands) - {"animate"}


def test_every_option_a_page_names_is_an_option_of_its_command() -> None:
    wrong = []
    for page, line, words in shown_commands():
        command, arguments = _command(words)
        known = _options(command) | {"-h", "--help"}
        for word in arguments:
            option = word.split("=", 1)[0]
            if option.startswith("-") and not re.fullmatch(r"-\d.*", option) and option not in known:
                wrong.append(f"{page}:{line}: cnnviz {command.name} has no option {option}")
    assert not wrong, "\n".join(wrong)


def _runnable(words: list[str]) -> bool:
    """A command that runs here, offline and quickly: on the bundled model, on the repository's own files."""
    command, arguments = _command(words)
    if command.name in ("explore", "animate") or "--engine" in arguments or "--model" not in arguments:
        return False
    if arguments[arguments.index("--model") + 1] != "shapes":
        return False
    previous = ""
    for word in arguments:
        path_like = not word.startswith("-") and ("/" in word or "." in word) and previous not in WRITES
        if path_like and not re.fullmatch(r"[\d.,:x]+", word) and not (ROOT / word).exists():
            return False
        previous = word
    return True


@pytest.mark.slow
def test_the_commands_the_pages_show_on_the_bundled_model_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each command once (the README and a page may show the same), its outputs in the test's folder, read at 64 px
    where it gives no --size (what is checked is that the command, as written, runs)."""
    # the pages' paths are the repository's (sample_images/...): made absolute, and the commands run elsewhere (a
    # folder named like the bundled model in the repository's root would otherwise be read for --model shapes)
    monkeypatch.chdir(tmp_path)
    seen: set[tuple[str, ...]] = set()
    for page, line, words in shown_commands():
        if not _runnable(words) or tuple(words) in seen:
            continue
        seen.add(tuple(words))
        folder = tmp_path / f"{page}-{line}"
        arguments, previous = [], ""
        for word in words:
            if previous in WRITES:
                word = str(folder / Path(word).name)
            elif not word.startswith("-") and "/" in word and (ROOT / word).exists():
                word = str(ROOT / word)
            arguments.append(word)
            previous = word
        if not any(word in ("-o", "--output") for word in words) and _command(words)[0].name != "layers":
            arguments += ["-o", str(folder)]
        reads_images = any(param.name == "images" for param in _command(words)[0].params)
        if "--size" not in words and reads_images:
            arguments += ["--size", "64"]
        if arguments[0] == "--backend":  # a backend is chosen before Keras is imported: a process of its own
            ran = subprocess.run([sys.executable, "-m", "cnnviz", *arguments], capture_output=True, text=True)
            code, output = ran.returncode, ran.stdout + ran.stderr
        else:
            result = CliRunner().invoke(main, arguments)
            code, output = result.exit_code, result.output
        assert code == 0, f"{page}:{line}: cnnviz {' '.join(words)}\n{output}"
    assert len(seen) >= 12


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    pytest.importorskip("mkdocs", reason="the docs extra: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return out


def test_the_site_has_a_page_per_command_with_every_option_and_every_public_name(site: Path) -> None:
    import cnnviz

    text = {page.name: page.read_text(encoding="utf-8") for page in site.glob("*.html")}
    missing = []
    for name, command in main.commands.items():
        page = text.get(f"cmd-{name}.html")
        if page is None:
            missing.append(f"no page for {name}")
            continue
        for param in _params(command):
            for option in (*param.opts, *param.secondary_opts):
                if option.startswith("-") and option not in page and option != "--help":
                    missing.append(f"cmd-{name}.html lacks {option}")
    api = text["reference-api.html"]
    missing += [
        f"the API reference lacks {name}" for name in cnnviz.__all__ if name != "__version__" and name not in api
    ]
    assert not missing, "\n".join(missing)


@needs_chromium
def test_the_built_site_opens_from_disk_and_its_search_finds_precision(site: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})  # the search box in the header
        page.goto((site / "getting-started.html").as_uri())
        page.wait_for_load_state("load")
        pictures = page.eval_on_selector_all("article img", "all => all.map(img => img.naturalWidth)")
        assert pictures and all(width > 0 for width in pictures)
        page.click("input[data-md-component='search-query']")
        page.keyboard.type("--precision")
        page.wait_for_selector(".md-search-result__item", timeout=30_000)
        results = page.eval_on_selector_all(".md-search-result__item a", "all => all.map(a => a.href)")
        assert any("guide-precision.html" in href for href in results), results
        browser.close()


def test_the_pictures_the_pages_show_are_the_ones_the_docs_script_makes() -> None:
    script = (ROOT / "scripts" / "make_docs_images.py").read_text(encoding="utf-8")
    shown = {
        name
        for page in PAGES
        for name in re.findall(r"\]\((?:docs/)?([\w.-]+\.(?:png|gif))\)", page.read_text(encoding="utf-8"))
    }
    assert len(shown) >= 12
    made = set(re.findall(r'out / f?"([\w.{}-]+\.(?:png|gif))"', script))
    patterns = [re.compile(re.sub(r"\\\{[^}]*\\\}", r"[\\w.-]+", re.escape(name)) + "$") for name in made]
    unmade = [name for name in shown if not any(pattern.match(name) for pattern in patterns)]
    assert not unmade, f"pictures no step of scripts/make_docs_images.py writes: {unmade}"
    assert all((ROOT / "docs" / name).is_file() for name in shown)
