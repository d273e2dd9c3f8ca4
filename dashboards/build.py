"""Build every dashboard to JSON: `build_all(out_dir)` writes one `<uid>.json` per dashboard
(the files committed in deploy/grafana/dashboards/, loaded by Grafana's file provider)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.domain_boards import domain_dashboards
from dashboards.ops_boards import incidents_dashboard, pipeline_dashboard
from dashboards.wall import wall

DASHBOARDS_DIR = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dashboards"


def all_dashboards() -> list[dashboard.Dashboard]:
    return [wall(), *domain_dashboards(), pipeline_dashboard(), incidents_dashboard()]


def finish(board: dm.Dashboard) -> dm.Dashboard:
    """What the builders leave to the caller: empty annotation and variable lists (Grafana adds
    its built-in annotation), and links shown in the dashboard's bar. The SDK's link model sets every link's
    placement to "inControlsMenu": Grafana 12 then moves it into the dashboard controls dropdown,
    which drops links of type "dashboards" altogether."""
    if board.annotations is None or board.annotations.list_val is None:
        board.annotations = dm.AnnotationContainer(list_val=[])
    if board.templating is None or board.templating.list_val is None:
        board.templating = dm.DashboardDashboardTemplating(list_val=[])
    for link in board.links or []:
        link.placement = None  # type: ignore[assignment]
    for panel in board.panels or []:
        for link in getattr(panel, "links", None) or []:
            if isinstance(link, dict):  # a panel's links, as the model reads them from JSON
                link.pop("placement", None)
            else:
                link.placement = None
    return board


def to_json(board: dashboard.Dashboard) -> dict[str, Any]:
    model = finish(board.build())
    data: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    return data


def render(data: dict[str, Any]) -> str:
    """The file's text: stable key order, so a rebuild without change is byte-identical."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def build_all(out_dir: Path) -> list[Path]:
    """Write every dashboard to `out_dir/<uid>.json`; returns the paths, in build order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for board in all_dashboards():
        data = to_json(board)
        path = out_dir / f"{data['uid']}.json"
        path.write_text(render(data), encoding="utf-8")
        paths.append(path)
    return paths
