"""`ioc simulate`: realistic traffic of the eight domains, with scenarios and injected faults.

`generate` is pure (a seeded world and message stream plus the manifest of expected outcomes),
`profiles` holds each event type's patterns, `produce` sends to Kafka, `commands` is the CLI.
"""
