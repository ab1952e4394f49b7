"""Checkout traffic for trying the shop out: ``python -m shop.traffic 30 --free 2``.

Creates the tables on first use, then places orders the way the web front end
does (``shop.web.place_order``: one order row and one ``fulfil_order`` job).
``--free N`` makes the last N orders free (a voucher paid for them: 0 cents).
"""

from __future__ import annotations

import argparse

from .db import create_schema, engine
from .web import place_order


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("orders", type=int)
    parser.add_argument("--free", type=int, default=0, help="how many of them cost 0 cents")
    args = parser.parse_args()
    eng = engine()
    create_schema(eng)
    ids = []
    for n in range(args.orders):
        free = n >= args.orders - args.free
        ids.append(place_order(eng, f"customer{n}@example.com", 0 if free else 1000 + n))
    print(f"placed {len(ids)} order(s): {ids[0]}..{ids[-1]}" if ids else "placed 0 orders")


if __name__ == "__main__":
    main()
