"""Infrastructure helpers: Kafka plumbing, settings, logging and a local Kafka broker."""
