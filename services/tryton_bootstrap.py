"""Set up a new Tryton database once, inside trytond (run by ``services.tryton`` as
``python -m services.tryton_bootstrap CONFIG DATABASE``, never imported by the platform).

What an accountant sets up on day one: the company and its currency, the minimal chart of
accounts, fiscal years (this one and the next) with monthly periods and invoice sequences, a
direct payment term, the account categories the adapter's products use, and the two service
products a sale carries shipping and the tax engine's tax on (``SHIPPING``, ``SALES-TAX``: a
sale has no manual taxes; invoices carry the tax as a manual tax line on ``TAX_ACCOUNT``).
Warehouses and the catalog's products are the retailer's data: the adapter creates them over
JSON-RPC at start (``adapters/erp/tryton/master.py``), for an existing Tryton too.
"""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal
from typing import Any

COMPANY = "Retail Connect Demo Co"
SHIPPING_CODE = "SHIPPING"
TAX_CODE = "SALES-TAX"
# "Accrued Taxes (Other Than Payroll)" in the minimal chart: the sales tax the retailer owes.
TAX_ACCOUNT = "2.2.3"


def bootstrap(config_file: str, database: str, currency_code: str = "USD") -> None:
    from proteus import Model, Wizard
    from proteus import config as pconfig

    cfg = pconfig.set_trytond(database, config_file=config_file)
    Party = Model.get("party.party")
    Currency = Model.get("currency.currency")
    User = Model.get("res.user")

    currencies = Currency.find([("code", "=", currency_code)])
    if currencies:
        currency = currencies[0]
    else:
        currency = Currency(
            name=currency_code, code=currency_code, symbol=currency_code, rounding=Decimal("0.01")
        )
        currency.save()

    company_config = Wizard("company.company.config")
    company_config.execute("company")
    company = company_config.form
    party = Party(name=COMPANY)
    party.save()
    company.party = party
    company.currency = currency
    company.timezone = "UTC"
    company_config.execute("add")
    cfg._context = User.get_preferences(True, {})
    company_id = Model.get("company.company").find()[0].id

    accounts = _chart(Model, Wizard, cfg, company_id)
    for year in (dt.date.today().year, dt.date.today().year + 1):
        _fiscal_year(Model, company_id, year)

    term = Model.get("account.invoice.payment_term")(name="Direct")
    term.lines.new(type="remainder")
    term.save()

    Category = Model.get("product.category")
    goods = Category(name="Goods", accounting=True)
    goods.account_revenue = accounts["revenue"]
    goods.account_expense = accounts["expense"]
    goods.save()

    unit = Model.get("product.uom").find([("name", "=", "Unit")])[0]
    Template = Model.get("product.template")
    for code, name, category in ((SHIPPING_CODE, "Shipping", goods), (TAX_CODE, "Sales tax", goods)):
        t = Template(name=name, code=code, type="service", salable=True, default_uom=unit)
        t.list_price = Decimal(0)
        t.account_category = category
        t.save()


def _chart(Model: Any, Wizard: Any, cfg: Any, company_id: int) -> dict[str, Any]:
    ModelData = Model.get("ir.model.data")
    Template = Model.get("account.account.template")
    wizard = Wizard("account.create_chart")
    wizard.execute("account")
    wizard.form.account_template = Template(ModelData.get_id("account.account_template_root_en", cfg.context))
    wizard.form.company = Model.get("company.company")(company_id)
    wizard.execute("create_account")
    Account = Model.get("account.account")
    accounts: dict[str, Any] = {}
    for kind in ("receivable", "payable", "revenue", "expense"):
        accounts[kind] = Account.find([(f"type.{kind}", "=", True), ("closed", "!=", True)], limit=1)[0]
    wizard.form.account_receivable = accounts["receivable"]
    wizard.form.account_payable = accounts["payable"]
    wizard.form.category_account_revenue = accounts["revenue"]
    wizard.form.category_account_expense = accounts["expense"]
    wizard.execute("create_properties")
    return accounts


def _fiscal_year(Model: Any, company_id: int, year: int) -> None:
    company = Model.get("company.company")(company_id)
    SequenceType = Model.get("ir.sequence.type")
    Strict = Model.get("ir.sequence.strict")
    moves = Strict(
        name=f"Moves {year}",
        sequence_type=SequenceType.find([("name", "=", "Account Move")], limit=1)[0],
        company=company,
    )
    moves.save()
    invoices = Strict(
        name=f"Invoices {year}",
        sequence_type=SequenceType.find([("name", "=", "Invoice")], limit=1)[0],
        company=company,
        prefix=f"INV/{year}/",
    )
    invoices.save()
    fy = Model.get("account.fiscalyear")(name=str(year), company=company)
    fy.start_date = dt.date(year, 1, 1)
    fy.end_date = dt.date(year, 12, 31)
    fy.move_sequence = moves
    (seq,) = fy.invoice_sequences
    seq.out_invoice_sequence = invoices
    seq.in_invoice_sequence = invoices
    seq.out_credit_note_sequence = invoices
    seq.in_credit_note_sequence = invoices
    fy.save()
    fy.click("create_period")


if __name__ == "__main__":
    bootstrap(sys.argv[1], sys.argv[2], *sys.argv[3:4])
