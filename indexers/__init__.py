"""Kafka -> Elasticsearch bulk writer, index templates, 5-day retention, search by number."""
