"""Storage: the TimescaleDB/PostgreSQL schema, its migrations and the batching sink.

Knows psycopg, never Faust: everything here is tested without Kafka.
"""
