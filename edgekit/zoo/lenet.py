"""LeNet-5 (LeCun et al., 1998) for 32×32 grayscale input, ~61.7 k parameters.

The classic layer sizes, with ReLU and max-pooling in place of the original
scaled tanh and trainable sub-sampling (they train faster and quantize better).
"""

from __future__ import annotations


def lenet5(num_classes: int = 10, in_channels: int = 1):
    """Build LeNet-5: conv5(6) → pool → conv5(16) → pool → fc120 → fc84 → fc(num_classes)."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(in_channels, 6, kernel_size=5),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, kernel_size=5),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.ReLU(inplace=True),
        nn.Linear(120, 84),
        nn.ReLU(inplace=True),
        nn.Linear(84, num_classes),
    )
