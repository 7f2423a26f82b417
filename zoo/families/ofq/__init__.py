"""OFQ: "Oscillation-free Quantization for Low-bit Vision Transformers" (Shih-Yang Liu,
Zechun Liu, Kwang-Ting Cheng; ICML 2023, arXiv 2302.02210); code https://github.com/nbasyl/OFQ.

2/3/4-bit quantized distilled DeiTs: statistical weight quantization (StatsQ, Sec. 4.1), LSQ
activation quantizers, query-key reparameterization (QKR, Sec. 4.3); declared per module by the
spec's ``arch.quantization`` section.  Deployable packed form: ``model.py`` (``load_packed``,
``OFQDeiT.packed_state_dict``); ``zoo info`` summary: ``model.quant_summary``.
"""
