"""TCG PC Client and CC (TDX) event logs: decode, replay, quote comparison, tpm2_eventlog YAML.

TCG PC Client PFP 1.05 §10; Intel TDX Virtual Firmware Design Guide §4.3 (the CC event log);
edk2 MdePkg/Include/IndustryStandard/UefiTcgPlatform.h and MdePkg/Include/Protocol/CcMeasurement.h.
"""
from decoders.eventlog.decode import decode_event_log  # noqa: F401
from decoders.eventlog.quote import decode_tdx_quote, quote_expected, quote_rtmrs  # noqa: F401
from decoders.eventlog.replay import Comparison, Replay, check_digests, compare, replay  # noqa: F401
from decoders.eventlog.yaml_export import to_tpm2_eventlog_yaml  # noqa: F401
