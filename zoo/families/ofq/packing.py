"""Bit packing of integer weight codes: ``b`` bits per value, 2 <= b <= 8, into a uint8 stream.

Value ``i`` occupies bits ``[i*b, (i+1)*b)`` of the stream, least significant bit first (bit
``j`` of the stream is bit ``j % 8`` of byte ``j // 8``), so a tensor of ``n`` codes takes
``ceil(n * b / 8)`` bytes: a 2-bit weight costs a quarter byte, a 3-bit one three eighths.
Codes are stored with an offset (``k - k_min``), so they are unsigned.
"""
import torch

__all__ = ["pack_bits", "unpack_bits", "packed_numel"]

_CHUNK = 1 << 18  # values per step (a multiple of 8): bounds the temporaries to a few MB


def packed_numel(n: int, bits: int) -> int:
    """Bytes holding ``n`` values of ``bits`` bits."""
    return (n * bits + 7) // 8


def _check(bits: int) -> None:
    if not isinstance(bits, int) or not 1 <= bits <= 8:
        raise ValueError(f"bit width must be an integer in 1..8, got {bits!r}")


def pack_bits(values: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack non-negative integers ``< 2**bits`` (any shape, flattened) into a uint8 tensor."""
    _check(bits)
    flat = values.detach().reshape(-1).to(device="cpu", dtype=torch.int64)
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= 2 ** bits):
        raise ValueError(f"codes out of the {bits}-bit range [0, {2 ** bits - 1}]: "
                         f"min {int(flat.min())}, max {int(flat.max())}")
    if bits == 8:
        return flat.to(torch.uint8)
    n = flat.numel()
    out = torch.empty(packed_numel(n, bits), dtype=torch.uint8)
    shifts = torch.arange(bits, dtype=torch.int64)
    place = 1 << torch.arange(8, dtype=torch.int64)
    for start in range(0, n, _CHUNK):  # _CHUNK is a multiple of 8: chunks end on byte borders
        chunk = flat[start:start + _CHUNK]
        stream = ((chunk.unsqueeze(1) >> shifts) & 1).reshape(-1)
        pad = (-stream.numel()) % 8
        if pad:
            stream = torch.cat([stream, stream.new_zeros(pad)])
        first = start * bits // 8
        out[first:first + stream.numel() // 8] = (stream.view(-1, 8) * place).sum(dim=1).to(torch.uint8)
    return out


def unpack_bits(packed: torch.Tensor, bits: int, n: int, chunk_size: int = _CHUNK) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: the first ``n`` values, as int64 on ``packed``'s device.
    (TorchScript compiles it: a scripted packed model unpacks its weights in the graph.)"""
    if not torch.jit.is_scripting():
        _check(bits)
        if packed.dtype != torch.uint8 or packed.ndim != 1:
            raise ValueError(f"packed codes must be a 1-d uint8 tensor, got {packed.dtype} "
                             f"{tuple(packed.shape)}")
        if packed.numel() != packed_numel(n, bits):
            raise ValueError(f"{n} values of {bits} bits take {packed_numel(n, bits)} bytes, "
                             f"got {packed.numel()}")
    if bits == 8:
        return packed.to(torch.int64)
    out = torch.empty(n, dtype=torch.int64, device=packed.device)
    shifts = torch.arange(8, dtype=torch.uint8, device=packed.device)
    place = torch.pow(2, torch.arange(bits, dtype=torch.int64, device=packed.device))
    for start in range(0, n, chunk_size):
        m = min(chunk_size, n - start)
        first = start * bits // 8
        chunk = packed[first:first + packed_numel(m, bits)]
        stream = ((chunk.unsqueeze(1) >> shifts) & 1).reshape(-1)[: m * bits]
        out[start:start + m] = (stream.view(m, bits).to(torch.int64) * place).sum(dim=1)
    return out
