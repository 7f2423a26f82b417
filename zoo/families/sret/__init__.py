"""SReT: Sliced Recursive Transformer.

Zhiqiang Shen, Zechun Liu, Eric Xing, "Sliced Recursive Transformer", ECCV 2022,
arXiv:2111.05297.  Original code: https://github.com/szq0214/SReT (``SReT.py``: sliced models,
``SReT_wo_slice.py``: models without slicing and the fine-tuned high-resolution ones).
"""
