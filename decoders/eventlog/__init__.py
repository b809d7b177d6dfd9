"""TCG PC Client and CC (TDX) event logs: decode, replay, quote comparison, tpm2_eventlog YAML.

FACTS B.3/B.4; TCG PC Client PFP 1.05 §10; edk2 UefiTcgPlatform.h, CcMeasurement.h.
"""
from decoders.eventlog.decode import decode_event_log  # noqa: F401
from decoders.eventlog.quote import decode_tdx_quote, quote_expected, quote_rtmrs  # noqa: F401
from decoders.eventlog.replay import Comparison, Replay, check_digests, compare, replay  # noqa: F401
from decoders.eventlog.yaml_export import to_tpm2_eventlog_yaml  # noqa: F401
