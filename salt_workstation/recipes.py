"""Image recipes from the fleet's own pillar (placeholder, filled in below)."""
