"""DCLS: Dilated Convolution with Learnable Spacings.

Ismail Khalfaoui-Hassani, Thomas Pellegrini, Timothée Masquelier; ICLR 2023, arXiv 2112.03740.
Upstream code: https://github.com/K-H-Ismail/ConvNeXt-dcls (the ConvNeXt-dcls models,
``models/convnext_dcls.py``) and the ``dcls`` package (``Dcls2d`` and its kernel construction
``ConstructKernel2d``),
https://github.com/K-H-Ismail/Dilated-Convolution-with-Learnable-Spacings-PyTorch.

ConvNeXt-T/S/B-dcls are ConvNeXts whose 7x7 depthwise convolutions are replaced by depthwise
DCLS convolutions: ``kernel_count`` weights per channel placed at learnable, real-valued
positions inside a 17x17 kernel by bilinear interpolation, the positions shared by the blocks
of a stage.
"""
