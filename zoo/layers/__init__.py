"""Building blocks shared by several families (TF-SAME padding, quantizers, ...)."""
