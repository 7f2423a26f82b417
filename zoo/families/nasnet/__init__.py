"""NASNet-A and other cell-based networks built from declared genotypes.

Paper: Zoph, Vasudevan, Shlens, Le, "Learning Transferable Architectures for Scalable Image
Recognition", CVPR 2018, arXiv 1707.07012.  Reference code: TF-slim ``nets/nasnet``
(https://github.com/tensorflow/models/tree/master/research/slim/nets/nasnet), ported to PyTorch by
Cadene's pretrainedmodels (NASNet-A Mobile) and timm (NASNet-A Large).  The same builder also
assembles DARTS genotypes (Liu, Simonyan, Yang, "DARTS: Differentiable Architecture Search",
ICLR 2019, arXiv 1806.09055, https://github.com/quark0/darts).
"""
