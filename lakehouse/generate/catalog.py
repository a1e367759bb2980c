"""The demo business's vocabulary: regions, segments, categories, brands and words.

Everything that shapes demand lives here as data, so the signal the later ML work should
learn is written down in one place:

* segments prefer categories (``SEGMENT_CATEGORY_PREFERENCE``) and react to price
  differently (``SEGMENT_PRICE_ELASTICITY``);
* each category has its own yearly season (``CATEGORY_SEASON``: peak day of year and
  amplitude); the whole shop has a weekly rhythm (``WEEKDAY_FACTOR``);
* promotions lift their category's demand by ``PROMOTION_LIFT_PER_PCT`` per point of
  discount;
* each client has a taste (one of ``TASTES``), which multiplies every product's weight by
  the product's affinity with that taste (``exp(TASTE_SPREAD * N(0, 1))``, drawn per
  product and taste), across categories: clients of one taste buy alike, which is what
  collaborative filtering can learn and popularity cannot. A client's taste changes
  about every ``1 / TASTE_CHANGE_PER_DAY`` days, so its old purchases age.
"""

from __future__ import annotations

REGIONS: dict[str, tuple[str, ...]] = {
    "north": ("Lille", "Amiens", "Rouen", "Calais", "Arras"),
    "east": ("Strasbourg", "Metz", "Nancy", "Reims", "Mulhouse"),
    "west": ("Nantes", "Rennes", "Brest", "Angers", "Tours"),
    "south": ("Marseille", "Toulouse", "Nice", "Montpellier", "Bordeaux"),
    "central": ("Lyon", "Clermont-Ferrand", "Dijon", "Limoges", "Orleans"),
}

# Each region is served by one warehouse; every product is stocked in every warehouse.
WAREHOUSE_OF_REGION: dict[str, str] = {
    "north": "WH-NORTH",
    "east": "WH-NORTH",
    "west": "WH-WEST",
    "south": "WH-SOUTH",
    "central": "WH-SOUTH",
}
WAREHOUSES: tuple[str, ...] = ("WH-NORTH", "WH-SOUTH", "WH-WEST")

SEGMENTS: tuple[str, ...] = ("bargain", "family", "premium", "professional")
SEGMENT_SHARE: tuple[float, ...] = (0.35, 0.30, 0.20, 0.15)

CATEGORIES: tuple[str, ...] = (
    "electronics",
    "home",
    "grocery",
    "toys",
    "fashion",
    "beauty",
    "sports",
    "office",
)

SEGMENT_CATEGORY_PREFERENCE: dict[str, dict[str, float]] = {
    "bargain": {"grocery": 3.0, "home": 1.5, "fashion": 1.2, "toys": 0.8},
    "family": {"toys": 3.0, "grocery": 2.0, "home": 1.5, "sports": 1.2},
    "premium": {"electronics": 2.5, "beauty": 2.5, "fashion": 2.0, "sports": 1.2},
    "professional": {"office": 4.0, "electronics": 2.0, "home": 0.8},
}
# Demand multiplier is (price / launch price) ** -elasticity.
SEGMENT_PRICE_ELASTICITY: dict[str, float] = {
    "bargain": 2.5,
    "family": 1.5,
    "premium": 0.4,
    "professional": 0.8,
}
# Mean extra units per order line (quantity = 1 + Poisson(mean)).
SEGMENT_EXTRA_UNITS: dict[str, float] = {
    "bargain": 0.6,
    "family": 0.9,
    "premium": 0.3,
    "professional": 2.0,
}
# Lines per order: 1 + Poisson(EXTRA_LINES) distinct products, at most MAX_LINES; each
# order draws from its segment's weights up to DRAWS_PER_LINE times per line, skipping
# products already in the basket.
EXTRA_LINES = 1.3
MAX_LINES = 6
DRAWS_PER_LINE = 3
# Share of orders cancelled before payment (their lines are deleted), and of orders whose
# basket is edited before payment (one line, at random, gets one more unit).
CANCEL_SHARE = 0.07
EDIT_SHARE = 0.03
SEGMENT_SERVICE_LEVEL: dict[str, tuple[float, float, float]] = {
    # share of orders shipped economy, standard, express
    "bargain": (0.7, 0.3, 0.0),
    "family": (0.3, 0.6, 0.1),
    "premium": (0.0, 0.4, 0.6),
    "professional": (0.1, 0.5, 0.4),
}

# (peak day of year, amplitude): demand * (1 + amplitude * cos(2 pi (doy - peak) / 365.25))
CATEGORY_SEASON: dict[str, tuple[int, float]] = {
    "electronics": (335, 0.45),
    "home": (100, 0.15),
    "grocery": (355, 0.10),
    "toys": (350, 0.80),
    "fashion": (90, 0.30),
    "beauty": (320, 0.25),
    "sports": (170, 0.50),
    "office": (250, 0.40),
}
# Monday .. Sunday
WEEKDAY_FACTOR: tuple[float, ...] = (0.92, 0.90, 0.95, 1.00, 1.12, 1.30, 0.81)
TASTES = 16
TASTE_SPREAD = 2.0
TASTE_CHANGE_PER_DAY = 0.008  # a client's taste lasts about four months
PROMOTION_LIFT_PER_PCT = 0.045  # a 20 % promotion multiplies its category's demand by 1.9

CATEGORY_PRICE: dict[str, tuple[float, float]] = {
    # (median price, spread of its log)
    "electronics": (180.0, 0.8),
    "home": (45.0, 0.6),
    "grocery": (6.0, 0.5),
    "toys": (30.0, 0.6),
    "fashion": (40.0, 0.5),
    "beauty": (22.0, 0.5),
    "sports": (55.0, 0.7),
    "office": (15.0, 0.7),
}

BRANDS: dict[str, tuple[str, ...]] = {
    "electronics": ("Voltra", "Pixelon", "Auralis", "Nexcore"),
    "home": ("Casaluna", "Hearthly", "Nordvik", "Terracott"),
    "grocery": ("Bonterre", "Fermette", "Grainfield", "Saveur"),
    "toys": ("Jouvence", "Blocksy", "Tinytrek", "Playwise"),
    "fashion": ("Maison Lune", "Urbanthread", "Velours", "Kestrel"),
    "beauty": ("Lumiere", "Aquarose", "Botanica", "Nacre"),
    "sports": ("Stridex", "Altitude", "Peakform", "Rivage"),
    "office": ("Papeterie", "Deskwise", "Inkline", "Ordo"),
}

NOUNS: dict[str, tuple[str, ...]] = {
    "electronics": ("headphones", "speaker", "tablet", "smartwatch", "charger", "camera", "router"),
    "home": ("lamp", "cushion", "saucepan", "blanket", "vase", "kettle", "shelf"),
    "grocery": ("coffee", "olive oil", "pasta", "tea", "honey", "chocolate", "granola"),
    "toys": ("puzzle", "building set", "plush bear", "board game", "kite", "train set"),
    "fashion": ("jacket", "scarf", "sneakers", "shirt", "dress", "belt", "hat"),
    "beauty": ("face cream", "shampoo", "perfume", "lip balm", "serum", "soap"),
    "sports": ("running shoes", "yoga mat", "tennis racket", "bike helmet", "water bottle"),
    "office": ("notebook", "pen set", "desk organiser", "stapler", "planner", "backpack"),
}
ADJECTIVES: tuple[str, ...] = (
    "classic",
    "compact",
    "deluxe",
    "eco",
    "essential",
    "pro",
    "smart",
    "soft",
    "ultra",
    "vintage",
)
FEATURES: dict[str, tuple[str, ...]] = {
    "electronics": ("long battery life", "bluetooth 5.3", "noise cancelling", "fast charging"),
    "home": ("machine washable", "solid oak", "induction compatible", "hand made"),
    "grocery": ("organic", "fair trade", "gluten free", "from small producers"),
    "toys": ("for ages 3 and up", "wooden pieces", "educational", "no batteries needed"),
    "fashion": ("waterproof", "recycled cotton", "slim fit", "all season"),
    "beauty": ("for sensitive skin", "vegan formula", "fragrance free", "with shea butter"),
    "sports": ("lightweight", "breathable", "shock absorbing", "for beginners and experts"),
    "office": ("recycled paper", "refillable", "ergonomic", "A5 format"),
}

FIRST_NAMES: tuple[str, ...] = (
    "Alice", "Amir", "Anna", "Bastien", "Camille", "Chloe", "David", "Elena", "Emma", "Farid",
    "Gabriel", "Hugo", "Ines", "Jade", "Jules", "Karim", "Lea", "Louis", "Lucas", "Manon",
    "Marie", "Mateo", "Nina", "Noah", "Omar", "Paul", "Rose", "Sarah", "Theo", "Yasmine",
)  # fmt: skip
LAST_NAMES: tuple[str, ...] = (
    "Bernard", "Blanc", "Bonnet", "Chevalier", "David", "Dubois", "Durand", "Faure", "Fontaine",
    "Garcia", "Girard", "Lambert", "Laurent", "Lefebvre", "Leroy", "Martin", "Mercier", "Michel",
    "Moreau", "Morel", "Nguyen", "Petit", "Richard", "Robert", "Roux", "Simon", "Thomas",
)  # fmt: skip

TRANSPORTERS: tuple[tuple[str, str, str], ...] = (
    # name, service level, cost per order
    ("Colibri Express", "express", "12.90"),
    ("Rapido Fret", "express", "10.50"),
    ("Postale Standard", "standard", "5.90"),
    ("Route Verte", "standard", "6.40"),
    ("Eco Relais", "economy", "3.20"),
)
SERVICE_LEVELS: tuple[str, ...] = ("economy", "standard", "express")
# Days from shipping to delivery: (min, max) by service level.
DELIVERY_DAYS: dict[str, tuple[float, float]] = {
    "economy": (3.0, 7.0),
    "standard": (2.0, 4.0),
    "express": (0.5, 1.5),
}
PAYMENT_METHODS: tuple[str, ...] = ("card", "transfer", "paypal", "cash")
PAYMENT_SHARE: tuple[float, ...] = (0.62, 0.08, 0.27, 0.03)
