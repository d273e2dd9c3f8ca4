"""A typed PostgreSQL query for grafana-foundation-sdk, which has none.

The target's JSON is what Grafana's PostgreSQL datasource (`grafana-postgresql-datasource`) stores
for a query written in code mode: `refId`, `datasource`, `rawSql`, `format` ("table" or
"time_series"), `rawQuery` and `editorMode`. Every panel reads the one provisioned datasource,
uid `ioc-timescale` (deploy/grafana/provisioning/datasources/ioc.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.common import DataSourceRef

DATASOURCE_TYPE = "grafana-postgresql-datasource"
DATASOURCE_UID = "ioc-timescale"
DATASOURCE = DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)

Format = Literal["table", "time_series"]
FORMATS: tuple[Format, ...] = ("table", "time_series")


@dataclass
class PostgresQuery(cogvariants.Dataquery):
    """One SQL target of a panel."""

    raw_sql: str
    ref_id: str = "A"
    format: Format = "table"
    datasource_uid: str = DATASOURCE_UID

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format {self.format!r}: one of {FORMATS}")
        if not self.raw_sql.strip():
            raise ValueError(f"query {self.ref_id}: empty rawSql")

    def to_json(self) -> dict[str, object]:
        return {
            "refId": self.ref_id,
            "datasource": {"type": DATASOURCE_TYPE, "uid": self.datasource_uid},
            "editorMode": "code",
            "format": self.format,
            "rawQuery": True,
            "rawSql": self.raw_sql,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        datasource = data.get("datasource") or {}
        if datasource.get("type") != DATASOURCE_TYPE:
            raise ValueError(
                f"query {data.get('refId')}: datasource {datasource!r} is not PostgreSQL"
            )
        return cls(
            raw_sql=data["rawSql"],
            ref_id=data["refId"],
            format=data.get("format", "table"),
            datasource_uid=datasource["uid"],
        )


class PostgresQueryBuilder(cogbuilder.Builder[PostgresQuery]):
    """The SDK's builder protocol, so a panel's `with_target()` takes it."""

    def __init__(self, raw_sql: str) -> None:
        self._query = PostgresQuery(raw_sql)

    def build(self) -> PostgresQuery:
        return self._query

    def ref_id(self, ref_id: str) -> Self:
        self._query.ref_id = ref_id
        return self

    def format(self, fmt: Format) -> Self:
        self._query.format = fmt
        self._query.__post_init__()
        return self


def sql(raw_sql: str, fmt: Format = "table", ref_id: str = "A") -> PostgresQueryBuilder:
    """A PostgreSQL target: `sql("SELECT ...", "time_series")`."""
    return PostgresQueryBuilder(raw_sql).format(fmt).ref_id(ref_id)


def register() -> None:
    """Teach the SDK's JSON loader this query type (its runtime is a process-wide registry):
    `Dashboard.from_json` then returns PostgresQuery targets instead of unknown bags."""
    cogruntime.register_dataquery_variant(
        cogruntime.DataqueryConfig(
            identifier=DATASOURCE_TYPE, from_json_hook=PostgresQuery.from_json
        )
    )
