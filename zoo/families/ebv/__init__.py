"""ebv: Equiangular Basis Vectors (Shen, Sun, Wei, "Equiangular Basis Vectors", CVPR 2023, arXiv
2303.11637, https://github.com/aassxun/Equiangular-Basis-Vectors): a timm backbone whose
classifier is a fixed set of (near-)orthogonal unit vectors, one per class; an image's logits are
the cosine similarities of its L2-normalized embedding to them, and the prediction is the nearest
basis vector.
"""
