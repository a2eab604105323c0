"""The example models with their canonical inputs (examples/README.md), shared by the tests."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    spec: str
    inputs: list[tuple[int, ...]]


EXAMPLES = [
    Example("examples/lenet.py:LeNet5", [(1, 1, 32, 32)]),
    Example("examples/alexnet.py:AlexNet", [(1, 3, 224, 224)]),
    Example("examples/vgg.py:VGG16", [(1, 3, 224, 224)]),
    Example("examples/resnet.py:ResNet18", [(1, 3, 224, 224)]),
    Example("examples/resnet.py:ResNet34", [(1, 3, 224, 224)]),
    Example("examples/resnet.py:ResNet50", [(1, 3, 224, 224)]),
    Example("examples/mobilenet.py:MobileNetV2", [(1, 3, 224, 224)]),
    Example("examples/unet.py:UNet", [(1, 1, 256, 256)]),
    Example("examples/inception.py:InceptionBlock", [(1, 192, 28, 28)]),
    Example("examples/inception.py:InceptionNet", [(1, 3, 32, 32)]),
    Example("examples/conv3d.py:C3DSmall", [(1, 3, 16, 112, 112)]),
    Example("examples/decoder.py:TransposedDecoder", [(1, 100, 1, 1)]),
    Example("examples/dilated.py:DilatedStack", [(1, 3, 64, 64)]),
    Example("examples/dilated.py:DilatedConv1dStack", [(1, 1, 16000)]),
    Example("examples/densenet.py:DenseNet", [(1, 3, 32, 32)]),
    Example("examples/senet.py:SEBlock", [(1, 64, 16, 16)]),
    Example("examples/senet.py:SENet", [(1, 3, 32, 32)]),
    Example("examples/textbook.py:Conv5x5x3", [(1, 3, 32, 32)]),
    Example("examples/textbook.py:NormalConv", [(1, 8, 32, 32)]),
    Example("examples/textbook.py:DepthwiseSeparable", [(1, 8, 32, 32)]),
    Example("examples/textbook.py:Factorised3x1", [(1, 1, 8, 8)]),
    Example("examples/textbook.py:ThreeConvs3x3", [(1, 8, 32, 32)]),
    Example("examples/textbook.py:Conv7Pool3", [(1, 3, 224, 224)]),
    Example("examples/multi_io.py:TwoInputNet", [(1, 3, 32, 32), (1, 10)]),
    Example("examples/multi_io.py:DictOutputNet", [(1, 3, 32, 32)]),
    Example("examples/multi_io.py:TiedWeights", [(1, 64)]),
]
