"""rich rendering for `seqtool serve`: the served models and the address."""

from __future__ import annotations

from typing import Any


def render_serving(url: str, models: list[dict[str, Any]]) -> None:
    from rich.table import Table

    from seqtool.console import stdout_console

    table = Table(title="seqtool serve", title_justify="left")
    for col in ("model", "kind", "languages", "parameters", "endpoints"):
        table.add_column(col)
    for m in models:
        langs = f"{m['src']} → {m['tgt']}" if m.get("src") else ""
        table.add_row(m["name"], m["kind"], langs, f"{m.get('total_parameters') or 0:,}",
                      " ".join(m["endpoints"]))
    console = stdout_console()
    console.print(table)
    console.print(f"page: [bold]{url}/[/]   API: {url}/openapi.json   (Ctrl-C stops)",
                  markup=True)
