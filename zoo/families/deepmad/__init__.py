"""DeepMAD: Mathematical Architecture Design for Deep Convolutional Neural Network.

Xuan Shen, Yaohua Wang, Ming Lin, Yilun Huang, Hao Tang, Xiuyu Sun, Yanzhi Wang; CVPR 2023,
arXiv 2303.02165.  Upstream code: https://github.com/alibaba/lightweight-neural-architecture-search
("TinyNAS"; builder in ``tinynas/deploy/cnnnet``, entropy score in ``tinynas/scores``).

The family holds the published DeepMAD CNNs as specs (``specs/deepmad.yaml``), their builder
(``model.py``), the entropy / effectiveness scores (``scores.py``, no torch) and the designer
that turns budgets into new specs (``designer.py``, ``zoo design deepmad``).
"""
