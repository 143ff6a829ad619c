"""Writes the small priced test catalog beside this file: items.jsonl and events.csv.

The Scientific files carry no prices, so the price and brand filters, "like X but cheaper" and the
price-comparison fact are tested on this generic catalog. Deterministic (seeded); the committed files
are its output:  python tests/data/priced/make_catalog.py
"""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
BRANDS = ["Acme", "Northwind", "Contoso", "Fabrikam", "Tailspin", "Litware"]
# category -> (product nouns, adjectives, price range)
KINDS = {
    "Kitchen > Drinkware > Water Bottles": (["Water Bottle", "Insulated Bottle", "Sports Bottle"],
                                            ["Stainless Steel", "BPA-Free", "Leak-Proof", "Glass"], (6, 45)),
    "Kitchen > Drinkware > Mugs": (["Coffee Mug", "Travel Mug", "Tea Cup"], ["Ceramic", "Enamel", "Double-Wall"], (4, 30)),
    "Outdoor > Camping > Tents": (["Dome Tent", "Backpacking Tent", "Family Tent"],
                                  ["Two-Person", "Ultralight", "Waterproof", "Four-Season"], (40, 420)),
    "Outdoor > Camping > Sleeping Bags": (["Sleeping Bag", "Mummy Bag", "Camp Quilt"],
                                          ["Down", "Synthetic", "Compact", "Three-Season"], (25, 260)),
    "Office > Writing > Notebooks": (["Notebook", "Journal", "Sketchbook"], ["Dotted", "Ruled", "Hardcover", "Spiral"],
                                     (3, 28)),
    "Office > Writing > Pens": (["Gel Pen Set", "Fountain Pen", "Ballpoint Pens"], ["Fine Tip", "Refillable", "Smooth"],
                                (2, 60)),
    "Electronics > Audio > Headphones": (["Wireless Headphones", "Earbuds", "Studio Headphones"],
                                         ["Noise-Cancelling", "Bluetooth", "Over-Ear", "Lightweight"], (15, 350)),
    "Electronics > Power > Chargers": (["USB-C Charger", "Power Bank", "Wall Charger"],
                                       ["Fast", "Compact", "Dual-Port", "High-Capacity"], (8, 90)),
}
N_ITEMS, N_USERS, NO_PRICE_SHARE = 160, 60, 0.1


def main(seed: int = 7) -> None:
    rng = random.Random(seed)
    items = []
    for n in range(N_ITEMS):
        category = list(KINDS)[n % len(KINDS)]
        nouns, adjectives, (lo, hi) = KINDS[category]
        brand = rng.choice(BRANDS)
        item = {"id": f"P{n:04d}", "title": f"{brand} {rng.choice(adjectives)} {rng.choice(nouns)}",
                "category": category.split(" > "), "brand": brand,
                "description": f"A {category.split(' > ')[-1].lower()[:-1]} from {brand}."}
        if rng.random() >= NO_PRICE_SHARE:
            item["price"] = round(rng.uniform(lo, hi), 2)
        items.append(item)
    with open(HERE / "items.jsonl", "w") as f:
        for item in items:
            f.write(json.dumps(item) + "\n")
    # shoppers stick to one or two interests, as real ones do, so "more like this" has signal
    cats = {c: [i["id"] for i in items if " > ".join(i["category"]) == c] for c in KINDS}
    with open(HERE / "events.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "item_id", "kind", "timestamp"])
        for u in range(N_USERS):
            interests = rng.sample(list(KINDS), 2)
            ts = 1_700_000_000 + u * 1000
            for step in range(rng.randint(4, 9)):
                pool = cats[interests[0] if rng.random() < 0.7 else interests[1]]
                ts += rng.randint(3600, 86400)
                w.writerow([f"U{u:03d}", rng.choice(pool), rng.choice(["purchase", "purchase", "view", "cart"]), ts])


if __name__ == "__main__":
    main()
