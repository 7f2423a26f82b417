"""KArAt: Vision Transformers with Fourier Kolmogorov-Arnold Attention.

Paper: S. Maity, K. Hitsman, X. Li, A. Dutta, "Kolmogorov-Arnold Attention: Is Learnable
Attention Better For Vision Transformers?", arXiv:2503.10632 (v3).  Project page:
https://subhajitmaity.me/KArAt.  zoo's implementation is written from the paper (no upstream code
was available to it); ``model.py`` documents every reading of the paper it relies on.
"""
