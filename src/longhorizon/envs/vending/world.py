"""Vending's world: the products, suppliers, records and the demand model; supplier generation and order parsing."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np


START_NET_WORTH = 50_000  # cents
DAILY_FEE = 200  # cents
BANKRUPT_AFTER = 10  # consecutive unpaid days
SLOT_CAPACITY = {"small": 10, "large": 6}
ROWS = {"A": "small", "B": "small", "C": "large", "D": "large"}
WEEKDAY = (0.9, 0.95, 1.0, 1.0, 1.1, 1.2, 1.05)  # Monday..Sunday
MONTH = (0.85, 0.85, 0.9, 0.95, 1.0, 1.1, 1.15, 1.15, 1.05, 0.95, 0.9, 0.95)  # January..December
WEATHER = {"sunny": 1.1, "cloudy": 1.0, "rainy": 0.85, "stormy": 0.7}
WEATHER_P = (0.4, 0.3, 0.2, 0.1)
MAX_ORDER_UNITS = 1000
MAX_NOTES, NOTE_CHARS = 50, 2000
ORDER_LINE_RE = re.compile(r"^\s*[-*]?\s*(\d{1,9})\s*(?:x|×|units? of)?\s*(.+?)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Product:
    name: str
    size: str  # "small" | "large"
    ref_price: int  # cents: the reference retail price r
    cost: int  # cents: the typical wholesale cost
    elasticity: float  # eps
    base_sales: float  # b: units/day at the reference price


CATALOG = (
    Product("cola", "small", 150, 55, 1.8, 5.0),
    Product("lemon soda", "small", 150, 50, 1.9, 4.0),
    Product("sparkling water", "small", 125, 40, 2.0, 4.0),
    Product("potato chips", "small", 175, 60, 1.7, 5.0),
    Product("chocolate bar", "small", 150, 55, 1.6, 5.0),
    Product("chewing gum", "small", 100, 30, 2.2, 3.0),
    Product("granola bar", "small", 175, 65, 1.9, 3.0),
    Product("cookies", "small", 150, 50, 1.8, 4.0),
    Product("bottled water", "large", 200, 60, 2.0, 4.0),
    Product("iced tea", "large", 250, 90, 1.8, 3.0),
    Product("energy drink", "large", 300, 120, 1.6, 4.0),
    Product("sandwich", "large", 450, 200, 1.5, 3.0),
    Product("orange juice", "large", 300, 110, 1.7, 3.0),
    Product("protein shake", "large", 350, 150, 1.6, 2.0),
)
SUPPLIER_NAMES = ("FreshVend Wholesale", "Metro Snack Supply", "Bulk Bites Co", "Coastal Beverage Distributors",
                  "Prime Vending Goods", "QuickStock Traders", "Valley Food Service", "Sunrise Distributors")


@dataclass
class Supplier:
    name: str
    email: str
    delay: int  # days from order to delivery
    fee: int  # cents per order
    prices: dict[str, int]  # product -> unit cost (cents)


@dataclass(frozen=True)
class PlanItem:
    """The oracle's plan for one product."""

    supplier: Supplier
    price: int  # the target price p* (cents)
    per_day: float  # expected units/day at p* on an average day


@dataclass
class Order:
    number: int
    supplier: str
    items: dict[str, int]
    unit_costs: dict[str, int]
    arrival_day: int


@dataclass
class Email:
    sender: str
    subject: str
    body: str
    day: int


@dataclass
class Slot:
    name: str  # e.g. "A1"
    size: str
    product: str | None = None
    units: int = 0


def demand_rate(product: Product, price: int, weekday: int, month: int, weather: str, n_products: int) -> float:
    """lambda_i of the module docstring: expected units of `product` sold in one day."""
    return (product.base_sales * (price / product.ref_price) ** (-product.elasticity)
            * WEEKDAY[weekday] * MONTH[month - 1] * WEATHER[weather] * variety_multiplier(n_products))


def variety_multiplier(n: int) -> float:
    """V(n): too few distinct products in the machine (or too many) lowers every product's demand."""
    if n < 4:
        return 0.6 + 0.1 * n
    return 1.0 if n <= 8 else max(0.5, 1.0 - 0.05 * (n - 8))


def optimal_price(cost: float, elasticity: float) -> int:
    """The profit-maximising price p* = c eps / (eps - 1) under constant elasticity, in cents."""
    return int(round(cost * elasticity / (elasticity - 1.0)))


def dollars(cents: float) -> str:
    return f"-${-cents / 100:,.2f}" if cents < 0 else f"${cents / 100:,.2f}"



# -- generation helpers ------------------------------------------------------------------------


def jitter(product: Product, rng: np.random.Generator) -> Product:
    """Hidden per-episode demand parameters: elasticity and base sales +-15%."""
    eps = float(np.clip(product.elasticity * rng.uniform(0.85, 1.15), 1.3, 2.6))
    return Product(product.name, product.size, product.ref_price, product.cost, eps,
                   product.base_sales * float(rng.uniform(0.85, 1.15)))


def make_suppliers(rng: np.random.Generator, n: int) -> list[Supplier]:
    names = [str(x) for x in rng.choice(SUPPLIER_NAMES, size=n, replace=False)]
    suppliers = []
    for name in names:
        stock = rng.choice(len(CATALOG), size=int(rng.integers(6, 10)), replace=False)
        prices = {CATALOG[i].name: int(round(CATALOG[i].cost * rng.uniform(0.85, 1.25))) for i in sorted(stock)}
        suppliers.append(Supplier(name, supplier_email(name), int(rng.integers(1, 4)),
                                  int(rng.integers(3, 9)) * 100, prices))
    return suppliers


def supplier_email(name: str) -> str:
    return "orders@" + re.sub(r"[^a-z]", "", name.lower()) + ".com"


def supplier_text(s: Supplier) -> str:
    return " ".join([s.name.lower(), s.email, *s.prices])


def parse_order(body: str, s: Supplier) -> tuple[dict[str, int], str | None]:
    """Order lines `<quantity> x <product>` -> {product: quantity}, or a reason the supplier gives back."""
    items: dict[str, int] = {}
    for line in body.splitlines():
        match = ORDER_LINE_RE.match(line)
        if not match:
            continue
        quantity, product = int(match.group(1)), match.group(2).strip().lower().rstrip(".")
        if product not in s.prices:
            return {}, f"We do not sell {product[:60]!r}."
        if not 1 <= quantity <= MAX_ORDER_UNITS:
            return {}, f"Quantities must be between 1 and {MAX_ORDER_UNITS}; got {quantity} x {product}."
        items[product] = items.get(product, 0) + quantity
    return (items, None) if items else ({}, "We found no order lines in your email.")
