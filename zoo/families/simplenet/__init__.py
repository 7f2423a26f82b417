"""SimpleNet: "Lets Keep it simple, Using simple architectures to outperform deeper and more
complex architectures" (Hasanpour et al., arXiv 1608.06037).  Faithful to the official PyTorch
code, github.com/Coderx7/SimpleNet_Pytorch (layout after the 2023 1x1-padding fix)."""
