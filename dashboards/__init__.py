"""Grafana dashboards as code: the wall, one dashboard per domain, pipeline and incidents."""
