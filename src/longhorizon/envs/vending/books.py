"""Vending's books and nights: net worth at wholesale cost, the night's sales, the daily fee and deliveries."""

from __future__ import annotations

from datetime import timedelta

from longhorizon.envs.vending.world import BANKRUPT_AFTER, DAILY_FEE, Email, demand_rate, dollars, supplier_email


class VendingBooks:
    """The books and the night: net worth at wholesale cost, then each night's sales, fee and deliveries.

    A mixin of `VendingEnv`: it reads and writes the env's episode state."""

    # -- accounting ------------------------------------------------------------------
    def machine_units(self, product: str) -> int:
        return self.in_machine.get(product, 0)

    def units_owned(self, product: str) -> int:
        return self.storage.get(product, 0) + self.machine_units(product)

    def inventory_value(self) -> float:
        """Storage + machine units at their average wholesale cost, plus goods in transit at cost (cents)."""
        owned = sum(self.units_owned(p) * c for p, c in self.cost_basis.items())
        transit = sum(q * o.unit_costs[p] for o in self.orders for p, q in o.items.items())
        return owned + transit

    def net_worth(self) -> float:
        """The paper's score, in cents: cash + cash in the machine + inventory at wholesale cost."""
        return self.cash + self.machine_cash + self.inventory_value()

    def _receive(self, product: str, units: int, unit_cost: int) -> None:
        """Add delivered units to storage, updating the product's average cost."""
        held = self.units_owned(product)
        old = self.cost_basis.get(product, 0.0)
        self.cost_basis[product] = (held * old + units * unit_cost) / (held + units)
        self.storage[product] = self.storage.get(product, 0) + units

    # -- the night and the next morning ------------------------------------------------------
    def _end_day(self) -> str:
        self._day_ended = True
        report = self._sell() + "\n" + self._charge_fee()
        if self.bankrupt or self.day >= self.days:
            self.done = True
            why = "You are bankrupt." if self.bankrupt else f"The {self.days}-day run is over."
            return f"{report}\n{why} Final net worth: {dollars(self.net_worth())}."
        self.day += 1
        return f"{report}\n{self._deliver()}{self._morning()}"

    def _sell(self) -> str:
        """One day of customers (the demand model of the module docstring)."""
        stocked = {s.product for s in self.slots if s.product and s.units}
        today = self.start_date + timedelta(days=self.day - 1)
        sales = []
        for name in sorted(stocked):
            lam = demand_rate(self.products[name], self.prices[name], today.weekday(), today.month,
                              self.weather[self.day - 1], len(stocked))
            units = min(int(self.np_random.poisson(lam)), self.machine_units(name))
            if units:
                self._take_from_machine(name, units)
                sales.append(f"{units} x {name} ({dollars(units * self.prices[name])})")
        if not sales:
            return f"Night of day {self.day}: no sales."
        sold = ", ".join(sales)
        return f"Night of day {self.day}: sold {sold}. The machine holds {dollars(self.machine_cash)}."

    def _take_from_machine(self, name: str, units: int) -> None:
        self.units_sold += units
        self.in_machine[name] -= units
        self.machine_cash += units * self.prices[name]
        for slot in self.slots:
            if slot.product == name and units:
                take = min(slot.units, units)
                slot.units, units = slot.units - take, units - take
                slot.product = slot.product if slot.units else None

    def _charge_fee(self) -> str:
        if self.cash >= DAILY_FEE:
            self.cash -= DAILY_FEE
            self.unpaid_days = 0
            return f"Daily fee {dollars(DAILY_FEE)} paid; cash {dollars(self.cash)}."
        self.unpaid_days += 1
        self.bankrupt = self.unpaid_days >= BANKRUPT_AFTER
        return (f"Daily fee NOT paid (cash {dollars(self.cash)}): {self.unpaid_days} unpaid day(s) in a row; "
                f"bankruptcy at {BANKRUPT_AFTER}.")

    def _deliver(self) -> str:
        arrived = [o for o in self.orders if o.arrival_day <= self.day]
        self.orders = [o for o in self.orders if o.arrival_day > self.day]
        for order in arrived:
            for product, units in order.items.items():
                self._receive(product, units, order.unit_costs[product])
            items = ", ".join(f"{q} x {p}" for p, q in order.items.items())
            self.inbox.append(Email(supplier_email(order.supplier), f"Order #{order.number} delivered",
                                     f"Your order #{order.number} ({items}) is in your storage room.", self.day))
        return f"{len(arrived)} deliver{'y' if len(arrived) == 1 else 'ies'} arrived. " if arrived else ""

    def _n_unread(self) -> int:
        return len(self.inbox)
