"""The keras.applications architectures cnnviz knows by name, and how each expects its input."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Application:
    """A keras.applications architecture.

    Attributes:
        name: the name users type (``vgg16``).
        constructor: the class-like function in ``keras.applications`` (``VGG16``).
        module: the submodule of ``keras.applications`` that holds its ``preprocess_input``.
        size: the square input size its ImageNet weights were trained at.
        preprocess: a short description of what that ``preprocess_input`` does.
    """

    name: str
    constructor: str
    module: str
    size: int
    preprocess: str


_CAFFE = "caffe: RGB->BGR, ImageNet mean subtracted"
_TF = "tf: scaled to -1..1"
_TORCH = "torch: scaled to 0..1, ImageNet mean/std"
_BUILTIN = "none: the model rescales its own input"


def _family(constructors: list[str], module: str, size: int, preprocess: str) -> list[Application]:
    return [Application(c.lower(), c, module, size, preprocess) for c in constructors]


APPLICATIONS: dict[str, Application] = {
    app.name: app
    for app in [
        *_family(["VGG16"], "vgg16", 224, _CAFFE),
        *_family(["VGG19"], "vgg19", 224, _CAFFE),
        *_family(["ResNet50", "ResNet101", "ResNet152"], "resnet", 224, _CAFFE),
        *_family(["ResNet50V2", "ResNet101V2", "ResNet152V2"], "resnet_v2", 224, _TF),
        *_family(["MobileNet"], "mobilenet", 224, _TF),
        *_family(["MobileNetV2"], "mobilenet_v2", 224, _TF),
        *_family(["MobileNetV3Small", "MobileNetV3Large"], "mobilenet_v3", 224, _BUILTIN),
        *_family(["InceptionV3"], "inception_v3", 299, _TF),
        *_family(["InceptionResNetV2"], "inception_resnet_v2", 299, _TF),
        *_family(["Xception"], "xception", 299, _TF),
        *_family(["NASNetMobile"], "nasnet", 224, _TF),
        *_family(["NASNetLarge"], "nasnet", 331, _TF),
        *_family(["DenseNet121", "DenseNet169", "DenseNet201"], "densenet", 224, _TORCH),
        *_family(["EfficientNetB0"], "efficientnet", 224, _BUILTIN),
        *_family(["EfficientNetB1"], "efficientnet", 240, _BUILTIN),
        *_family(["EfficientNetB2"], "efficientnet", 260, _BUILTIN),
        *_family(["EfficientNetB3"], "efficientnet", 300, _BUILTIN),
        *_family(["EfficientNetB4"], "efficientnet", 380, _BUILTIN),
        *_family(["EfficientNetB5"], "efficientnet", 456, _BUILTIN),
        *_family(["EfficientNetB6"], "efficientnet", 528, _BUILTIN),
        *_family(["EfficientNetB7"], "efficientnet", 600, _BUILTIN),
        *_family(["EfficientNetV2B0"], "efficientnet_v2", 224, _BUILTIN),
        *_family(["EfficientNetV2B1"], "efficientnet_v2", 240, _BUILTIN),
        *_family(["EfficientNetV2B2"], "efficientnet_v2", 260, _BUILTIN),
        *_family(["EfficientNetV2B3"], "efficientnet_v2", 300, _BUILTIN),
        *_family(["EfficientNetV2S"], "efficientnet_v2", 384, _BUILTIN),
        *_family(["EfficientNetV2M", "EfficientNetV2L"], "efficientnet_v2", 480, _BUILTIN),
        *_family(
            [
                "ConvNeXtTiny",
                "ConvNeXtSmall",
                "ConvNeXtBase",
                "ConvNeXtLarge",
                "ConvNeXtXLarge",
            ],
            "convnext",
            224,
            _BUILTIN,
        ),
    ]
}


# Keras names both NASNet models plain "NASNet"; they share a preprocess_input.
_ALIASES = {"nasnet": "nasnetmobile"}


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def find_application(name: str) -> Application | None:
    """Return the application a user-typed name or a Keras model name refers to, or None.

    Keras names its models ``vgg16``, ``mobilenetv2_1.00_224``, ``efficientnetv2-b0``, ``inception_v3``...; the
    longest registered name that the squashed model name starts with wins, so ``mobilenetv2_1.00_224`` is
    MobileNetV2 and not MobileNet.

    >>> find_application("mobilenetv2_1.00_224").constructor
    'MobileNetV2'
    >>> find_application("my_classifier") is None
    True
    """
    squashed = _ALIASES.get(_squash(name), _squash(name))
    matches = [app for key, app in APPLICATIONS.items() if squashed.startswith(key)]
    return max(matches, key=lambda app: len(app.name), default=None)
