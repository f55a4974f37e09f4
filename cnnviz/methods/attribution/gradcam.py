"""Grad-CAM (Selvaraju et al. 2017) and Grad-CAM++ (Chattopadhay et al. 2018) as attribution methods: the maps
of a conv layer weighed by the class score's gradient (:func:`cnnviz.methods.gradcam.cam`)."""

from __future__ import annotations

from cnnviz.methods.attribution.base import Attributed, Attribution, Batch, upsampled
from cnnviz.methods.gradcam import cam
from cnnviz.methods.target import TargetModel


class GradCamMethod(Attribution):
    """Each channel weighted by the mean of the score's gradient over its map; the ReLU of the sum."""

    name = "gradcam"
    title = "Grad-CAM"
    needs_layer = True
    needs_gradient = True

    def explain(self, model: TargetModel, batch: Batch) -> Attributed:  # noqa: D102
        assert batch.layer is not None and batch.layer.grads is not None
        rows, cols = batch.inputs.shape[1:3]
        return upsampled(cam(batch.layer.maps, batch.layer.grads, self.name), rows, cols)


class GradCamPlusPlus(GradCamMethod):
    """Each position's positive gradient weighted by Chattopadhay et al.'s closed-form alpha."""

    name = "gradcam++"
    title = "Grad-CAM++"
