"""Cultural zones of the Inglehart-Welzel map, for background shading only.

Membership follows the zone labels of the published WVS-7 map (2023) for the
countries this project can place, plus the paper's countries without a WVS-7 file.
Zones are a reading aid, not data: nothing is computed from them.
"""

from __future__ import annotations

ZONES: dict[str, tuple[str, ...]] = {
    "Protestant Europe": ("DEU", "SWE", "ISL"),
    "English-speaking": ("AUS", "NZL", "NIR", "GBR", "USA"),
    "Catholic Europe": ("AND", "CZE", "SVK"),
    "Orthodox Europe": ("ROU", "RUS", "SRB", "UKR", "GRC", "CYP", "MDA", "ARM", "KAZ"),
    "Confucian": ("JPN", "KOR", "TWN", "MAC"),
    "West & South Asia": ("MMR", "THA", "VNM", "MYS", "SGP", "PHL", "MNG"),
    "Latin America": (
        "ARG", "BOL", "BRA", "CHL", "COL", "ECU", "GTM", "MEX", "NIC", "PER", "PRI", "URY", "VEN",
    ),
    "African-Islamic": (
        "BGD", "EGY", "ETH", "GHA", "IRN", "IRQ", "JOR", "KEN", "KGZ", "LBN", "LBY", "MAR", "MDV",
        "NGA", "PAK", "TJK", "TUN", "ZWE",
    ),
}

# Colour-blind-safe pastel fills (Okabe-Ito hues, lightened by alpha when drawn).
ZONE_COLORS: dict[str, str] = {
    "Protestant Europe": "#0072B2",
    "English-speaking": "#56B4E9",
    "Catholic Europe": "#CC79A7",
    "Orthodox Europe": "#D55E00",
    "Confucian": "#009E73",
    "West & South Asia": "#E69F00",
    "Latin America": "#C8B000",
    "African-Islamic": "#999999",
}


def zone_of(country: str) -> str | None:
    for zone, members in ZONES.items():
        if country in members:
            return zone
    return None
