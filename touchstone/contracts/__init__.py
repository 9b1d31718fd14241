"""Versioned wire contracts: raw input batches, feature windows, alerts (see docs/contracts.md)."""

from touchstone.contracts.alerts import ALERT_SCHEMA, Alert, Level, Reason, decode_alert, encode_alert
from touchstone.contracts.features import FEATURES_SCHEMA, FeatureWindow, decode_window, encode_window
from touchstone.contracts.raw import (
    PRIVACY_MODES,
    RAW_SCHEMA,
    Button,
    KeyEvents,
    Limits,
    MouseEvents,
    MouseKind,
    RawBatch,
    decode_raw,
    encode_raw,
)

__all__ = [
    "ALERT_SCHEMA",
    "FEATURES_SCHEMA",
    "PRIVACY_MODES",
    "RAW_SCHEMA",
    "Alert",
    "Button",
    "FeatureWindow",
    "KeyEvents",
    "Level",
    "Limits",
    "MouseEvents",
    "MouseKind",
    "RawBatch",
    "Reason",
    "decode_alert",
    "decode_raw",
    "decode_window",
    "encode_alert",
    "encode_raw",
    "encode_window",
]
