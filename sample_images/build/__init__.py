"""Writers for the sample-image generator: FV/FFS/sections, PE32+, OVMF reset-vector table,
NV variable store, TD HOB and the x86 BCJ encoder. Independent of `decoders/` on purpose."""
