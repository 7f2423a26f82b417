"""gcr: Grassmann Class Representation ("Get the Best of Both Worlds: Improving Accuracy and
Transferability by Grassmann Class Representation", Haoqi Wang, Zhizhong Li, Wayne Zhang, ICCV
2023, arXiv 2308.01547, https://github.com/innerlee/GCR).

Each class is a k-dimensional linear subspace of the feature space (a point on the Grassmann
manifold); the logit of class i is the norm of the projection of the normalized feature onto it.
The backbones are timm architectures (ResNet-D, VGG-BN, Swin, DeiT III) that compute what the
original mmpretrain backbones compute; the subspace head is :class:`GrassmannClassHead`.  The
vector-class baselines released with the paper are plain timm models (family ``timm_arch``,
specs/gcr.yaml).
"""
