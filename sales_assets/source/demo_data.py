"""Deterministic, realistic demo sales orders: what the bundled demo source serves.

`iter_orders(order_date, config)` yields one UTC day of orders in listing order. The same
date and config give byte-identical output (through `contract.dumps_exact`) whatever else
was generated before: every day draws from its own RNG seeded by (seed, date), and the
customer/product/store pools depend only on the seed and pool sizes.

Besides clean orders the stream carries, at steady small rates, what a real source does:
contract-violating records/lines covering every quarantine reason code, orders re-sent
later in the listing (newer updated_at, or an equal one where the later copy wins, or a
stale copy listed after the newer one), coercible type drift ("2" for 2) and unknown
extra fields. `contract.expected_figures` over the listing gives the day's true figures.
"""
from __future__ import annotations

import bisect
import calendar
import hashlib
import random
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Any, Callable, Iterator

from sales_assets.source import contract

# --- Configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoDataConfig:
    """Knobs of the generator; every rate is a probability in [0, 1].

    invalid_line_rate: per line, chance its order carries one contract violation.
    resend_rate: per order, chance it is re-sent later in the listing.
    type_drift_rate: per line, chance a number arrives in a coercible form ("2", 2.0).
    extra_field_rate: per order, chance of a field the contract does not list.
    """

    seed: int = 7
    orders_per_day: int = 400
    invalid_line_rate: float = 0.01
    resend_rate: float = 0.02
    type_drift_rate: float = 0.005
    extra_field_rate: float = 0.02
    customers: int = 3000
    products: int = 250
    stores: int = 40

    def __post_init__(self) -> None:
        for name in ("invalid_line_rate", "resend_rate", "type_drift_rate", "extra_field_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.orders_per_day < 0:
            raise ValueError("orders_per_day must be >= 0")
        for name in ("customers", "products", "stores"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


DEFAULT_CONFIG = DemoDataConfig()

# --- Reference data ---------------------------------------------------------------------------

# (code, currency, tax_rate, weight, cities: (city, region, standard UTC offset minutes, dst rule))
COUNTRIES = (
    ("US", "USD", "0.0725", 46, (
        ("New York", "Northeast", -300, "us"), ("Boston", "Northeast", -300, "us"),
        ("Philadelphia", "Northeast", -300, "us"), ("Chicago", "Midwest", -360, "us"),
        ("Minneapolis", "Midwest", -360, "us"), ("Atlanta", "South", -300, "us"),
        ("Houston", "South", -360, "us"), ("Miami", "South", -300, "us"),
        ("Denver", "West", -420, "us"), ("Phoenix", "West", -420, None),
        ("Seattle", "West", -480, "us"), ("Los Angeles", "West", -480, "us"),
        ("Anchorage", "West", -540, "us"), ("Honolulu", "West", -600, None),
    )),
    ("GB", "GBP", "0.20", 15, (
        ("London", "England", 0, "eu"), ("Manchester", "England", 0, "eu"),
        ("Birmingham", "England", 0, "eu"), ("Edinburgh", "Scotland", 0, "eu"),
        ("Glasgow", "Scotland", 0, "eu"), ("Cardiff", "Wales", 0, "eu"),
        ("Belfast", "Northern Ireland", 0, "eu"),
    )),
    ("DE", "EUR", "0.19", 12, (
        ("Berlin", "Berlin", 60, "eu"), ("München", "Bavaria", 60, "eu"),
        ("Hamburg", "Hamburg", 60, "eu"), ("Köln", "North Rhine-Westphalia", 60, "eu"),
        ("Frankfurt am Main", "Hesse", 60, "eu"),
    )),
    ("FR", "EUR", "0.20", 9, (
        ("Paris", "Île-de-France", 60, "eu"), ("Lyon", "Auvergne-Rhône-Alpes", 60, "eu"),
        ("Marseille", "Provence-Alpes-Côte d'Azur", 60, "eu"), ("Toulouse", "Occitanie", 60, "eu"),
    )),
    ("ES", "EUR", "0.21", 5, (
        ("Madrid", "Community of Madrid", 60, "eu"), ("Barcelona", "Catalonia", 60, "eu"),
        ("Valencia", "Valencian Community", 60, "eu"),
    )),
    ("IT", "EUR", "0.22", 5, (
        ("Milano", "Lombardy", 60, "eu"), ("Roma", "Lazio", 60, "eu"), ("Torino", "Piedmont", 60, "eu"),
    )),
    ("NL", "EUR", "0.21", 5, (
        ("Amsterdam", "North Holland", 60, "eu"), ("Rotterdam", "South Holland", 60, "eu"),
        ("Utrecht", "Utrecht", 60, "eu"),
    )),
    ("IE", "EUR", "0.23", 3, (
        ("Dublin", "Leinster", 0, "eu"), ("Cork", "Munster", 0, "eu"),
    )),
)

# Customers per city follow rough market size; unlisted cities weigh 2.
CITY_WEIGHTS = {"New York": 8, "Los Angeles": 6, "Chicago": 5, "Houston": 4, "London": 8, "Paris": 6,
                "Berlin": 4, "Madrid": 4, "Milano": 3, "Amsterdam": 3, "Dublin": 3, "Anchorage": 1, "Honolulu": 1}
_ENGLISH_NAMES = (
    ("James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Emily",
     "Daniel", "Olivia", "Aisha", "Carlos", "Mei", "Priya", "Noah", "Grace"),
    ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Wilson", "Taylor",
     "Anderson", "Thomas", "Nguyen", "Patel", "O'Brien", "Clarke", "Evans", "Hughes"),
)
NAMES_BY_COUNTRY = {
    "US": _ENGLISH_NAMES,
    "GB": _ENGLISH_NAMES,
    "IE": (("Seán", "Aoife", "Ciarán", "Niamh", "Conor", "Siobhán", "Liam", "Róisín"),
           ("Murphy", "Kelly", "O'Sullivan", "Walsh", "Byrne", "Ryan", "O'Connor", "Doyle")),
    "DE": (("Lukas", "Anna", "Jürgen", "Sophie", "Maximilian", "Lea", "Felix", "Jörg", "Hannah"),
           ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Groß")),
    "FR": (("Léa", "Hugo", "Chloé", "Louis", "Manon", "Théo", "Camille", "François", "Inès"),
           ("Martin", "Bernard", "Dubois", "Lefèvre", "Moreau", "Laurent", "Girard", "Rousseau")),
    "ES": (("Lucía", "Hugo", "Martina", "Mateo", "Sofía", "Álvaro", "Paula", "José"),
           ("García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez", "Pérez")),
    "IT": (("Giulia", "Francesco", "Sofia", "Alessandro", "Aurora", "Lorenzo", "Chiara", "Niccolò"),
           ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci")),
    "NL": (("Daan", "Emma", "Sem", "Julia", "Lucas", "Tess", "Bram", "Sanne"),
           ("de Jong", "Jansen", "de Vries", "van den Berg", "Bakker", "Visser", "Smit", "Meijer")),
}
EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example")
SEGMENTS = (("consumer", 72), ("small_business", 18), ("corporate", 10))

# (category, sku code, popularity, (min, max) USD price in cents, brands, product nouns)
CATEGORIES = (
    ("Electronics", "ELE", 18, (1500, 120000), ("Voltra", "Apexa", "Lumina", "Nordic Audio"),
     ("Wireless Earbuds", "Bluetooth Speaker", "27in 4K Monitor", "USB-C Hub", "Smartwatch",
      "10in Tablet", "Power Bank", "Mechanical Keyboard")),
    ("Home & Kitchen", "HOM", 16, (800, 40000), ("Hearth & Co", "Casa Bella", "Kitchenary"),
     ("Chef's Knife", "Cast Iron Skillet", "Burr Coffee Grinder", "Linen Duvet Cover", "Air Fryer",
      "Glass Storage Set")),
    ("Apparel", "APP", 15, (900, 25000), ("Northfield", "Urban Thread", "Alpine Wear"),
     ("Merino Sweater", "Rain Jacket", "Chino Trousers", "Cotton T-Shirt", "Wool Socks", "Denim Jacket")),
    ("Sports & Outdoors", "SPO", 11, (1000, 60000), ("Trailmark", "Peakline", "AquaPro"),
     ("Yoga Mat", "Trail Running Shoes", "2-Person Tent", "Insulated Bottle", "Cycling Helmet",
      "Adjustable Dumbbells")),
    ("Beauty", "BEA", 9, (400, 9000), ("Glow Lab", "Pure Botanica"),
     ("Vitamin C Serum", "Hand Cream", "Repair Shampoo", "Sunscreen SPF 50")),
    ("Toys & Games", "TOY", 8, (500, 15000), ("Brickworks", "Playfield"),
     ("Building Set", "Board Game", "1000-Piece Puzzle", "Plush Bear")),
    ("Books", "BOO", 8, (600, 4500), ("Harbor Press", "Lantern Books"),
     ("Cookbook", "Mystery Novel", "Travel Guide", "Children's Atlas")),
    ("Office", "OFF", 7, (200, 35000), ("Paperline", "Deskwise"),
     ("A5 Notebook", "Ergonomic Chair", "Gel Pens 12-Pack", "LED Desk Lamp")),
    ("Grocery", "GRO", 8, (199, 3500), ("Green Pantry", "Roastery 21"),
     ("Espresso Beans 1kg", "Extra Virgin Olive Oil", "Sencha Green Tea", "Dark Chocolate 70%")),
)
PRODUCT_VARIANTS = ("Classic", "Pro", "Lite", "Max", "Eco", "Plus", "Mini", "Essential", "Studio", "Go")
# Fixed demo exchange rates from the USD list price.
FX_FROM_USD = {"USD": Decimal("1"), "EUR": Decimal("0.92"), "GBP": Decimal("0.79")}

# How long after the order its last update came, by status (seconds, low/high).
UPDATE_DELAY_SECONDS = {"completed": (60, 1800), "pending": (0, 300),
                        "cancelled": (3600, 172800), "returned": (86400, 14 * 86400)}
STATUS_WEIGHTS = (("completed", 85), ("pending", 7), ("cancelled", 5), ("returned", 3))
CHANNEL_WEIGHTS = (("web", 40), ("store", 30), ("mobile", 22), ("marketplace", 8))
LINES_PER_ORDER_WEIGHTS = ((1, 50), (2, 25), (3, 12), (4, 8), (5, 5))
QUANTITY_WEIGHTS = ((1, 72), (2, 15), (3, 6), (4, 3), (5, 2), (6, 1), (10, 1))
DISCOUNTS = (Decimal("0"), Decimal("0.05"), Decimal("0.1"), Decimal("0.15"), Decimal("0.2"))
DISCOUNT_WEIGHTS = (72, 10, 9, 5, 4)
HOLIDAY_DISCOUNT_WEIGHTS = (50, 14, 16, 10, 10)  # late November and December
# Share of orders by local hour of day; shops only trade 9:00-21:00.
ONLINE_HOUR_WEIGHTS = (1.0, 0.6, 0.4, 0.3, 0.3, 0.5, 1.0, 2.0, 3.0, 4.0, 4.5, 5.0,
                       5.5, 5.0, 4.8, 4.8, 5.0, 5.5, 6.0, 6.5, 6.0, 5.0, 3.5, 2.0)
STORE_HOUR_WEIGHTS = tuple(w if 9 <= hour < 21 else 0.0 for hour, w in enumerate(ONLINE_HOUR_WEIGHTS))

# Volume shape around orders_per_day.
WEEKDAY_FACTORS = (0.93, 0.91, 0.94, 0.98, 1.05, 1.16, 1.03)  # Monday first
MONTH_FACTORS = (0.86, 0.88, 0.95, 0.97, 1.0, 0.98, 0.96, 0.98, 0.97, 1.0, 1.12, 1.33)


# --- Pools (depend on the seed and sizes only, never on the date) ------------------------------


@dataclass(frozen=True)
class _City:
    country: str
    currency: str
    tax_rate: Decimal
    name: str
    region: str
    std_offset: int
    dst: str | None


@dataclass(frozen=True)
class _Pools:
    customers: tuple[tuple[dict[str, Any], _City], ...]
    customer_cum: tuple[float, ...]
    products: tuple[dict[str, Any], ...]
    product_cum: tuple[float, ...]
    # product index -> currency -> unit price
    prices: tuple[dict[str, Decimal], ...]
    stores_by_country: dict[str, tuple[str, ...]]


def _derive_seed(*parts: Any) -> int:
    digest = hashlib.sha256("|".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _cumulative(weights) -> tuple[float, ...]:
    total = 0.0
    out = []
    for weight in weights:
        total += weight
        out.append(total)
    return tuple(out)


def _ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def _charm_price(cents: int) -> Decimal:
    """A shelf price: x.99 above 5, x.49/x.99 below; always exactly 2 places."""
    if cents < 500:
        cents = max(99, (cents // 50) * 50 + 49)
    else:
        cents = (cents // 100) * 100 + 99
    return Decimal(cents).scaleb(-2)


@lru_cache(maxsize=8)
def _pools(seed: int, n_customers: int, n_products: int, n_stores: int) -> _Pools:
    rng = random.Random(_derive_seed(seed, "pools"))
    cities = [
        _City(code, currency, Decimal(tax), name, region, offset, dst)
        for code, currency, tax, _weight, city_rows in COUNTRIES
        for name, region, offset, dst in city_rows
    ]
    country_cum = _cumulative(weight for *_rest, weight, _cities in COUNTRIES)
    cities_by_country = {code: [c for c in cities if c.country == code] for code, *_rest in COUNTRIES}

    customers = []
    weights = []
    for index in range(1, n_customers + 1):
        country = COUNTRIES[bisect.bisect_right(country_cum, rng.random() * country_cum[-1])][0]
        candidates = cities_by_country[country]
        city = rng.choices(candidates, [CITY_WEIGHTS.get(c.name, 2) for c in candidates])[0]
        first_names, last_names = NAMES_BY_COUNTRY[country]
        first, last = rng.choice(first_names), rng.choice(last_names)
        segment = rng.choices([s for s, _ in SEGMENTS], [w for _, w in SEGMENTS])[0]
        email = None if rng.random() < 0.02 else (
            f"{_ascii_slug(first)}.{_ascii_slug(last)}{rng.randrange(1, 100)}@{rng.choice(EMAIL_DOMAINS)}")
        customers.append(({
            "customer_id": f"C-{index:06d}",
            "name": f"{first} {last}",
            "email": email,
            "segment": segment,
            "country": country,
            "region": city.region,
            "city": city.name,
        }, city))
        # Heavy-tailed loyalty: a few customers order often.
        weights.append(rng.paretovariate(1.6))

    products = []
    product_weights = []
    prices = []
    category_cum = _cumulative(row[2] for row in CATEGORIES)
    for index in range(1, n_products + 1):
        category, code, _pop, (low, high), brands, nouns = CATEGORIES[
            bisect.bisect_right(category_cum, rng.random() * category_cum[-1])]
        brand = rng.choice(brands)
        name = f"{brand} {rng.choice(nouns)} {rng.choice(PRODUCT_VARIANTS)}"
        products.append({
            "product_id": f"P-{index:05d}",
            "sku": f"{code}-{_ascii_slug(brand)[:3].upper()}-{index:05d}",
            "product_name": name,
            "category": category,
            "brand": brand,
        })
        product_weights.append(rng.paretovariate(1.3))
        # Log-uniform list price, converted and charm-rounded per currency.
        usd_cents = int(low * (high / low) ** rng.random())
        prices.append({currency: _charm_price(int(usd_cents * fx)) for currency, fx in FX_FROM_USD.items()})

    # Spread the stores over countries by weight (largest remainder), at least one each.
    total_weight = sum(row[3] for row in COUNTRIES)
    quotas = {row[0]: max(1, n_stores * row[3] // total_weight) for row in COUNTRIES}
    order = sorted(COUNTRIES, key=lambda row: -(n_stores * row[3] % total_weight))
    position = 0
    while sum(quotas.values()) < n_stores:
        quotas[order[position % len(order)][0]] += 1
        position += 1
    stores_by_country: dict[str, tuple[str, ...]] = {}
    number = 0
    for code, *_rest in COUNTRIES:
        ids = []
        for _ in range(quotas[code]):
            number += 1
            ids.append(f"ST-{number:03d}")
        stores_by_country[code] = tuple(ids)

    return _Pools(tuple(customers), _cumulative(weights), tuple(products),
                  _cumulative(product_weights), tuple(prices), stores_by_country)


# --- Calendar ------------------------------------------------------------------------------------


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th given weekday of a month (n = -1 for the last)."""
    days = [d for d in calendar.Calendar().itermonthdates(year, month) if d.month == month and d.weekday() == weekday]
    return days[n if n < 0 else n - 1]


@lru_cache(maxsize=512)
def _dst(order_date: date) -> dict[str, bool]:
    """Whether US / EU summer time applies that day (switch hour ignored: a demo)."""
    year = order_date.year
    us = _nth_weekday(year, 3, 6, 2) <= order_date < _nth_weekday(year, 11, 6, 1)
    eu = _nth_weekday(year, 3, 6, -1) <= order_date < _nth_weekday(year, 10, 6, -1)
    return {"us": us, "eu": eu}


def volume_factor(order_date: date) -> float:
    """Relative order volume of a day: weekday x month x retail events (mean about 1)."""
    factor = WEEKDAY_FACTORS[order_date.weekday()] * MONTH_FACTORS[order_date.month - 1]
    thanksgiving = _nth_weekday(order_date.year, 11, 3, 4)
    if order_date == thanksgiving + timedelta(days=1):  # Black Friday
        factor *= 1.9
    elif order_date == thanksgiving + timedelta(days=4):  # Cyber Monday
        factor *= 1.6
    elif (order_date.month, order_date.day) == (12, 24):
        factor *= 0.7
    elif (order_date.month, order_date.day) == (12, 25):
        factor *= 0.45
    elif (order_date.month, order_date.day) == (1, 1):
        factor *= 0.6
    return factor


def _holiday_season(order_date: date) -> bool:
    return order_date.month == 12 or (order_date.month == 11 and order_date.day >= 20)


# --- Formatting -----------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _format_offset(minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _format_local(utc: datetime, offset_minutes: int | None) -> str:
    """RFC 3339 seconds precision in the given offset; None means UTC written as Z."""
    if offset_minutes is None:
        return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    local = utc + timedelta(minutes=offset_minutes)
    return local.strftime("%Y-%m-%dT%H:%M:%S") + _format_offset(offset_minutes)


def _format_utc_millis(utc: datetime) -> str:
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


# --- Contract violations (each yields exactly its reason code on an otherwise valid order) ---------


def _pick_line(rng: random.Random, order: dict) -> dict:
    return rng.choice(order["lines"])


def _corrupt_invalid_json(rng, order, ctx):
    return rng.choice(["ERROR: record unavailable", None, [order["order_id"], "partial"], 0])


def _corrupt_missing_order_id(rng, order, ctx):
    choice = rng.randrange(4)
    if choice == 0:
        del order["order_id"]
    else:
        order["order_id"] = ("", None, 918273)[choice - 1]
    return order


def _corrupt_missing_lines(rng, order, ctx):
    choice = rng.randrange(3)
    if choice == 0:
        del order["lines"]
    else:
        order["lines"] = ([], None)[choice - 1]
    return order


def _corrupt_bad_order_timestamp(rng, order, ctx):
    utc = ctx["utc"]
    order["order_timestamp"] = rng.choice([
        utc.strftime("%Y-%m-%dT%H:%M:%S"),  # no offset
        utc.strftime("%d/%m/%Y %H:%M"),
        int((utc - _EPOCH).total_seconds()),
        utc.strftime("%Y-%m-%dT25:%M:%SZ"),
    ])
    return order


def _corrupt_wrong_order_date(rng, order, ctx):
    # A late-arriving order from the day before: valid timestamp, wrong partition.
    order["order_timestamp"] = _format_local(ctx["utc"] - timedelta(days=1), ctx["offset"])
    return order


def _corrupt_bad_updated_at(rng, order, ctx):
    order["updated_at"] = rng.choice([None, "yesterday", order["updated_at"][:19], "2026-02-30T10:00:00Z"])
    return order


def _corrupt_bad_status(rng, order, ctx):
    order["status"] = rng.choice(["shipped", "COMPLETED", "", None])
    return order


def _corrupt_bad_channel(rng, order, ctx):
    order["channel"] = rng.choice(["phone", "Web", "", 3])
    return order


def _corrupt_unknown_currency(rng, order, ctx):
    order["currency"] = rng.choice(["XYZ", "usd", "EURO", "", None])
    return order


def _corrupt_missing_customer_id(rng, order, ctx):
    choice = rng.randrange(4)
    if choice == 0:
        order["customer"] = None
    elif choice == 1:
        del order["customer"]["customer_id"]
    else:
        order["customer"]["customer_id"] = ("", None)[choice - 2]
    return order


def _corrupt_line_not_object(rng, order, ctx):
    index = rng.randrange(len(order["lines"]))
    order["lines"][index] = rng.choice(["n/a", None, [1, 2], 42])
    return order


def _corrupt_bad_line_number(rng, order, ctx):
    line = _pick_line(rng, order)
    line["line_number"] = rng.choice([0, -1, "one", Decimal("1.5"), None, True])
    return order


def _corrupt_duplicate_line_number(rng, order, ctx):
    lines = order["lines"]
    if len(lines) == 1:
        lines.append(dict(lines[0]))  # the same line posted twice
    else:
        lines[-1]["line_number"] = lines[0]["line_number"]
    return order


def _corrupt_missing_product_id(rng, order, ctx):
    line = _pick_line(rng, order)
    if rng.random() < 0.5:
        del line["product_id"]
    else:
        line["product_id"] = rng.choice(["", None])
    return order


def _corrupt_bad_quantity(rng, order, ctx):
    _pick_line(rng, order)["quantity"] = rng.choice([Decimal("1.5"), "two", None, 2_000_000, True])
    return order


def _corrupt_quantity_below_one(rng, order, ctx):
    _pick_line(rng, order)["quantity"] = rng.choice([0, -1, "0"])
    return order


def _corrupt_bad_unit_price(rng, order, ctx):
    line = _pick_line(rng, order)
    line["unit_price"] = rng.choice([
        f"{line['unit_price']} {order['currency']}", line["unit_price"] + Decimal("0.001"), None,
        Decimal("12000000"), True])
    return order


def _corrupt_negative_unit_price(rng, order, ctx):
    line = _pick_line(rng, order)
    line["unit_price"] = -line["unit_price"]
    return order


def _corrupt_bad_discount(rng, order, ctx):
    _pick_line(rng, order)["discount"] = rng.choice(
        [Decimal("1.5"), Decimal("-0.1"), "10%", Decimal("0.12345678901")])
    return order


def _corrupt_bad_tax_rate(rng, order, ctx):
    _pick_line(rng, order)["tax_rate"] = rng.choice([Decimal("20"), "VAT", Decimal("-0.2")])
    return order


CORRUPTIONS: dict[str, Callable[[random.Random, dict, dict], Any]] = {
    contract.INVALID_JSON: _corrupt_invalid_json,
    contract.MISSING_ORDER_ID: _corrupt_missing_order_id,
    contract.MISSING_LINES: _corrupt_missing_lines,
    contract.BAD_ORDER_TIMESTAMP: _corrupt_bad_order_timestamp,
    contract.WRONG_ORDER_DATE: _corrupt_wrong_order_date,
    contract.BAD_UPDATED_AT: _corrupt_bad_updated_at,
    contract.BAD_STATUS: _corrupt_bad_status,
    contract.BAD_CHANNEL: _corrupt_bad_channel,
    contract.UNKNOWN_CURRENCY: _corrupt_unknown_currency,
    contract.MISSING_CUSTOMER_ID: _corrupt_missing_customer_id,
    contract.LINE_NOT_OBJECT: _corrupt_line_not_object,
    contract.BAD_LINE_NUMBER: _corrupt_bad_line_number,
    contract.DUPLICATE_LINE_NUMBER: _corrupt_duplicate_line_number,
    contract.MISSING_PRODUCT_ID: _corrupt_missing_product_id,
    contract.BAD_QUANTITY: _corrupt_bad_quantity,
    contract.QUANTITY_BELOW_ONE: _corrupt_quantity_below_one,
    contract.BAD_UNIT_PRICE: _corrupt_bad_unit_price,
    contract.NEGATIVE_UNIT_PRICE: _corrupt_negative_unit_price,
    contract.BAD_DISCOUNT: _corrupt_bad_discount,
    contract.BAD_TAX_RATE: _corrupt_bad_tax_rate,
}
# Line-level faults are commoner in real feeds than broken envelopes.
CORRUPTION_WEIGHTS = tuple(3 if reason in contract.LINE_REASONS else 1 for reason in CORRUPTIONS)
_CORRUPTION_CUM = _cumulative(CORRUPTION_WEIGHTS)
_CORRUPTION_FNS = tuple(CORRUPTIONS.values())


# --- The generator --------------------------------------------------------------------------------


def order_count(order_date: date, config: DemoDataConfig = DEFAULT_CONFIG) -> int:
    """How many distinct orders the day has (re-sends not counted); deterministic."""
    rng = random.Random(_derive_seed(config.seed, "volume", order_date.isoformat()))
    noise = rng.uniform(0.95, 1.05)
    return max(0, round(config.orders_per_day * volume_factor(order_date) * noise))


def _copy_order(order: dict) -> dict:
    copy = dict(order)
    copy["customer"] = dict(order["customer"])
    copy["lines"] = [dict(line) for line in order["lines"]]
    return copy


def _drift_line(rng: random.Random, line: dict) -> None:
    """A coercible type change the contract accepts (the source evolves)."""
    choice = rng.randrange(5)
    if choice == 0:
        line["quantity"] = str(line["quantity"])
    elif choice == 1:
        line["unit_price"] = str(line["unit_price"])
    elif choice == 2:
        line["quantity"] = Decimal(f"{line['quantity']}.0")
    elif choice == 3:
        line["discount"] = None
    else:
        line.pop("discount", None)


def _add_extra_field(rng: random.Random, order: dict) -> None:
    choice = rng.randrange(4)
    if choice == 0:
        order["promo_code"] = rng.choice(["WELCOME10", "SPRING", "FREESHIP", "VIP"])
    elif choice == 1:
        order["shipping"] = {"method": rng.choice(["standard", "express"]),
                             "cost": rng.choice([Decimal("0"), Decimal("4.99"), Decimal("9.95")])}
    elif choice == 2:
        order["loyalty_tier"] = rng.choice(["bronze", "silver", "gold"])
    else:
        rng.choice(order["lines"])["gift_wrap"] = True


def _resend(rng: random.Random, order: dict, base_updated: datetime) -> tuple[dict, bool]:
    """A changed copy of `order` as the source re-sends it, and whether it is the newer one.

    Status changes or a quantity correction; usually a later updated_at, sometimes an equal
    one (the later listing entry wins), and sometimes the OLDER version is listed later.
    """
    copy = _copy_order(order)
    status = order["status"]
    if status == "pending":
        copy["status"] = rng.choice(["completed", "completed", "cancelled"])
    elif status == "completed" and rng.random() < 0.5:
        copy["status"] = rng.choice(["returned", "cancelled"])
    else:
        line = rng.choice(copy["lines"])
        line["quantity"] = line["quantity"] + 1 if line["quantity"] == 1 or rng.random() < 0.5 else line["quantity"] - 1
    roll = rng.random()
    if roll < 0.2:
        return copy, True  # equal updated_at: the later copy wins
    later = base_updated + timedelta(minutes=rng.randint(5, 600), milliseconds=rng.randrange(1000))
    copy["updated_at"] = _format_utc_millis(later)
    return copy, roll >= 0.3  # 10%: the stale version arrives after the new one


def iter_orders(order_date: date, config: DemoDataConfig = DEFAULT_CONFIG) -> Iterator[Any]:
    """Yield the day's orders in listing order (JSON-ready values; Decimals for fractions).

    Every clean order's order_timestamp falls on `order_date` in UTC. Memory is O(orders)
    small tuples for the time schedule plus pending re-sends, never all the records.
    """
    pools = _pools(config.seed, config.customers, config.products, config.stores)
    rng = random.Random(_derive_seed(config.seed, "orders", order_date.isoformat()))
    n = order_count(order_date, config)
    dst = _dst(order_date)
    day_start = datetime(order_date.year, order_date.month, order_date.day, tzinfo=timezone.utc)
    discount_cum = _cumulative(HOLIDAY_DISCOUNT_WEIGHTS if _holiday_season(order_date) else DISCOUNT_WEIGHTS)
    channel_names = [c for c, _ in CHANNEL_WEIGHTS]
    channel_cum = _cumulative(w for _, w in CHANNEL_WEIGHTS)
    status_names = [s for s, _ in STATUS_WEIGHTS]
    status_cum = _cumulative(w for _, w in STATUS_WEIGHTS)
    lines_cum = _cumulative(w for _, w in LINES_PER_ORDER_WEIGHTS)
    quantity_cum = _cumulative(w for _, w in QUANTITY_WEIGHTS)
    quantities = [q for q, _ in QUANTITY_WEIGHTS]
    online_cum = _cumulative(ONLINE_HOUR_WEIGHTS)
    store_cum = _cumulative(STORE_HOUR_WEIGHTS)
    random_ = rng.random

    def pick(cum, values=None):
        index = min(bisect.bisect_right(cum, random_() * cum[-1]), len(cum) - 1)
        return index if values is None else values[index]

    # Phase 1: who buys through which channel, and at which UTC second (local-hour curve).
    customer_ids = rng.choices(range(len(pools.customers)), cum_weights=pools.customer_cum, k=n)
    schedule = []
    for k in range(n):
        channel = pick(channel_cum, channel_names)
        city = pools.customers[customer_ids[k]][1]
        offset = city.std_offset + (60 if city.dst and dst[city.dst] else 0)
        hour = pick(store_cum if channel == "store" else online_cum)
        local_second = hour * 3600 + rng.randrange(3600)
        schedule.append(((local_second - offset * 60) % 86400, k, channel, offset))
    schedule.sort()

    # Phase 2: the orders in time order; re-sends wait in `pending` until their slot.
    pending: dict[int, list[Any]] = {}
    for position, (utc_second, k, channel, offset) in enumerate(schedule):
        customer, city = pools.customers[customer_ids[k]]
        utc = day_start + timedelta(seconds=utc_second)
        status = pick(status_cum, status_names)
        low, high = UPDATE_DELAY_SECONDS[status]
        delay_seconds = low + int(random_() * (high - low))
        updated = utc + timedelta(seconds=delay_seconds, milliseconds=rng.randrange(1000))
        currency = city.currency
        n_lines = pick(lines_cum) + 1
        product_ids: list[int] = []
        while len(product_ids) < n_lines:
            candidate = pick(pools.product_cum)
            if candidate not in product_ids:
                product_ids.append(candidate)
        lines = []
        for number, product_index in enumerate(product_ids, start=1):
            line = {"line_number": number}
            line.update(pools.products[product_index])
            line["quantity"] = pick(quantity_cum, quantities)
            line["unit_price"] = pools.prices[product_index][currency]
            line["discount"] = DISCOUNTS[pick(discount_cum)]
            line["tax_rate"] = city.tax_rate
            lines.append(line)
        order = {
            "order_id": f"SO-{order_date:%Y%m%d}-{position + 1:07d}",
            # Marketplaces report in UTC; everyone else in the buyer's local offset.
            "order_timestamp": _format_local(utc, None if channel == "marketplace" else offset),
            "updated_at": _format_utc_millis(updated),
            "status": status,
            "channel": channel,
            "store_id": rng.choice(pools.stores_by_country[city.country]) if channel == "store" else None,
            "currency": currency,
            "customer": dict(customer),
            "lines": lines,
        }
        first = order
        if random_() < config.resend_rate:
            copy, copy_is_newer = _resend(rng, order, updated)
            first, later = (order, copy) if copy_is_newer else (copy, order)
            slot = min(n - 1, position + int(rng.expovariate(1 / (1 + n * 0.05))))
            pending.setdefault(slot, []).append((later, utc, offset))

        yield _finish(rng, first, utc, offset, config)
        for later, later_utc, later_offset in pending.pop(position, ()):
            yield _finish(rng, later, later_utc, later_offset, config)


def _finish(rng: random.Random, order: dict, utc: datetime, offset: int, config: DemoDataConfig) -> Any:
    """The listing entry for a clean order: maybe one contract violation, else maybe drift.

    Drift and violations never combine, so a violated record fails with exactly the
    reason its corruption names.
    """
    if rng.random() < config.invalid_line_rate * len(order["lines"]):
        index = bisect.bisect_right(_CORRUPTION_CUM, rng.random() * _CORRUPTION_CUM[-1])
        return _CORRUPTION_FNS[index](rng, order, {"utc": utc, "offset": offset})
    for line in order["lines"]:
        if rng.random() < config.type_drift_rate:
            _drift_line(rng, line)
    if rng.random() < config.extra_field_rate:
        _add_extra_field(rng, order)
    return order


def generate_orders(order_date: date, config: DemoDataConfig = DEFAULT_CONFIG) -> list[Any]:
    """The day's orders in listing order, as a list (see `iter_orders`)."""
    return list(iter_orders(order_date, config))
