"""Single-Path NAS: "Single-Path NAS: Designing Hardware-Efficient ConvNets in less than 4 Hours"
(Stamoulis, Ding, Wang, Lymberopoulos, Priyantha, Liu, Marculescu; ECML-PKDD 2019,
arXiv 1904.02877).  Original code (TensorFlow/TPU): https://github.com/dstamoulis/single-path-nas;
the searched network as ported to PyTorch by timm (``spnasnet_100``).
"""
