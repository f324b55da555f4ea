"""``align_topic_configs`` on a real broker: existing topics get the spec's settings."""

from __future__ import annotations

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
