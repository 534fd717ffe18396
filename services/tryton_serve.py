"""trytond for a SQLite database, one request at a time (run by ``services.tryton`` as
``python -m services.tryton_serve CONFIG DATABASE``, inside trytond's own process).

``trytond`` serves each request in a thread. On PostgreSQL that is safe: Tryton locks its
sequences. SQLite cannot take those locks, and two requests at once drew the same invoice number
and the same party code here (50 demo orders, 4 calls in flight: two posted invoices numbered
INV/2026/43). One request at a time keeps Tryton's numbering gapless and unique; PostgreSQL is
the database for load (RETAIL_TRYTON_DATABASE_URL).
"""

from __future__ import annotations

import sys


def main(config_file: str, database: str) -> None:
    import trytond.commandline as commandline
    import trytond.config as config

    config.update_etc(config_file)
    commandline.config_log(commandline.get_parser_daemon().parse_args([]))
    from trytond.pool import Pool
    from trytond.wsgi import app
    from werkzeug.serving import run_simple

    Pool.start()
    Pool(database).init()
    host, port = config.split_netloc(config.get("web", "listen"))
    run_simple(host, port, app, threaded=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
