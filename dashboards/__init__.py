"""Grafana dashboards as code: the wall, one dashboard per domain, pipeline and incidents;
expanding their queries as Grafana does, checking them on the database, pushing them."""
