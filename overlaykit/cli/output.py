"""How the listing commands print: Docker's size units and columns padded to line up."""

import click


def human_size(n: float, precision: int) -> str:
    """Docker's units.HumanSizeWithPrecision: decimal units, precision significant digits
    (`docker images` uses 3: 2.13MB, 143kB, 0B; `volume prune` 4). Never 1e+03: 999.5kB
    would print so with 3 digits, so it is 1MB."""
    value, units, i = float(n), ("B", "kB", "MB", "GB", "TB"), 0
    while i < len(units) - 1 and value >= min(1000, 10 ** precision - 0.5):
        value /= 1000
        i += 1
    return f"{value:.{precision}g}{units[i]}"


def created_ago(created: str | None, now: float) -> str:
    """Docker's CREATED column: "3 days ago" from an RFC 3339 time, "N/A" when unknown."""
    from overlaykit.runtime.lifecycle import ago
    return (ago(created, now) if created else "") or "N/A"


def print_columns(header: list[str], rows: list[list]) -> None:
    """header and rows, each column as wide as its widest cell, three spaces between."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    for row in [header, *rows]:
        click.echo("   ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
