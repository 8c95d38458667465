"""Vending: run a vending machine business for D days with tools (Vending-Bench)."""
