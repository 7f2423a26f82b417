"""timm_arch: models that *are* a timm built-in architecture (named in the spec, with its
constructor arguments as data), carrying their own paper, data config and weights records.

Used for weights trained by other methods on standard architectures, e.g. MEAL V2 ("MEAL V2:
Boosting Vanilla ResNet-50 to 80%+ Top-1 Accuracy on ImageNet without Tricks", Shen & Savvides,
arXiv 2009.08453, https://github.com/szq0214/MEAL-V2), whose students are timm models.
"""
