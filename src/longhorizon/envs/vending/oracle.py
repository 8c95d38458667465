"""Vending's oracle: the operator that carries the best-margin products at the optimal price."""

from __future__ import annotations

import math

import numpy as np

from longhorizon.envs.core.tools import ToolCall, format_tool_call
from longhorizon.envs.vending.world import MAX_ORDER_UNITS, SLOT_CAPACITY, PlanItem, demand_rate, optimal_price


class VendingOracle:
    """The operator the oracle plays: carry the best-margin products at p*, restock and reorder (a mixin of
    `VendingEnv`, reading its episode state; stateless between calls)."""

    # -- oracle ------------------------------------------------------------------------------
    def _oracle_plan(self) -> dict[str, PlanItem]:
        """Products to carry: the 4 small and 3 large with the best expected daily profit at p*."""
        plan: dict[str, PlanItem] = {}
        for size, k in (("small", 4), ("large", 3)):
            options = []
            for name, product in self.products.items():
                sellers = [s for s in self.suppliers if name in s.prices]
                if product.size == size and sellers:
                    best = min(sellers, key=lambda s: s.prices[name])
                    price = optimal_price(best.prices[name], product.elasticity)
                    per_day = demand_rate(product, price, 2, 5, "cloudy", 6)  # an average day
                    profit = (price - best.prices[name]) * per_day
                    options.append((-profit, name, PlanItem(best, price, per_day)))
            plan |= {name: item for _, name, item in sorted(options, key=lambda o: o[:2])[:k]}
        return plan

    def oracle_call(self) -> list[ToolCall]:
        return self._oracle_agenda()[: self.max_calls_per_step]

    def _oracle_agenda(self) -> list[ToolCall]:
        """Everything the operator still wants to do today, ending with wait_for_next_day (stateless)."""
        calls = [ToolCall("read_emails", {})] if self._n_unread() else []
        if not self.searched and self.days > 1:
            calls.append(ToolCall("search_suppliers", {"query": ""}))
        if self.machine_cash:
            calls.append(ToolCall("collect_cash", {}))
        calls += self._oracle_restocks() + self._oracle_prices() + self._oracle_orders()
        return calls + [ToolCall("wait_for_next_day", {})]

    def _target_price(self, name: str) -> int:
        if name in self._plan:
            return self._plan[name].price
        return optimal_price(self.cost_basis[name], self.products[name].elasticity)

    def _oracle_restocks(self) -> list[ToolCall]:
        """Fill one slot per product from storage."""
        calls = []
        free = {size: sum(s.size == size and s.product is None for s in self.slots) for size in SLOT_CAPACITY}
        for name, units in self.storage.items():
            size = self.products[name].size
            slot = next((s for s in self.slots if s.product == name), None)
            if units and (slot or free[size]):
                room = SLOT_CAPACITY[size] - (slot.units if slot else 0)
                free[size] -= slot is None
                if min(room, units) > 0:
                    calls.append(ToolCall("restock_machine", {"product": name, "quantity": min(room, units)}))
        return calls

    def _oracle_prices(self) -> list[ToolCall]:
        return [ToolCall("set_price", {"product": name, "price": self._target_price(name) / 100})
                for name in sorted(self.cost_basis) if self.units_owned(name)
                and self.prices[name] != self._target_price(name)]

    def _oracle_orders(self) -> list[ToolCall]:
        """One order email per supplier for the planned products that run low and can still sell."""
        budget, calls = self.cash - 3000, []
        in_transit: dict[str, int] = {}
        for order in self.orders:
            for name, units in order.items.items():
                in_transit[name] = in_transit.get(name, 0) + units
        for supplier in self.suppliers:
            lines, cost = [], supplier.fee
            for name, item in self._plan.items():
                quantity = self._order_quantity(name, item, in_transit.get(name, 0)) if item.supplier is supplier else 0
                if quantity and cost + quantity * supplier.prices[name] <= budget:
                    lines.append(f"{quantity} x {name}")
                    cost += quantity * supplier.prices[name]
            if lines:
                budget -= cost
                body = "Hello,\nplease deliver:\n" + "\n".join(lines) + "\nThanks!"
                calls.append(ToolCall("send_email", {"to": supplier.email, "subject": "Order", "body": body}))
        return calls

    def _order_quantity(self, name: str, item: PlanItem, in_transit: int) -> int:
        """Reorder when stock + goods in transit cover less than delay + 2 days; buy up to delay + 7 days."""
        sell_days = self.days - (self.day + item.supplier.delay) + 1
        position = self.units_owned(name) + in_transit
        if sell_days < 2 or position >= item.per_day * (item.supplier.delay + 2):
            return 0
        want = math.ceil(item.per_day * min(item.supplier.delay + 7, sell_days)) - position
        return max(0, min(want, SLOT_CAPACITY[self.products[name].size] * 3))

    def wrong_action(self, rng: np.random.Generator) -> str:
        """Restock a product the operator does not own (or more units than it owns): a ToolError."""
        unowned = [p for p in self.products if self.units_owned(p) == 0] or list(self.products)
        product = unowned[int(rng.integers(len(unowned)))]
        quantity = min(self.storage.get(product, 0) + 1, MAX_ORDER_UNITS)
        return format_tool_call("restock_machine", {"product": product, "quantity": quantity})
