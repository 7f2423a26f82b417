"""BigNAS supernets and the children sliced from them.

- BigNAS: Scaling Up Neural Architecture Search with Big Single-Stage Models, Yu et al., ECCV 2020,
  arXiv:2003.11142 (no official code or weights).
- AttentiveNAS: Improving Neural Architecture Search via Attentive Sampling, Wang et al., CVPR 2021,
  arXiv:2011.09011, https://github.com/facebookresearch/AttentiveNAS (CC-BY-NC 4.0).
- AlphaNet: Improved Training of Supernets with Alpha-Divergence, Wang et al., ICML 2021,
  arXiv:2102.07954, https://github.com/facebookresearch/AlphaNet (CC-BY-NC 4.0).
"""
