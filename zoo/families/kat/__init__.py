"""KAT: "Kolmogorov-Arnold Transformer" (Xingyi Yang, Xinchao Wang, ICLR 2025, arXiv 2409.10594).

A ViT whose channel-mixing MLP is a group-rational KAN (GR-KAN).  Upstream code:
https://github.com/Adamdad/kat (MIT, ``katransformer.py``); the rational's CUDA/Triton kernel:
https://github.com/Adamdad/rational_kat_cu (``kat_rational``).
"""
