"""Discovery: discover hidden rules by experimenting with tools, then commit them (UltraHorizon)."""
