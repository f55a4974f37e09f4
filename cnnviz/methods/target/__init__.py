"""What an attribution explains, and the model that computes it: the shared part of every attribution method.

An attribution method (Grad-CAM, Score-CAM, Integrated Gradients, occlusion, ...) asks the same few things of a
model: the class scores of a batch and which class each image is explained for; a conv layer's maps, with or
without the score's gradient with respect to them; the score's gradient with respect to the input; and, for the
methods that perturb their input, the class's probability for many perturbed copies of an image.
:class:`TargetModel` answers all of them from cnnviz's replay of the model (:mod:`cnnviz.models.graph`), so a
layer inside a nested base (``vgg16/block5_conv3``), a model of several inputs or outputs, a regression or a
segmentation head, bfloat16 and the oneDNN-safe replay are handled once, here, for every method.

The score differentiated is the class's *pre-softmax* value where the graph has one: a softmax saturates, and
its gradient for a confident class is close to zero everywhere. The methods that weigh perturbed inputs read the
class's *probability* instead (the model's softmax output, or the softmax of its scores where it ends without
one), as their authors define them.

One module per idea: :mod:`.values` (what is explained, as values), :mod:`.replay` (the replay's surgery),
:mod:`.scores` (reading the explained score), :mod:`.model` (:class:`TargetModel`: running it in batches).
"""

from cnnviz.methods.target.model import TargetModel
from cnnviz.methods.target.replay import class_scores
from cnnviz.methods.target.values import PERTURBED_BATCH, VALUE_KINDS, LayerPass, Scored, Target, checked_region

__all__ = [
    "PERTURBED_BATCH",
    "VALUE_KINDS",
    "LayerPass",
    "Scored",
    "Target",
    "TargetModel",
    "checked_region",
    "class_scores",
]
