"""Writes the two small non-Scientific catalogs under tests/data (run once; the output is committed).

  film/    films with structured attributes (genres as a list, year, runtime, director, a
           near-constant language, an id-like imdb code) and one category (the first genre);
           events are ratings only.
  retail/  a shop with category paths ("Electronics > Audio > Headphones"; a few items in two
           departments, given as a list of paths), brands, prices, attributes (color, size,
           wattage, a connectivity list, an id-like SKU); events are views, clicks, cart adds and
           purchases.

Shoppers follow one or two tastes (genres / departments), so the ranker's evidence tends to cite
a history item that shares something with the recommendation, as in real data.

    python tests/data/make_catalog_fixtures.py
"""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

HERE = Path(__file__).parent

# title, year, genres, runtime (min), director
FILMS = [
    ("Titanic", 1997, ["Drama", "Romance"], 194, "James Cameron"),
    ("The Notebook", 2004, ["Drama", "Romance"], 123, "Nick Cassavetes"),
    ("Pride and Prejudice", 2005, ["Drama", "Romance"], 129, "Joe Wright"),
    ("Casablanca", 1942, ["Drama", "Romance", "War"], 102, "Michael Curtiz"),
    ("Roman Holiday", 1953, ["Comedy", "Romance"], 118, "William Wyler"),
    ("When Harry Met Sally", 1989, ["Comedy", "Romance"], 96, "Rob Reiner"),
    ("Sleepless in Seattle", 1993, ["Comedy", "Drama", "Romance"], 105, "Nora Ephron"),
    ("You've Got Mail", 1998, ["Comedy", "Drama", "Romance"], 119, "Nora Ephron"),
    ("Notting Hill", 1999, ["Comedy", "Drama", "Romance"], 124, "Roger Michell"),
    ("Pretty Woman", 1990, ["Comedy", "Romance"], 119, "Garry Marshall"),
    ("Ghost", 1990, ["Drama", "Fantasy", "Romance"], 127, "Jerry Zucker"),
    ("The English Patient", 1996, ["Drama", "Romance", "War"], 162, "Anthony Minghella"),
    ("The Godfather", 1972, ["Crime", "Drama"], 175, "Francis Ford Coppola"),
    ("The Godfather Part II", 1974, ["Crime", "Drama"], 202, "Francis Ford Coppola"),
    ("Goodfellas", 1990, ["Biography", "Crime", "Drama"], 146, "Martin Scorsese"),
    ("Pulp Fiction", 1994, ["Crime", "Drama"], 154, "Quentin Tarantino"),
    ("Reservoir Dogs", 1992, ["Crime", "Thriller"], 99, "Quentin Tarantino"),
    ("Heat", 1995, ["Action", "Crime", "Drama"], 170, "Michael Mann"),
    ("The Departed", 2006, ["Crime", "Drama", "Thriller"], 151, "Martin Scorsese"),
    ("Casino", 1995, ["Crime", "Drama"], 178, "Martin Scorsese"),
    ("Fargo", 1996, ["Crime", "Thriller"], 98, "Joel Coen"),
    ("Se7en", 1995, ["Crime", "Mystery", "Thriller"], 127, "David Fincher"),
    ("The Silence of the Lambs", 1991, ["Crime", "Thriller"], 118, "Jonathan Demme"),
    ("L.A. Confidential", 1997, ["Crime", "Mystery", "Thriller"], 138, "Curtis Hanson"),
    ("Alien", 1979, ["Horror", "Sci-Fi"], 117, "Ridley Scott"),
    ("Aliens", 1986, ["Action", "Sci-Fi"], 137, "James Cameron"),
    ("The Terminator", 1984, ["Action", "Sci-Fi"], 107, "James Cameron"),
    ("Terminator 2", 1991, ["Action", "Sci-Fi"], 137, "James Cameron"),
    ("Blade Runner", 1982, ["Drama", "Sci-Fi", "Thriller"], 117, "Ridley Scott"),
    ("The Matrix", 1999, ["Action", "Sci-Fi"], 136, "Lana Wachowski"),
    ("Star Wars", 1977, ["Action", "Adventure", "Fantasy"], 121, "George Lucas"),
    ("The Empire Strikes Back", 1980, ["Action", "Adventure", "Fantasy"], 124, "Irvin Kershner"),
    ("Back to the Future", 1985, ["Adventure", "Comedy", "Sci-Fi"], 116, "Robert Zemeckis"),
    ("Jurassic Park", 1993, ["Action", "Adventure", "Sci-Fi"], 127, "Steven Spielberg"),
    ("E.T.", 1982, ["Adventure", "Family", "Sci-Fi"], 115, "Steven Spielberg"),
    ("Close Encounters of the Third Kind", 1977, ["Drama", "Sci-Fi"], 138, "Steven Spielberg"),
    ("Raiders of the Lost Ark", 1981, ["Action", "Adventure"], 115, "Steven Spielberg"),
    ("Die Hard", 1988, ["Action", "Thriller"], 132, "John McTiernan"),
    ("Speed", 1994, ["Action", "Thriller"], 116, "Jan de Bont"),
    ("Toy Story", 1995, ["Animation", "Comedy", "Family"], 81, "John Lasseter"),
    ("The Lion King", 1994, ["Animation", "Drama", "Family"], 88, "Roger Allers"),
    ("Aladdin", 1992, ["Animation", "Comedy", "Family"], 90, "Ron Clements"),
    ("Beauty and the Beast", 1991, ["Animation", "Family", "Romance"], 84, "Gary Trousdale"),
    ("Finding Nemo", 2003, ["Animation", "Comedy", "Family"], 100, "Andrew Stanton"),
    ("Shrek", 2001, ["Animation", "Comedy", "Family"], 90, "Andrew Adamson"),
    ("Monsters, Inc.", 2001, ["Animation", "Comedy", "Family"], 92, "Pete Docter"),
    ("Groundhog Day", 1993, ["Comedy", "Fantasy", "Romance"], 101, "Harold Ramis"),
    ("Ghostbusters", 1984, ["Comedy", "Fantasy"], 105, "Ivan Reitman"),
    ("Airplane!", 1980, ["Comedy"], 88, "Jim Abrahams"),
    ("The Big Lebowski", 1998, ["Comedy", "Crime"], 117, "Joel Coen"),
    ("Forrest Gump", 1994, ["Drama", "Romance"], 142, "Robert Zemeckis"),
    ("The Shawshank Redemption", 1994, ["Drama"], 142, "Frank Darabont"),
    ("Schindler's List", 1993, ["Biography", "Drama", "History"], 195, "Steven Spielberg"),
    ("Saving Private Ryan", 1998, ["Drama", "War"], 169, "Steven Spielberg"),
    ("Apocalypse Now", 1979, ["Drama", "War"], 147, "Francis Ford Coppola"),
    ("Platoon", 1986, ["Drama", "War"], 120, "Oliver Stone"),
    ("Good Will Hunting", 1997, ["Drama", "Romance"], 126, "Gus Van Sant"),
    ("Dead Poets Society", 1989, ["Comedy", "Drama"], 128, "Peter Weir"),
    ("Field of Dreams", 1989, ["Drama", "Family", "Fantasy"], 107, "Phil Alden Robinson"),
    ("Rain Man", 1988, ["Drama"], 133, "Barry Levinson"),
]

# department path(s), brand, title stem, price, attributes
RETAIL = [
    ("Electronics > Audio > Headphones", "Sonora", "Wireless Over-Ear Headphones", 129.0, {"color": "Black", "connectivity": ["Bluetooth", "USB-C"], "battery_hours": 30}),
    ("Electronics > Audio > Headphones", "Sonora", "Noise Cancelling Earbuds", 89.0, {"color": "White", "connectivity": ["Bluetooth"], "battery_hours": 8}),
    ("Electronics > Audio > Headphones", "Kestrel", "Studio Monitor Headphones", 149.0, {"color": "Black", "connectivity": ["3.5 mm jack"]}),
    ("Electronics > Audio > Headphones", "Kestrel", "Sport Earbuds", 59.0, {"color": "Red", "connectivity": ["Bluetooth"], "battery_hours": 6}),
    ("Electronics > Audio > Speakers", "Sonora", "Portable Bluetooth Speaker", 79.0, {"color": "Black", "connectivity": ["Bluetooth", "USB-C"], "battery_hours": 12}),
    ("Electronics > Audio > Speakers", "Kestrel", "Bookshelf Speakers", 199.0, {"color": "Walnut", "connectivity": ["RCA", "Bluetooth"]}),
    ("Electronics > Audio > Speakers", "Boomline", "Waterproof Shower Speaker", 29.0, {"color": "Blue", "connectivity": ["Bluetooth"], "battery_hours": 10}),
    (["Electronics > Audio > Speakers", "Electronics > Smart Home"], "Boomline", "Smart Speaker", 99.0, {"color": "Grey", "connectivity": ["Wi-Fi", "Bluetooth"]}),
    ("Electronics > Computers > Keyboards", "Tactile", "Mechanical Keyboard", 119.0, {"color": "Black", "connectivity": ["USB-C"], "switch": "Brown"}),
    ("Electronics > Computers > Keyboards", "Tactile", "Wireless Compact Keyboard", 69.0, {"color": "White", "connectivity": ["Bluetooth", "USB-C"]}),
    ("Electronics > Computers > Mice", "Tactile", "Ergonomic Wireless Mouse", 49.0, {"color": "Black", "connectivity": ["Bluetooth"]}),
    ("Electronics > Computers > Mice", "Pointa", "Gaming Mouse", 59.0, {"color": "Black", "connectivity": ["USB-C"]}),
    ("Electronics > Computers > Monitors", "Pointa", "27-inch 4K Monitor", 349.0, {"color": "Black", "screen_size": "27 in", "connectivity": ["HDMI", "USB-C"]}),
    ("Electronics > Computers > Monitors", "Viewmark", "24-inch Office Monitor", 179.0, {"color": "Black", "screen_size": "24 in", "connectivity": ["HDMI"]}),
    ("Electronics > Computers > Accessories", "Viewmark", "USB-C Docking Station", 139.0, {"color": "Grey", "connectivity": ["USB-C", "HDMI"]}),
    ("Electronics > Computers > Accessories", "Pointa", "Laptop Stand", 39.0, {"color": "Silver", "material": "Aluminium"}),
    ("Home > Kitchen > Coffee", "Brewhaus", "Drip Coffee Maker", 79.0, {"color": "Black", "capacity": "12 cups", "wattage": "900 W"}),
    ("Home > Kitchen > Coffee", "Brewhaus", "Burr Coffee Grinder", 99.0, {"color": "Silver", "wattage": "150 W"}),
    ("Home > Kitchen > Coffee", "Crema", "Espresso Machine", 399.0, {"color": "Silver", "wattage": "1350 W", "capacity": "2 l"}),
    ("Home > Kitchen > Coffee", "Crema", "Milk Frother", 49.0, {"color": "Black", "wattage": "500 W"}),
    ("Home > Kitchen > Coffee", "Brewhaus", "Pour-Over Coffee Dripper", 25.0, {"color": "White", "material": "Ceramic"}),
    ("Home > Kitchen > Cookware", "Ironside", "Cast Iron Skillet", 45.0, {"color": "Black", "size": "12 in", "material": "Cast iron"}),
    ("Home > Kitchen > Cookware", "Ironside", "Dutch Oven", 89.0, {"color": "Red", "capacity": "5.5 l", "material": "Cast iron"}),
    ("Home > Kitchen > Cookware", "Panly", "Nonstick Frying Pan", 35.0, {"color": "Grey", "size": "10 in", "material": "Aluminium"}),
    ("Home > Kitchen > Cookware", "Panly", "Stainless Saucepan", 55.0, {"color": "Silver", "capacity": "2 l", "material": "Stainless steel"}),
    ("Home > Kitchen > Appliances", "Crema", "Electric Kettle", 59.0, {"color": "Silver", "capacity": "1.7 l", "wattage": "1500 W"}),
    ("Home > Kitchen > Appliances", "Brewhaus", "Toaster", 49.0, {"color": "Black", "wattage": "900 W"}),
    ("Home > Kitchen > Appliances", "Blendo", "High-Speed Blender", 129.0, {"color": "Black", "capacity": "2 l", "wattage": "1200 W"}),
    ("Home > Kitchen > Appliances", "Blendo", "Hand Blender", 39.0, {"color": "White", "wattage": "600 W"}),
    ("Home > Lighting > Lamps", "Lumen", "LED Desk Lamp", 45.0, {"color": "White", "wattage": "12 W"}),
    ("Home > Lighting > Lamps", "Lumen", "Floor Lamp", 89.0, {"color": "Black", "wattage": "20 W"}),
    (["Home > Lighting > Bulbs", "Electronics > Smart Home"], "Lumen", "Smart LED Bulb 4-Pack", 49.0, {"color": "White", "wattage": "9 W", "connectivity": ["Wi-Fi"]}),
    ("Sports > Fitness > Yoga", "Asana", "Yoga Mat", 35.0, {"color": "Purple", "size": "183 x 61 cm", "material": "TPE"}),
    ("Sports > Fitness > Yoga", "Asana", "Yoga Blocks 2-Pack", 19.0, {"color": "Purple", "material": "Cork"}),
    ("Sports > Fitness > Yoga", "Asana", "Yoga Strap", 12.0, {"color": "Black", "material": "Cotton"}),
    ("Sports > Fitness > Weights", "Ironside", "Adjustable Dumbbells", 249.0, {"color": "Black", "material": "Steel"}),
    ("Sports > Fitness > Weights", "Kettle Co", "Cast Iron Kettlebell", 49.0, {"color": "Black", "material": "Cast iron"}),
    ("Sports > Fitness > Cardio", "Strider", "Jump Rope", 15.0, {"color": "Red", "material": "Steel"}),
    ("Sports > Fitness > Cardio", "Strider", "Resistance Bands Set", 25.0, {"color": "Green", "material": "Latex"}),
    ("Sports > Outdoor > Camping", "Trailhead", "Two-Person Tent", 159.0, {"color": "Green", "material": "Nylon"}),
    ("Sports > Outdoor > Camping", "Trailhead", "Sleeping Bag", 89.0, {"color": "Blue", "material": "Polyester"}),
    (["Sports > Outdoor > Camping", "Home > Lighting > Lamps"], "Trailhead", "Camping Headlamp", 25.0, {"color": "Black", "battery_hours": 40}),
    ("Sports > Outdoor > Hydration", "Aquila", "Insulated Water Bottle", 29.0, {"color": "Blue", "capacity": "750 ml", "material": "Stainless steel"}),
    ("Sports > Outdoor > Hydration", "Aquila", "Hydration Backpack", 69.0, {"color": "Black", "capacity": "2 l", "material": "Nylon"}),
]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _write_events(path: Path, rows: list[tuple]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "item_id", "kind", "timestamp"])
        w.writerows(rows)


def film(rng: random.Random, users: int = 60) -> None:
    items = []
    for n, (title, year, genres, runtime, director) in enumerate(FILMS):
        items.append({"id": f"F{n:03d}", "title": title, "category": genres[0],
                      "attributes": {"genres": genres, "year": year, "runtime": f"{runtime} min", "director": director,
                                     "language": "English", "imdb_code": f"tt{1000000 + 7919 * n}"}})
    by_genre: dict[str, list[str]] = {}
    for it in items:
        for g in it["attributes"]["genres"]:
            by_genre.setdefault(g, []).append(it["id"])
    tastes = ["Romance", "Crime", "Sci-Fi", "Family", "War", "Comedy", "Thriller", "Adventure"]
    events = []
    for u in range(users):
        liked = rng.sample(tastes, 2)
        pool = sorted({i for g in liked for i in by_genre[g]})
        seen = rng.sample(pool, min(len(pool), rng.randint(5, 9)))
        t = 1_700_000_000 + u * 1000
        for k, item in enumerate(seen):
            events.append((f"viewer{u:03d}", item, "rating", t + k * 3600))
    _write_jsonl(HERE / "film" / "items.jsonl", items)
    _write_events(HERE / "film" / "events.csv", events)


def retail(rng: random.Random, users: int = 60) -> None:
    items = []
    for n, (path, brand, title, price, attrs) in enumerate(RETAIL):
        items.append({"id": f"R{n:03d}", "title": f"{brand} {title}", "category": path, "brand": brand,
                      "price": price, "attributes": {**attrs, "sku": f"SKU-{40000 + 37 * n}"}})
    by_dept: dict[str, list[str]] = {}
    for it in items:
        for path in it["category"] if isinstance(it["category"], list) else [it["category"]]:
            by_dept.setdefault(" > ".join(path.split(" > ")[:2]), []).append(it["id"])
    events = []
    for u in range(users):
        depts = rng.sample(sorted(by_dept), 2)
        pool = sorted({i for d in depts for i in by_dept[d]})
        seen = rng.sample(pool, min(len(pool), rng.randint(5, 9)))
        t = 1_700_000_000 + u * 1000
        for k, item in enumerate(seen):
            # a shopper looks at most things, adds some to the cart, buys fewer
            kind = rng.choices(["view", "click", "cart", "purchase"], weights=[4, 2, 2, 3])[0]
            events.append((f"shopper{u:03d}", item, kind, t + k * 3600))
    _write_jsonl(HERE / "retail" / "items.jsonl", items)
    _write_events(HERE / "retail" / "events.csv", events)


if __name__ == "__main__":
    film(random.Random(16))
    retail(random.Random(17))
