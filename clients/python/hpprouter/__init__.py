"""hpprouter: the Python client of hpp-engine (see hpprouter.client)."""

from .client import (
    OPS,
    PROTOCOL_VERSION,
    Client,
    EngineError,
    Error,
    ProtocolError,
    Timeout,
    decode_reply,
    encode_request,
    read_key,
)

__version__ = "0.1.0"
__all__ = [
    "OPS",
    "PROTOCOL_VERSION",
    "Client",
    "EngineError",
    "Error",
    "ProtocolError",
    "Timeout",
    "decode_reply",
    "encode_request",
    "read_key",
]
