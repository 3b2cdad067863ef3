"""ISO3 codes and the English country names used in prompts ({country})."""

from __future__ import annotations

from valuesim.errors import DataError

# Names as a survey respondent would say them; WVS-7 countries plus the paper's four
# countries without a wave-7 file here (GBR, ISL, SWE, MDA, GHA), for prompts only.
COUNTRY_NAMES: dict[str, str] = {
    "AND": "Andorra", "ARG": "Argentina", "ARM": "Armenia", "AUS": "Australia",
    "BGD": "Bangladesh", "BOL": "Bolivia", "BRA": "Brazil", "CHL": "Chile",
    "COL": "Colombia", "CYP": "Cyprus", "CZE": "the Czech Republic", "DEU": "Germany",
    "ECU": "Ecuador", "EGY": "Egypt", "ETH": "Ethiopia", "GRC": "Greece",
    "GTM": "Guatemala", "IRN": "Iran", "IRQ": "Iraq", "JOR": "Jordan", "JPN": "Japan",
    "KAZ": "Kazakhstan", "KEN": "Kenya", "KGZ": "Kyrgyzstan", "KOR": "South Korea",
    "LBN": "Lebanon", "LBY": "Libya", "MAC": "Macau", "MAR": "Morocco",
    "MDV": "the Maldives", "MEX": "Mexico", "MMR": "Myanmar", "MNG": "Mongolia",
    "MYS": "Malaysia", "NGA": "Nigeria", "NIC": "Nicaragua", "NIR": "Northern Ireland",
    "NZL": "New Zealand", "PAK": "Pakistan", "PER": "Peru", "PHL": "the Philippines",
    "PRI": "Puerto Rico", "ROU": "Romania", "RUS": "Russia", "SGP": "Singapore",
    "SRB": "Serbia", "SVK": "Slovakia", "THA": "Thailand", "TJK": "Tajikistan",
    "TUN": "Tunisia", "TWN": "Taiwan", "UKR": "Ukraine", "URY": "Uruguay",
    "VEN": "Venezuela", "VNM": "Vietnam", "ZWE": "Zimbabwe",
    "GBR": "the United Kingdom", "ISL": "Iceland", "SWE": "Sweden", "MDA": "Moldova",
    "GHA": "Ghana", "USA": "the United States",
}


def country_name(iso3: str) -> str:
    try:
        return COUNTRY_NAMES[iso3]
    except KeyError:
        raise DataError(
            f"unknown country code {iso3!r}; use an ISO3 code such as JPN "
            f"(known: {len(COUNTRY_NAMES)} codes in valuesim.survey.countries)"
        ) from None
