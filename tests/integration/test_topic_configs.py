"""``align_topic_configs`` on a real broker: existing topics get the spec's settings."""

from __future__ import annotations

import threading

import pytest

from taskstream.infra.kafka import (
    TopicSpec,
    admin_client,
    align_topic_configs,
    ensure_topics,
    topic_config,
)
from taskstream.infra.settings import CommonSettings

pytestmark = pytest.mark.kafka


def test_an_existing_topic_gets_the_spec_s_settings_and_keeps_its_others(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = CommonSettings(kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix)
    topic = f"{topic_prefix}changelog"
    ensure_topics(settings, [TopicSpec(topic, 1, {"cleanup.policy": "compact"})])
    assert topic_config(settings, topic, "retention.bytes") == "-1"
    align_topic_configs(settings, [TopicSpec(topic, 1, {"retention.bytes": "1048576"})])
    assert topic_config(settings, topic, "retention.bytes") == "1048576"

    newer = {"segment.ms": "60000", "min.cleanable.dirty.ratio": "0.1"}
    align_topic_configs(
        settings,
        [TopicSpec(topic, 1, newer), TopicSpec(f"{topic_prefix}absent", 1, newer)],
    )
    assert topic_config(settings, topic, "segment.ms") == "60000"
    assert topic_config(settings, topic, "min.cleanable.dirty.ratio") == "0.1"
    assert topic_config(settings, topic, "retention.bytes") == "1048576"  # left as it was
    assert topic_config(settings, topic, "cleanup.policy") == "compact"
    assert f"{topic_prefix}absent" not in admin_client(settings).list_topics(timeout=10).topics


def test_a_topic_config_read_waits_for_a_topic_the_broker_does_not_know_yet(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """On a cluster, a topic just created is unknown for a moment to the broker that
    answers (the fault round's core once exited 1 on UNKNOWN_TOPIC_OR_PART at start). Here
    the topic appears a second after the read begins: the read is retried, not raised."""
    settings = CommonSettings(kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix)
    topic = f"{topic_prefix}late"
    creator = threading.Timer(
        1.0, ensure_topics, (settings, [TopicSpec(topic, 1, {"max.message.bytes": "2000000"})])
    )
    creator.start()
    try:
        assert topic_config(settings, topic, "max.message.bytes", timeout=30) == "2000000"
    finally:
        creator.join()
