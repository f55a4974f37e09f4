"""``cnnviz explore``: a local web app over one model, its images and every view cnnviz draws of them."""

from cnnviz.explorer.options import ExploreOptions
from cnnviz.explorer.serve import Server, explore

__all__ = ["ExploreOptions", "Server", "explore"]
