"""The development broker: a real Apache Kafka started from jars fetched from Maven Central.

For ``taskstream dev``, the tests and the benchmarks only; no service imports it (an
import-linter contract in ``pyproject.toml``). :mod:`~taskstream.dev_broker.local_kafka`
runs one broker, :mod:`~taskstream.dev_broker.local_kafka_cluster` a cluster of them,
:mod:`~taskstream.dev_broker.kafka_jars` fetches the jars.
"""
