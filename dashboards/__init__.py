"""Grafana dashboards as code: expanding, checking and pushing the operations-center wall."""
