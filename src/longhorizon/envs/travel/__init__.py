"""Travel: plan a multi-day trip with search tools under hard and commonsense constraints (TravelPlanner)."""
