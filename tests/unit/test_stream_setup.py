"""Create-or-verify of the JetStream streams (cloud/messaging/stream_setup.py): what differs, and what is done."""
from __future__ import annotations

import dataclasses

import pytest
from nats.js.api import StorageType

from cloud.messaging import stream_setup, streams


def test_the_same_stream_read_back_from_the_server_is_kept():
    wanted = streams.events_stream_config()
    # as the server answers: ages as float seconds, the unset limits as -1
    existing = dataclasses.replace(wanted, max_age=float(wanted.max_age), duplicate_window=float(wanted.duplicate_window),
                                   max_msgs=-1, max_msgs_per_subject=-1)
    assert stream_setup.differences(existing, wanted) == []
    assert stream_setup.plan(existing, wanted) == "keep"


def test_limits_only_are_updated():
    wanted = streams.events_stream_config(streams.StreamBounds(events_max_bytes=2 * 1024 ** 3))
    existing = streams.events_stream_config()
    assert [d.field for d in stream_setup.differences(existing, wanted)] == ["max_bytes"]
    assert stream_setup.plan(existing, wanted) == "update"


def test_an_events_stream_made_before_partitioning_gets_its_subject_transform_in_place():
    """A chain's stream from before issue 22 stores events unpartitioned: it is updated (never refused), and one
    already partitioned is kept as it is."""
    wanted = streams.events_stream_config()
    assert wanted.subject_transform is not None and "partition(4,1)" in wanted.subject_transform.dest
    before = dataclasses.replace(wanted, subject_transform=None)
    assert [d.field for d in stream_setup.differences(before, wanted)] == ["subject_transform"]
    assert stream_setup.plan(before, wanted) == "update"
    read_back = dataclasses.replace(wanted, subject_transform=dataclasses.replace(wanted.subject_transform))
    assert stream_setup.plan(read_back, wanted) == "keep"


@pytest.mark.parametrize("field, value", [("storage", StorageType.MEMORY), ("subjects", ["other.>"])])
def test_another_meaning_is_refused_naming_the_field(field, value):
    wanted = streams.cloud_messages_stream_config()
    existing = dataclasses.replace(wanted, **{field: value}, max_bytes=1)
    with pytest.raises(stream_setup.StreamConfigConflict, match=f"{field} is .* there"):
        stream_setup.plan(existing, wanted)
