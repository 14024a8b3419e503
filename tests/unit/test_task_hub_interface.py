"""The task hub interface's own logic: folding instance updates, the Azure keys and tokens."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from emulator.durable._history import OrchestrationStatus
from emulator.taskhub import InstanceUpdate, InvalidContinuationToken
from emulator.taskhub._continuation import (
    END_CONTINUATION,
    decode_continuation_token,
    encode_continuation_token,
)
from emulator.taskhub.azure._keys import escape_partition_key, unescape_partition_key

_T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_a_folded_update_is_the_two_applied_in_order() -> None:
    suspended = InstanceUpdate(_T0, runtime_status=OrchestrationStatus.Suspended, output="why")
    later = InstanceUpdate(_T0 + timedelta(seconds=1), custom_status='"half"')
    folded = suspended.then(later)
    assert folded == InstanceUpdate(
        _T0 + timedelta(seconds=1),
        runtime_status=OrchestrationStatus.Suspended,
        output="why",
        custom_status='"half"',
    )
    # Neither update changes.
    assert suspended.custom_status is None and later.runtime_status is None


def test_continuation_tokens_keep_the_real_providers_format() -> None:
    token = encode_continuation_token({"PartitionKey": "abc", "RowKey": ""})
    assert token == (
        "eyJOZXh0UGFydGl0aW9uS2V5IjoiYWJjIiwiTmV4dFJvd0tleSI6IiIsIk5leHRUYWJsZU5hbWUiOm51bGwsIlRhcmdldExvY2F0aW9uIjowfQ=="
    )
    assert decode_continuation_token(token) == {"PartitionKey": "abc", "RowKey": ""}
    assert END_CONTINUATION == "bnVsbA==" and decode_continuation_token(END_CONTINUATION) is None
    with pytest.raises(InvalidContinuationToken) as raised:
        decode_continuation_token("not base64!")
    assert raised.value.exception_type == "System.FormatException"


def test_partition_keys_escape_what_table_keys_may_not_hold() -> None:
    instance_id = "a/b\\c#d?e^f\x01"
    assert escape_partition_key(instance_id) == "a^0b^1c^2d^3e^^f^\xc1"
    assert unescape_partition_key(escape_partition_key(instance_id)) == instance_id
