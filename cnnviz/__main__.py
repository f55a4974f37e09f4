"""``python -m cnnviz``: the ``cnnviz`` command, for environments without the console script on PATH."""

from cnnviz.cli import run

if __name__ == "__main__":
    run()
