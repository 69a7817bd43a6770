"""Filter banks and the channel attention layer."""
from .attention import ChannelAttention, create_attention
from .filter_banks import (FILTER_BANKS, average, dct, dct_bank, dct_frequencies, get_filter_bank,
                           orthogonal, orthogonal_groups, random)

__all__ = ["ChannelAttention", "create_attention", "FILTER_BANKS", "average", "dct", "dct_bank",
           "dct_frequencies", "get_filter_bank", "orthogonal", "orthogonal_groups", "random"]
