"""The continuation tokens users see: the real provider's, base64 of the next keys as JSON.

Every task hub hands out tokens of this shape, so clients and tools that look inside them (or
send back garbage) get what the real provider gives them (docs/host-behaviour.md).
"""

from __future__ import annotations

import base64
import binascii
import json

from emulator.taskhub._interface import InvalidContinuationToken

#: The token of the last page: base64 of ``null``.
END_CONTINUATION = base64.b64encode(b"null").decode("ascii")


def encode_continuation_token(token: dict[str, str]) -> str:
    """The provider's opaque token: base64 of the table token's JSON."""
    text = json.dumps(
        {
            "NextPartitionKey": token.get("PartitionKey"),
            "NextRowKey": token.get("RowKey"),
            "NextTableName": None,
            "TargetLocation": 0,
        },
        separators=(",", ":"),
    )
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def decode_continuation_token(text: str | None) -> dict[str, str] | None:
    """The table token of a user's continuation token; None to start over."""
    if not text:
        return None
    try:
        raw = json.loads(base64.b64decode(text.strip(), validate=True).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidContinuationToken(
            "The input is not a valid Base-64 string as it contains a non-base 64 character, more than two "
            "padding characters, or an illegal character among the padding characters.",
            "System.FormatException",
        ) from None
    except ValueError as exc:
        raise InvalidContinuationToken(
            f"Invalid continuation token: {exc}", "Newtonsoft.Json.JsonReaderException"
        ) from exc
    if raw is None:
        return None  # the "end" token starts over, as it does on the real provider
    if not isinstance(raw, dict):
        raise InvalidContinuationToken(
            "Invalid continuation token.", "Newtonsoft.Json.JsonSerializationException"
        )
    return {"PartitionKey": raw.get("NextPartitionKey") or "", "RowKey": raw.get("NextRowKey") or ""}
