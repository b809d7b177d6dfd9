"""PI HOB lists and the TD HOB (FACTS B.1, B.2): decode, memory map, TD HOB lint and digest."""
from decoders.hob.decode import MAX_HOB_LIST_BYTES, MAX_HOBS, decode_hob_list  # noqa: F401
from decoders.hob.memmap import MemoryMap, MemoryRange, memory_map, memory_map_node  # noqa: F401
from decoders.hob.tdhob import lint_td_hob, td_hob_digest  # noqa: F401
